/**
 * The chat judge's request, RULER-style: every trajectory of the window in one prompt to be scored
 * relative to the others, with the ground truth given as context (the judge knows what came next;
 * the agents did not) rather than folded into a reward. Each trade step carries its own outcome, so
 * the judge can tell a reasoned trade from a lucky one.
 */
import { createHash } from 'node:crypto';
import { Rng } from '@rlmesh/core';
import { canonicalJson } from './cache';
import type { JudgeInput, JudgeStep, StepOutcome } from './types';

export const DEFAULT_RUBRIC = [
  '- A trajectory with a clearly better risk-adjusted P&L over the window should score clearly higher.',
  '- Trades that anticipated what happened next (bought before rises, sold before falls), above all by acting on',
  '  public hints and price moves the agent could see, deserve credit even when the P&L is small.',
  '- Large losses, drawdowns, needless churn paid for in fees, and refused (invalid) actions lower the score.',
  '- Two trajectories about equally good should get close scores; use the whole range from 0 to 1 across the group.',
].join('\n');

export interface ChatMessage {
  role: 'system' | 'user';
  content: string;
}

export function systemPrompt(rubric: string): string {
  return [
    'You judge trading agents. Every trajectory below traded the same simulated market in the same time window,',
    'so score them relative to each other.',
    'You are given ground truth the agents did NOT have when they decided: how each asset moved, which news',
    'events happened (and whether a hint was public before), and what each traded asset did after each decision.',
    'Use it to judge the decisions, fairly: what could the agent have known, and how did it turn out?',
    '',
    'Rubric:',
    rubric,
    '',
    'Answer with JSON only, one entry per trajectory, using exactly the ids given:',
    '{"scores": [{"trajectory_id": "<id>", "explanation": "<one or two sentences>", "score": <number from 0 to 1>}]}',
  ].join('\n');
}

/** Five significant digits are plenty for a judge and save tokens on every price. */
const short = (_: string, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(5)) : v);

const pct = (r: number) => `${r >= 0 ? '+' : ''}${(r * 100).toFixed(2)}%`;

function stepLine(i: number, s: JudgeStep, o: StepOutcome | undefined): string {
  const parts = [`${i}.`];
  if (s.time) parts.push(s.time);
  parts.push(s.action);
  if (s.price !== undefined) parts.push(`@ ${s.price.toFixed(2)}`);
  if (s.status) parts.push(s.status + (s.reason ? ` (${s.reason})` : ''));
  if (o && o.forwardReturn !== null) {
    const minutes = o.horizonMs !== undefined ? ` over the next ${Math.round(o.horizonMs / 60_000)} min` : ' afterwards';
    parts.push(`-> [truth] ${o.asset ?? 'the asset'} moved ${pct(o.forwardReturn)}${minutes}`);
  }
  if (o?.news?.length) parts.push(`; [truth] news within the horizon: ${o.news.join(' | ')}`);
  return parts.join(' ');
}

/**
 * Blind labels for a window's trajectories: `T1`..`Tn` in an order shuffled by the window's content,
 * so the judge sees neither agent names (a strategy's name is a hint of its worth) nor a fixed
 * position for any agent (judges favour some positions), and the same window is always labelled alike.
 */
export function blindLabels(input: JudgeInput): Map<string, string> {
  const seed = createHash('sha256').update(canonicalJson(input)).digest().readUInt32LE(0);
  const order = new Rng(seed).shuffle(input.trajectories.map((t) => t.id));
  return new Map(order.map((id, k) => [id, `T${k + 1}`]));
}

/**
 * The two messages of a judging request; at most `maxSteps` non-hold steps are shown per trajectory.
 * With `labels` (see blindLabels) trajectories appear under their labels, in label order, without agent names.
 */
export function buildMessages(input: JudgeInput, rubric = DEFAULT_RUBRIC, maxSteps = 60, labels?: Map<string, string>): ChatMessage[] {
  const { outcomes = [], ...context } = input.context;
  const byStep = new Map(outcomes.map((o) => [`${o.trajectoryId}\u0000${o.step}`, o]));
  const label = (id: string) => labels?.get(id) ?? id;
  const ordered = labels
    ? [...input.trajectories].sort((a, b) => Number(label(a.id).slice(1)) - Number(label(b.id).slice(1)))
    : input.trajectories;
  const blocks = ordered.map((t) => {
    const shown: string[] = [];
    let holds = 0;
    let hidden = 0;
    t.steps.forEach((s, i) => {
      if (s.side === 'hold' || (s.side === undefined && /^hold$/i.test(s.action.trim()))) holds++;
      else if (shown.length < maxSteps) shown.push(stepLine(i, s, byStep.get(`${t.id}\u0000${i}`)));
      else hidden++;
    });
    const metrics = t.metrics ? ` metrics: ${JSON.stringify(t.metrics, short)}` : '';
    return [
      `<trajectory id="${label(t.id)}">`,
      `${labels ? '' : `agent: ${t.agentId}; `}P&L over the window: ${t.finalPnl.toFixed(2)};${metrics}`,
      `decisions: ${t.steps.length} (${holds} holds not listed${hidden ? `, ${hidden} more not shown` : ''})`,
      ...shown,
      '</trajectory>',
    ].join('\n');
  });
  const user = [
    '<context>',
    `window: ${input.windowId}`,
    'ground truth (the agents did not see this):',
    JSON.stringify(context, short),
    '</context>',
    '',
    ...blocks,
  ].join('\n');
  return [
    { role: 'system', content: systemPrompt(rubric) },
    { role: 'user', content: user },
  ];
}
