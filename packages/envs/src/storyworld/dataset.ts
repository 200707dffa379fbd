/**
 * Synthetic storyworld datasets from one seed: train, val and test, each drawn from its own
 * generator forked from the seed in that order (so a larger train set leaves val and test as they
 * were). A record is what SFT reads (prompt, completion: a space and the canonical JSON) plus the
 * prompt's theme and counts.
 */
import { Rng } from '@rlmesh/core';
import { drawStoryPrompt, generateWorld, type StoryPrompt, storyPromptText } from './generate';
import { canonicalWorld } from './world';

export const STORY_SETS = ['train', 'val', 'test'] as const;

export interface StoryExample extends StoryPrompt {
  prompt: string;
  completion: string;
}

export function drawStoryExample(rng: Rng): StoryExample {
  const p = drawStoryPrompt(rng);
  return { ...p, prompt: storyPromptText(p), completion: ` ${canonicalWorld(generateWorld(rng, p))}` };
}

export function buildStoryDatasets(o: { seed: number; nTrain: number; nVal: number; nTest: number }) {
  const root = new Rng(o.seed);
  const rngs = STORY_SETS.map(() => root.fork());
  const sizes = { train: o.nTrain, val: o.nVal, test: o.nTest };
  return STORY_SETS.map((name, i) => ({
    name,
    examples: Array.from({ length: sizes[name] }, () => drawStoryExample(rngs[i])),
  }));
}
