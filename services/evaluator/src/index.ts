export * from './compare';
export * from './stats';
