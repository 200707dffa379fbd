export * from './answer';
export * from './cache';
export * from './chat';
export * from './heuristic';
export * from './meter';
export * from './prompt';
export * from './types';
