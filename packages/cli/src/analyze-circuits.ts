/**
 * `rlmesh analyze circuits`: linear probes, activation patching and ablation importance on a GPT-2
 * checkpoint over card game data (services/sae/src/circuits), optionally against a second
 * checkpoint; writes OUT/circuits.json and OUT/circuits.html and prints the headlines.
 */
import { parseArgs, UsageError } from './args';

export const ANALYZE_CIRCUITS_USAGE = `rlmesh analyze circuits --checkpoint DIR [--compare DIR] --data FILE.jsonl --out DIR [--examples N] [--pairs N]
      [--seed S] [--val-fraction F] [--ablation mean|zero] [--threshold F] [--top-k K] [--probe-hooks H1,H2,...]
    Circuit analysis of a GPT-2 directory (as rlmesh sft writes) on a card game JSONL with labels
    (rlmesh data cards; the first --examples records, default 200): linear probes (ridge R² and
    logistic accuracy on a seeded 1 - F / F split of the examples, F default 0.25, against the mean /
    majority baseline) of total, colour sums, the answer label (last prompt token) and each card's
    selection (its value token), at hook_embed and every block's hook_resid_post (or --probe-hooks);
    activation patching of clean into corrupted runs (a rule colour or a card value changed, and ID
    <-> ood_values pairs; --pairs per kind, default 64) at hook_resid_post per layer and slot and
    attn.hook_z per layer and head, as the normalised logit difference of the two final answers (0
    corrupted, 1 clean); and the drop in exact match and log-prob of the final answer (its tokens
    and EOS, where the card game's verifier reads it, teacher-forced after a worked completion's
    work) when each head or MLP is mean- (or zero-) ablated; a component is important when exact match drops by more
    than --threshold (default 0.05) of the clean one and by two examples or more. --compare runs the same on a second checkpoint
    and reports the Jaccard overlap of the important heads and of the --top-k (default 5) heads.`;

const KNOWN = [
  'checkpoint',
  'compare',
  'data',
  'out',
  'examples',
  'pairs',
  'seed',
  'val-fraction',
  'ablation',
  'threshold',
  'top-k',
  'probe-hooks',
];

function integer(options: Record<string, string>, key: string, lo: number, hi: number): number | undefined {
  const raw = options[key];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < lo || n > hi)
    throw new UsageError(`analyze circuits: --${key}: must be an integer in ${lo}..${hi}, got ${JSON.stringify(raw)}`);
  return n;
}

function fraction(options: Record<string, string>, key: string): number | undefined {
  const raw = options[key];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!(n > 0 && n < 1))
    throw new UsageError(`analyze circuits: --${key}: must be a number between 0 and 1 (exclusive), got ${JSON.stringify(raw)}`);
  return n;
}

export async function analyzeCircuits(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  if (positionals.length > 0)
    throw new UsageError(`analyze circuits: unexpected argument ${JSON.stringify(positionals[0])}\n${ANALYZE_CIRCUITS_USAGE}`);
  for (const k of Object.keys(options))
    if (!KNOWN.includes(k))
      throw new UsageError(`analyze circuits: unknown option --${k} (known: ${KNOWN.map((x) => `--${x}`).join(', ')})`);
  for (const k of ['checkpoint', 'data', 'out']) if (!options[k]) throw new UsageError(`analyze circuits: --${k} is required`);
  const ablation = options.ablation ?? 'mean';
  if (ablation !== 'mean' && ablation !== 'zero')
    throw new UsageError(`analyze circuits: --ablation must be mean or zero, got ${JSON.stringify(ablation)}`);
  const { circuits } = await import('@rlmesh/sae');
  const started = performance.now();
  let r: Awaited<ReturnType<typeof circuits.analyzeCircuits>>;
  try {
    r = await circuits.analyzeCircuits({
      checkpoint: options.checkpoint,
      compare: options.compare,
      data: options.data,
      out: options.out,
      examples: integer(options, 'examples', 10, 100_000),
      pairs: integer(options, 'pairs', 1, 10_000),
      seed: integer(options, 'seed', 0, 2 ** 31 - 1),
      valFraction: fraction(options, 'val-fraction'),
      ablation,
      threshold: fraction(options, 'threshold'),
      topK: integer(options, 'top-k', 1, 10_000),
      probeHooks: options['probe-hooks']?.split(',').filter((h) => h !== ''),
      onProgress: (m) => process.stderr.write(`  ${((performance.now() - started) / 1000).toFixed(1)} s  ${m}\n`),
    });
  } catch (e) {
    throw new UsageError(`analyze circuits: ${(e as Error).message}`);
  }
  for (const c of r.checkpoints) {
    const a = c.ablation;
    const last = c.probes.filter((p) => p.hook === c.probes[c.probes.length - 1].hook);
    console.log(`${c.checkpoint}: clean exact match ${a.clean.exact_match.toFixed(3)} (teacher-forced, ${a.examples} examples)`);
    console.log(
      `  probes at ${last[0]?.hook}: ${last.map((p) => `${p.target}@${p.position} ${(p.regression?.r2 ?? p.classification?.accuracy ?? 0).toFixed(2)} (baseline ${(p.regression?.baseline_r2 ?? p.classification?.baseline_accuracy ?? 0).toFixed(2)})`).join(', ')}`,
    );
    for (const k of c.patching) {
      const best = k.resid.patched
        .flatMap((row, l) => row.map((v, s) => ({ v: v ?? Number.NEGATIVE_INFINITY, at: `L${l} ${k.resid.slots[s]}` })))
        .filter((x) => x.at.split(' ')[1] !== 'readout' && x.at.split(' ')[1] !== 'answer')
        .sort((x, y) => y.v - x.v)[0];
      console.log(
        `  patching ${k.kind}: ${k.pairs} pairs, logit diff clean ${k.source_logit_diff.toFixed(2)} corrupted ${k.target_logit_diff.toFixed(2)}; strongest resid patch before the answer ${best ? `${best.at} ${best.v.toFixed(2)}` : 'none'}${circuits.separated(k) ? '' : ' (clean and corrupted barely differ: noise)'}`,
      );
    }
    console.log(
      `  important heads (exact match -${a.threshold * 100}% of clean): ${a.important_heads.join(' ') || 'none'}; MLPs: ${a.important_mlps.join(' ') || 'none'}; top ${a.top_k} by log-prob drop: ${a.top_heads.join(' ')}`,
    );
  }
  if (r.compare)
    console.log(
      `Jaccard (A vs B): important heads ${r.compare.important_heads ?? 'n/a'}, top heads ${r.compare.top_heads ?? 'n/a'}, important MLPs ${r.compare.important_mlps ?? 'n/a'}`,
    );
  console.log(`wrote ${options.out}/circuits.json and circuits.html in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}
