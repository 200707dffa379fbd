/** Every policy model the learner knows: one file each, one registration line here. */
import { registerModel } from '../registry';
import { babyModel } from './baby';
import { gpt2Model } from './gpt2';
import { llamaModel } from './llama';
import { mlpActorCritic } from './mlp-actor-critic';

registerModel(babyModel);
registerModel(mlpActorCritic);
registerModel(gpt2Model);
registerModel(llamaModel);

export { BabyModel } from './baby';
export * from './causal-lm';
export * from './gpt2';
export * from './gpt2-generate';
export * from './hf-causal-lm';
export * from './hf-gpt2';
export * from './hf-llama';
export * from './hf-weights';
export * from './llama';
export * from './text-completion';
