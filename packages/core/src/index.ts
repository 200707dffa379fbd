export * from './config';
export * from './reward';
export * from './rng';
export * from './spaces';
