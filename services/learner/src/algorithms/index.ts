/** Every algorithm the learner knows: one file each, one registration line here. */
import { registerAlgorithm } from '../registry';
import { ppo } from './ppo';
import { reinforce } from './reinforce';

registerAlgorithm(reinforce);
registerAlgorithm(ppo);
