/**
 * Every environment rlmesh ships, registered with @rlmesh/core's registry on import. Adding one is
 * a new file exporting its EnvSpec and one registerEnv line here.
 */
import { registerEnv, registerTextEnv } from '@rlmesh/core';
import { affineAbduction, affineDeduction, affineSat, gridGoals, shopSearch, textCraft } from './affine';
import { cardRules } from './cards';
import { cartPole } from './cartpole';
import { pendulum } from './pendulum';
import { storyworld } from './storyworld';
import { conditional, patternEcho, sequenceNext } from './symbolic';

registerEnv(patternEcho);
registerEnv(sequenceNext);
registerEnv(conditional);
registerEnv(cartPole);
registerEnv(pendulum);
registerTextEnv(cardRules);
registerTextEnv(affineSat);
registerTextEnv(affineAbduction);
registerTextEnv(affineDeduction);
registerTextEnv(textCraft);
registerTextEnv(gridGoals);
registerTextEnv(shopSearch);
registerTextEnv(storyworld);

export * from './affine';
export * from './cards';
export * from './storyworld';
export * from './symbolic';
export * from './tasks';
export { cartPole, conditional, patternEcho, pendulum, sequenceNext };
