export * from './algorithms/reinforce';
export * from './models/baby';
export * from './wmil/config';
export * from './wmil/criteria';
export * from './wmil/run';
