/** Storyworlds: the JSON format, its verifier, the synthetic generator, datasets and the text env. */
export * from './dataset';
export * from './env';
export * from './generate';
export * from './verify';
export * from './world';
