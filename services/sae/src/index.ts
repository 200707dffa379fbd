export * from './config';
export * from './metrics';
export * from './planted';
export * from './sae';
export * from './saelens';
export * from './training';
