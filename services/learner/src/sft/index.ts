/** Supervised fine-tuning of causal LMs on prompt/completion data (see run.ts for the loop). */
export * from './checkpoint';
export * from './config';
export * from './data';
export * from './eval';
export * from './run';
export * from './step';
