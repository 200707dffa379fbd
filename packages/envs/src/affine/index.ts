/** Affine's reasoning tasks (SAT, abduction, deduction), the program sandbox, and AgentGym-style multi-turn worlds. */
export * from './abduction';
export * from './common';
export * from './craft';
export * from './deduction';
export * from './demonstrations';
export * from './grid';
export * from './programs';
export * from './sandbox';
export * from './sat';
export * from './shop';
export * from './world';
