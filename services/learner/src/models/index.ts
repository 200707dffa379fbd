/** Every policy model the learner knows: one file each, one registration line here. */
import { registerModel } from '../registry';
import { babyModel } from './baby';
import { mlpActorCritic } from './mlp-actor-critic';

registerModel(babyModel);
registerModel(mlpActorCritic);

export { BabyModel } from './baby';
