/**
 * SFT demonstrations from the experts: episode i of a dataset is the env reset with seed + i and
 * played by its expert (the solver's assignment, the drawn input, the reference program, the
 * scripted world experts). Every demonstration is checked by stepping the env itself: one the env
 * does not score a success is an error, never a line of the dataset.
 *
 * Records:
 *   single-turn  { env, seed, prompt, completion, reward }
 *   multi-turn   { env, seed, conversations: [{ role: 'user' | 'assistant', content }...], steps, reward }
 *                where user contents are the prompt and then each reply exactly as the env appends
 *                it, assistant contents the actions (with a leading space), so the contents joined
 *                in order are the env's conversation
 *   turns        a multi-turn episode as one { env, seed, turn, prompt, completion } line per
 *                action: the prompt is the conversation before it (what `rlmesh sft` reads)
 */
import { makeTextEnv, type TextEnv } from '@rlmesh/core';
import { type AbductionProblem, abductionAnswer } from './abduction';
import { craftExpert } from './craft';
import { type DeductionProblem, deductionAnswer } from './deduction';
import { gridExpert } from './grid';
import { formatAssignment, type SatProblem } from './sat';
import { shopExpert } from './shop';
import type { Expert } from './world';

const SINGLE_TURN: Record<string, Expert<never>> = {
  AffineSAT: ((p: SatProblem) => ` ${formatAssignment(p.solution)}`) as Expert<never>,
  AffineABD: ((p: AbductionProblem) => abductionAnswer(p)) as Expert<never>,
  AffineDED: ((p: DeductionProblem) => deductionAnswer(p)) as Expert<never>,
};
const MULTI_TURN: Record<string, Expert<never>> = {
  TextCraft: craftExpert as Expert<never>,
  GridGoals: gridExpert as Expert<never>,
  ShopSearch: shopExpert as Expert<never>,
};

export const AFFINE_DEMO_ENVS = [...Object.keys(SINGLE_TURN), ...Object.keys(MULTI_TURN)];

export type MultiTurnForm = 'conversations' | 'turns';

export interface Message {
  role: 'user' | 'assistant';
  content: string;
}

function sumRewards(into: Record<string, number>, r: Record<string, number>): void {
  for (const [c, v] of Object.entries(r)) into[c] = Math.round(((into[c] ?? 0) + v) * 1e9) / 1e9;
}

/** The demonstration records of one episode (one record, or one per turn in the `turns` form). */
export function demonstrate(env: TextEnv, envId: string, seed: number, form: MultiTurnForm = 'conversations'): Record<string, unknown>[] {
  const single = SINGLE_TURN[envId];
  const expert = single ?? MULTI_TURN[envId];
  if (!expert) throw new Error(`no expert for ${JSON.stringify(envId)}; experts: ${AFFINE_DEMO_ENVS.join(', ')}`);
  const prompt = env.reset(seed);
  if (single) {
    const completion = single(env.current as never);
    const s = env.step(completion);
    if (!s.success) throw new Error(`${envId} seed ${seed}: the expert's answer was not scored a success`);
    return [{ env: envId, seed, prompt, completion, reward: s.reward }];
  }
  const conversations: Message[] = [{ role: 'user', content: prompt }];
  const turns: Record<string, unknown>[] = [];
  const reward: Record<string, number> = {};
  let before = prompt;
  for (;;) {
    const action = ` ${expert(env.current as never)}`;
    const s = env.step(action);
    turns.push({ env: envId, seed, turn: turns.length, prompt: before, completion: action });
    conversations.push({ role: 'assistant', content: action }, { role: 'user', content: s.observation });
    sumRewards(reward, s.reward);
    if (s.truncated || (s.terminated && !s.success))
      throw new Error(`${envId} seed ${seed}: the expert did not reach the goal in ${turns.length} steps`);
    if (s.terminated) break;
    before = s.prompt;
  }
  return form === 'turns' ? turns : [{ env: envId, seed, conversations, steps: turns.length, reward }];
}

/**
 * `n` episodes' records from seeds seed..seed+n-1 of env `envId` with `options` (checked by the env's
 * schema; errors name `options.<key>`), so that demonstrations match the episodes a run trains on.
 */
export function demonstrations(
  envId: string,
  n: number,
  seed: number,
  form: MultiTurnForm = 'conversations',
  options: Record<string, unknown> = {},
): Record<string, unknown>[] {
  if (!AFFINE_DEMO_ENVS.includes(envId)) throw new Error(`no expert for ${JSON.stringify(envId)}; experts: ${AFFINE_DEMO_ENVS.join(', ')}`);
  const env = makeTextEnv(envId, options, 'options');
  return Array.from({ length: n }, (_, i) => demonstrate(env, envId, seed + i, form)).flat();
}
