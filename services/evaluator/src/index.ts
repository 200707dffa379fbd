export * from './compare';
export * from './evaluator';
export * from './policy-source';
export * from './stats';
export * from './suite';
