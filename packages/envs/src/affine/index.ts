/** Affine's reasoning tasks (SAT, abduction, deduction), the program sandbox, and AgentGym-style multi-turn worlds. */
export * from './abduction';
export * from './common';
export * from './deduction';
export * from './programs';
export * from './sandbox';
export * from './sat';
