export * from './rng';
export * from './config';
