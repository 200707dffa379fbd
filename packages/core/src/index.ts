export * from './config';
export * from './rng';
