/** Every algorithm the learner knows: one file each, one registration line here. */
import { registerAlgorithm, registerSequenceAlgorithm } from '../registry';
import { grpo } from './grpo';
import { ppo } from './ppo';
import { ppoSeq } from './ppo-seq';
import { reinforce } from './reinforce';

registerAlgorithm(reinforce);
registerAlgorithm(ppo);
registerSequenceAlgorithm(grpo);
registerSequenceAlgorithm(ppoSeq);
