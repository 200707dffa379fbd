/** The card-rule scoring game: rules, prompts, splits, the verifier, datasets and the text env. */
export * from './dataset';
export * from './env';
export * from './prompts';
export * from './rules';
export * from './splits';
export * from './verify';
