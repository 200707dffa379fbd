export * from './env';
export * from './registry';
export * from './symbolic';
export * from './tasks';
export * from './vector';
