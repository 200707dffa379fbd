/**
 * SAE features read against a text env's verifier, on a policy's own completions: the capture and
 * analysis halves of the SAE <-> RL cycle.
 *
 *   captureCompletions  samples G completions of P env prompts from a GPT-2 directory (core's
 *                       SequenceCollector, the actor loop GRPO runs, so each completion is scored
 *                       by the env exactly as in training), then captures the policy's activations at
 *                       a hook on every completion token (feature-rewards.ts's CompletionCapture).
 *                       Writes an activation store (one row per completion token; context: the
 *                       completion's index, position, token and the verifier's components as labels)
 *                       and completions.jsonl (prompt, completion text, components), and returns the
 *                       mean of every component over the completions.
 *   selectFeatures      encodes the store with an SAE, scores every latent on every completion as the
 *                       feature rewards do (firingScores, reduce mean), and correlates the scores
 *                       with each component (Pearson r over completions, sae/analysis's
 *                       LabelCorrelator). The latents most positively correlated with the target
 *                       component (valid_json by default) become a bonus set, the most negatively
 *                       correlated a penalty set: they mark what the policy does when it succeeds
 *                       and when it fails.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { actorSeed, makeTextEnv, SequenceCollector, type SequenceRequest } from '@rlmesh/core';
import { encodePrompt, Gpt2Generator, Gpt2LMHeadModel } from '@rlmesh/learner';
import type { ActivationStore } from './activation-store';
import { writeActivationStore } from './activation-store';
import { LabelCorrelator, type LabelVariable } from './analysis/correlation';
import { openGpt2Directory } from './capture-text';
import { CompletionCapture, firingScores, rolloutCompletions } from './feature-rewards';
import { SaeModel, type SaeWeights } from './saelens';

export interface CompletionCaptureOptions {
  env: { id: string; options?: Record<string, unknown> };
  hook: string;
  prompts: number;
  generations: number;
  maxNewTokens: number;
  temperature: number;
  seed: number;
  threads?: number;
}

export interface CompletionCaptureResult {
  completions: number;
  rows: number;
  d: number;
  /** Mean of every reward component over the completions, and the share refused by the env. */
  means: Record<string, number>;
  refused: number;
}

export async function captureCompletions(
  checkpoint: string,
  o: CompletionCaptureOptions,
  outDir: string,
): Promise<CompletionCaptureResult> {
  const { config, params, tokenizer, padId } = await openGpt2Directory(checkpoint);
  const envs = Array.from({ length: o.prompts }, () => makeTextEnv(o.env.id, o.env.options ?? {}));
  const collector = new SequenceCollector(
    envs,
    { encode: (t) => encodePrompt(tokenizer, t), decode: (ids) => tokenizer.decodeCompletion(ids) },
    'capture',
    {
      numGenerations: o.generations,
      maxCompletionLength: o.maxNewTokens,
      temperature: o.temperature,
      topK: 0,
      topP: 1,
      eosTokenId: tokenizer.eosId,
    },
    actorSeed(o.seed, 'capture'),
  );
  const model = new Gpt2LMHeadModel({ ...config, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 });
  const gen = await Gpt2Generator.create(model, params, { threads: o.threads ?? 1 });
  let rollout: Awaited<ReturnType<SequenceCollector['collect']>>;
  try {
    rollout = await collector.collect(async (rows: readonly SequenceRequest[]) => ({ results: await gen.generate(rows), version: 0 }));
  } finally {
    await gen.release();
  }
  const seqs = rolloutCompletions(rollout);
  const capture = await CompletionCapture.open(config, padId, [o.hook], o.threads ?? 1);
  let acts: Float32Array;
  try {
    acts = (await capture.run(params, seqs))[o.hook];
  } finally {
    await capture.release();
  }
  const components = Object.keys(rollout.rewards);
  const labelsOf = (i: number) => Object.fromEntries(components.map((c) => [c, rollout.rewards[c][i]]));
  const context: Record<string, unknown>[] = [];
  for (const [i, s] of seqs.entries())
    for (const [t, token] of s.completion.entries())
      context.push({ completion: i, position: s.prompt.length + t, token, labels: labelsOf(i) });
  const d = capture.widths[o.hook];
  mkdirSync(outDir, { recursive: true });
  await writeActivationStore(
    outDir,
    { data: acts, rows: context.length, d },
    { hook: o.hook, model: 'GPT2LMHeadModel', checkpoint, source: `completions:${o.env.id}` },
    context,
  );
  const lines = seqs.map((s, i) => {
    let text: string | null = null;
    try {
      text = tokenizer.decodeCompletion(s.completion.filter((id) => id !== tokenizer.eosId));
    } catch {
      // Bytes that are not UTF-8: the env refused it; the line says so with text null.
    }
    return JSON.stringify({ prompt: tokenizer.decode(s.prompt), completion: text, tokens: s.completion.length, rewards: labelsOf(i) });
  });
  writeFileSync(join(outDir, 'completions.jsonl'), `${lines.join('\n')}\n`);
  const n = seqs.length;
  const means = Object.fromEntries(components.map((c) => [c, rollout.rewards[c].reduce((a, x) => a + x, 0) / n]));
  return { completions: n, rows: context.length, d, means, refused: rollout.refused.reduce((a, x) => a + x, 0) / n };
}

export interface FeatureSelectionOptions {
  /** The component whose correlations pick the sets; `total` is used when it is constant. */
  target: string;
  /** Latents per set. */
  top: number;
  /** The smallest |r| a latent needs to be picked. */
  minAbsR: number;
}

export interface FeatureSelection {
  target: string;
  completions: number;
  bonus: { feature: number; r: number }[];
  penalty: { feature: number; r: number }[];
  /** Per component, the five latents of largest |r|. */
  top_by_component: Record<string, { feature: number; r: number }[]>;
}

/** The completions of a store captureCompletions wrote: each one's token count and labels, in order. */
function completionsOf(store: ActivationStore): { counts: number[]; labels: Record<string, number>[] } {
  const counts: number[] = [];
  const labels: Record<string, number>[] = [];
  for (const [row, c] of (store.context ?? []).entries()) {
    const i = c.completion as number;
    if (!Number.isInteger(i)) throw new Error(`store row ${row}: no completion index (not written by captureCompletions)`);
    if (i === counts.length) {
      counts.push(0);
      labels.push(c.labels as Record<string, number>);
    } else if (i !== counts.length - 1) throw new Error(`store row ${row}: completion ${i} out of order`);
    counts[i]++;
  }
  if (counts.length === 0) throw new Error('store: no context rows');
  return { counts, labels };
}

export async function selectFeatures(store: ActivationStore, sae: SaeWeights, o: FeatureSelectionOptions): Promise<FeatureSelection> {
  const { counts, labels } = completionsOf(store);
  const model = await SaeModel.create(sae);
  let codes: Float32Array;
  try {
    codes = (await model.forward({ data: store.data, rows: store.rows })).featureActs;
  } finally {
    await model.release();
  }
  const dSae = sae.cfg.d_sae;
  const scores = firingScores(codes, dSae, counts, 'mean');
  const components = Object.keys(labels[0]);
  const variables: LabelVariable[] = components.map((c) => ({
    name: c,
    kind: 'numeric',
    values: Float64Array.from(labels, (l) => l[c]),
  }));
  const corr = new LabelCorrelator(variables, dSae);
  const all = Int32Array.from({ length: dSae }, (_, j) => j);
  for (let i = 0; i < counts.length; i++) corr.add(i, all, scores.subarray(i * dSae, (i + 1) * dSae));
  const r = corr.result();
  const rOf = (c: string) => r.subarray(components.indexOf(c) * dSae, (components.indexOf(c) + 1) * dSae);
  const ranked = (c: string, sign: number) =>
    Array.from(rOf(c), (v, feature) => ({ feature, r: v }))
      .filter((x) => sign * x.r >= o.minAbsR)
      .sort((a, b) => sign * (b.r - a.r) || a.feature - b.feature)
      .slice(0, o.top);
  const constant = (c: string) => new Set(labels.map((l) => l[c])).size < 2;
  if (!components.includes(o.target)) throw new Error(`target ${o.target} is not a component (components: ${components.join(', ')})`);
  const target = constant(o.target) && components.includes('total') ? 'total' : o.target;
  const top_by_component = Object.fromEntries(
    components.map((c) => [
      c,
      Array.from(rOf(c), (v, feature) => ({ feature, r: v }))
        .sort((a, b) => Math.abs(b.r) - Math.abs(a.r) || a.feature - b.feature)
        .slice(0, 5),
    ]),
  );
  return { target, completions: counts.length, bonus: ranked(target, 1), penalty: ranked(target, -1), top_by_component };
}
