/**
 * Storyworld: writing a storyworld as a text environment. Reset draws a theme and three counts
 * (encounters, characters, endings) and shows the prompt; a step scores the completion, the world's
 * JSON, with the verifier's components and their weighted mean `total` (weights: the env option
 * `weights`, 1 each by default). One completion ends the episode. There are only 120 distinct
 * prompts (5 themes x 4 x 3 x 2 counts), so train and test share prompts by design: what is judged is
 * the world written, not recall of an answer.
 */
import {
  ConfigError,
  DEFAULT_MAX_COMPLETION_BYTES,
  type Rng,
  type Schema,
  TextEnv,
  type TextEnvSpec,
  type TextProblem,
  type TextTask,
  type Verdict,
} from '@rlmesh/core';
import { drawStoryPrompt, type StoryPrompt, storyPromptText } from './generate';
import { STORY_COMPONENTS, STORY_REWARDS, type StoryWeights, verifyStoryworld } from './verify';

export interface StoryProblem extends TextProblem, StoryPrompt {}

export class StoryworldTask implements TextTask<StoryProblem> {
  readonly name = 'Storyworld';
  readonly rewardComponents = STORY_REWARDS;
  readonly numLevels = 1;
  constructor(private readonly weights: StoryWeights = {}) {}
  draw(rng: Rng): StoryProblem {
    const p = drawStoryPrompt(rng);
    return { ...p, prompt: storyPromptText(p) };
  }
  verify(problem: StoryProblem, completion: string): Verdict {
    return verifyStoryworld(completion, problem, this.weights);
  }
}

/** The `weights` option checked: known components, finite, not negative, not all 0. */
export function storyWeights(raw: Record<string, number>): StoryWeights {
  for (const [k, w] of Object.entries(raw)) {
    if (!(STORY_COMPONENTS as readonly string[]).includes(k))
      throw new ConfigError(`weights.${k}`, `is not a component (components: ${STORY_COMPONENTS.join(', ')})`);
    if (!Number.isFinite(w) || w < 0) throw new ConfigError(`weights.${k}`, `must be a finite number >= 0, got ${w}`);
  }
  if (STORY_COMPONENTS.every((c) => (raw[c] ?? 1) === 0)) throw new ConfigError('weights', 'must not all be 0');
  return raw as StoryWeights;
}

const STORY_OPTIONS = {
  weights: { kind: 'numberRecord', default: {}, doc: "each component's weight in total (1 when not named)" },
  max_episode_steps: { kind: 'int', default: 1, min: 1, max: 16, doc: 'worlds written per episode; a fully valid one ends it' },
  max_completion_bytes: {
    kind: 'int',
    default: DEFAULT_MAX_COMPLETION_BYTES,
    min: 1,
    max: 1 << 20,
    doc: 'longest completion accepted, in UTF-8 bytes; longer ones are refused',
  },
} as const satisfies Schema;

export const storyworld: TextEnvSpec<typeof STORY_OPTIONS> = {
  id: 'Storyworld',
  description: 'write a storyworld (characters, encounters, options, endings) as compact JSON meeting the prompt (text)',
  options: STORY_OPTIONS,
  make: (o) => new TextEnv(new StoryworldTask(storyWeights(o.weights)), o.max_episode_steps, o.max_completion_bytes),
};
