/**
 * `rlmesh analyze circuits`: probes, activation patching and ablation on one GPT-2 checkpoint (and
 * the same on a second one to compare), over a card game JSONL; writes circuits.json and
 * circuits.html into the output directory.
 */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AblationKind, ablationImportance, jaccard } from './ablation';
import { readCardRecords, slotOrder } from './examples';
import { CircuitModel } from './model';
import { type CheckpointAnalysis, type CircuitsResult, circuitsPage } from './page';
import { buildPairs, PAIR_KINDS } from './pairs';
import { patchKind, tokenPairs } from './patching';
import { probeHooks, runProbes } from './probes';

export interface CircuitsOptions {
  checkpoint: string;
  compare?: string;
  data: string;
  out: string;
  /** Records used (the file's first n); default 200. */
  examples?: number;
  /** Pairs per kind for patching; default 64. */
  pairs?: number;
  seed?: number;
  valFraction?: number;
  ablation?: AblationKind;
  threshold?: number;
  topK?: number;
  /** Hooks to probe instead of hook_embed and every hook_resid_post. */
  probeHooks?: string[];
  onProgress?: (message: string) => void;
}

function checkDirectory(flag: string, dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--${flag} ${dir}: no such checkpoint directory`);
  if (!existsSync(join(dir, 'config.json')))
    throw new Error(`--${flag} ${dir}: no config.json (not a GPT-2 directory in Hugging Face's layout)`);
}

async function analyzeOne(
  dir: string,
  o: Required<Omit<CircuitsOptions, 'compare' | 'probeHooks' | 'onProgress'>> & CircuitsOptions,
): Promise<CheckpointAnalysis> {
  const say = o.onProgress ?? (() => {});
  const model = await CircuitModel.open(dir);
  try {
    const hooks = o.probeHooks ?? probeHooks(model.layers);
    model.requireHooks(hooks);
    const records = readCardRecords(o.data).slice(0, o.examples);
    const items = model.tokenize(records);
    let t = performance.now();
    say(`${dir}: probes on ${items.length} examples`);
    const probes = await runProbes(model, items, { valFraction: o.valFraction, seed: o.seed, hooks });
    const probeSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    const pairs = buildPairs(records, o.pairs, o.seed);
    const maxCards = Math.max(...records.map((r) => r.cards.length));
    const patching = [];
    for (const kind of PAIR_KINDS) {
      const tp = tokenPairs(model, pairs[kind]);
      say(`${dir}: patching ${kind} (${tp.length} pairs)`);
      if (tp.length > 0) patching.push(await patchKind(model, kind, tp, slotOrder(maxCards)));
    }
    const patchSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    say(`${dir}: ${o.ablation} ablation of ${model.layers * model.heads} heads and ${model.layers} MLPs`);
    const ablation = await ablationImportance(model, items, { ablation: o.ablation, threshold: o.threshold, topK: o.topK });
    return {
      checkpoint: dir,
      probes,
      patching,
      ablation,
      seconds: { probes: probeSeconds, patching: patchSeconds, ablation: (performance.now() - t) / 1000 },
    };
  } finally {
    await model.release();
  }
}

export async function analyzeCircuits(o: CircuitsOptions): Promise<CircuitsResult> {
  checkDirectory('checkpoint', o.checkpoint);
  if (o.compare !== undefined) checkDirectory('compare', o.compare);
  // Read once up front, so a dataset without labels is refused before any model work.
  readCardRecords(o.data);
  const full = {
    examples: 200,
    pairs: 64,
    seed: 0,
    valFraction: 0.25,
    ablation: 'mean' as AblationKind,
    threshold: 0.05,
    topK: 5,
    // An option given as undefined keeps its default.
    ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
  } as Required<Omit<CircuitsOptions, 'compare' | 'probeHooks' | 'onProgress'>> & CircuitsOptions;
  const checkpoints = [await analyzeOne(o.checkpoint, full)];
  if (o.compare !== undefined) checkpoints.push(await analyzeOne(o.compare, full));
  const result: CircuitsResult = { data: o.data, examples: checkpoints[0].ablation.examples, seed: full.seed, checkpoints };
  if (checkpoints.length === 2) {
    const [a, b] = checkpoints.map((c) => c.ablation);
    result.compare = {
      important_heads: jaccard(a.important_heads, b.important_heads),
      top_heads: jaccard(a.top_heads, b.top_heads),
      important_mlps: jaccard(a.important_mlps, b.important_mlps),
    };
  }
  mkdirSync(o.out, { recursive: true });
  writeFileSync(join(o.out, 'circuits.json'), `${JSON.stringify(result, null, 1)}\n`);
  writeFileSync(join(o.out, 'circuits.html'), circuitsPage(result));
  return result;
}
