/**
 * `rlmesh analyze features`: an SAE's features over an activation store (services/sae/src/analysis):
 * I(z; a | s), label correlations, top examples in context, ID vs OOD density, and matching against
 * another SAE; writes OUT/features.json and OUT/features.html and prints the headlines.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs, UsageError } from './args';

export const ANALYZE_FEATURES_USAGE = `rlmesh analyze features --sae DIR --activations DIR --out DIR [--ood NAME=DIR[,NAME=DIR...]] [--compare SAE_DIR]
      [--state KEY] [--action KEY] [--positions all|last] [--examples N] [--window N] [--checkpoint GPT-2 DIR]
    Reads an SAE (SAELens layout, as rlmesh sae train writes) and an activation store (rlmesh sae
    capture) and writes OUT/features.json and OUT/features.html: per feature I(z; a | s) in bits
    (plug-in over (s, a, z) counts with the Miller-Madow correction; z = active or not), Pearson /
    point-biserial r with every label the rows carry (the card game's total, colour sums, label; the
    action; the rule family), its top-activating rows in context (text: the token in a window), its
    density on each OOD store against the store (ratio; share of features changing by more than 2x),
    and with --compare the decoder-cosine matching against another SAE (best match and one-to-one).
    Keys: none, obs (the observation as a state id), next_token, record.FIELD (the data line's field,
    e.g. record.family, record.answer) or a context field (action, level, labels.label). Defaults:
    state level and action action for episode stores (not obs: the features are a function of the
    observation, so given it they carry no information about anything); state record.family (or none) and action
    next_token for text stores. --positions last keeps only each text line's last token. Text is
    decoded with the tokenizer of --checkpoint (default: the store's checkpoint when a directory).`;

const KNOWN = ['sae', 'activations', 'out', 'ood', 'compare', 'state', 'action', 'positions', 'examples', 'window', 'checkpoint'];

function count(options: Record<string, string>, key: string, fallback: number): number {
  const raw = options[key];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 1000)
    throw new UsageError(`analyze features: --${key}: must be an integer in 0..1000, got ${JSON.stringify(raw)}`);
  return n;
}

export async function analyzeFeatures(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  if (positionals.length > 0)
    throw new UsageError(`analyze features: unexpected argument ${JSON.stringify(positionals[0])}\n${ANALYZE_FEATURES_USAGE}`);
  for (const k of Object.keys(options))
    if (!KNOWN.includes(k))
      throw new UsageError(`analyze features: unknown option --${k} (known: ${KNOWN.map((x) => `--${x}`).join(', ')})`);
  for (const k of ['sae', 'activations', 'out']) if (!options[k]) throw new UsageError(`analyze features: --${k} is required`);
  const positions = options.positions ?? 'all';
  if (positions !== 'all' && positions !== 'last')
    throw new UsageError(`analyze features: --positions must be all or last, got ${JSON.stringify(positions)}`);
  const ood = (options.ood ?? '')
    .split(',')
    .filter((s) => s !== '')
    .map((spec) => {
      const eq = spec.indexOf('=');
      return eq > 0 ? { name: spec.slice(0, eq), dir: spec.slice(eq + 1) } : { name: basename(spec), dir: spec };
    });
  const { analyseFeatures, featuresPage, loadSaeLens, readActivationStore } = await import('@rlmesh/sae');
  const fail = (what: string) => (e: unknown) => {
    throw new UsageError(`analyze features: ${what}: ${(e as Error).message}`);
  };
  const sae = await loadSaeLens(options.sae).catch(fail(`--sae ${options.sae}`));
  const store = await readActivationStore(options.activations).catch(fail('--activations'));
  const oodStores = [];
  for (const o of ood) oodStores.push({ name: o.name, store: await readActivationStore(o.dir).catch(fail(`--ood ${o.name}`)) });
  const compare = options.compare
    ? { name: options.compare, sae: await loadSaeLens(options.compare).catch(fail(`--compare ${options.compare}`)) }
    : undefined;
  const tokDir = options.checkpoint ?? store.metadata.checkpoint;
  let decode: ((ids: number[]) => string) | undefined;
  if (tokDir && existsSync(tokDir) && statSync(tokDir).isDirectory()) {
    const { loadTokenizer } = await import('@rlmesh/text');
    const tok = (() => {
      try {
        return loadTokenizer(tokDir);
      } catch (e) {
        throw new UsageError(`analyze features: --checkpoint ${tokDir}: ${(e as Error).message}`);
      }
    })();
    decode = (ids) => tok.decode(ids);
  } else if (options.checkpoint) throw new UsageError(`analyze features: --checkpoint ${options.checkpoint} is not a directory`);
  const started = performance.now();
  const report = await analyseFeatures({
    sae,
    store,
    ood: oodStores,
    compare,
    state: options.state,
    action: options.action,
    positions,
    examples: count(options, 'examples', 8),
    window: count(options, 'window', 8),
    decode,
  }).catch(fail('analysis'));
  await mkdir(options.out, { recursive: true });
  await writeFile(join(options.out, 'features.json'), `${JSON.stringify(report)}\n`);
  await writeFile(join(options.out, 'features.html'), featuresPage(report));
  const mi = report.mutual_information;
  const f3 = (x: number) => x.toFixed(3);
  console.log(
    `${report.sae.d_sae} features of ${report.sae.hook} over ${report.store.rows_used} rows in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  console.log(
    `I(z; a | s) bits (state ${mi.state}: ${mi.states} values, action ${mi.action}: ${mi.actions}; H(A|S) ${f3(mi.h_action_given_state_bits)}): ` +
      mi.top
        .slice(0, 5)
        .map((m) => `f${m.feature} ${f3(m.mi_bits)}`)
        .join(', '),
  );
  for (const c of report.correlations.slice(0, 12)) console.log(`  ${c.label}: f${c.top[0]?.feature} r ${f3(c.top[0]?.r ?? 0)}`);
  if (report.correlations.length > 12) console.log(`  ... ${report.correlations.length - 12} more labels in features.json`);
  for (const s of report.stability)
    console.log(
      `OOD ${s.name}: ${s.changed}/${s.considered} features change density by > ${s.factor}x (stable fraction ${f3(s.stable_fraction)})`,
    );
  const m = report.matching;
  if (m)
    console.log(
      `vs ${m.other}: best match ${f3(m.best.above_0_9)} above 0.9, ${f3(m.best.above_0_7)} above 0.7` +
        (m.one_to_one ? `; one-to-one (${m.one_to_one.method}) ${f3(m.one_to_one.above_0_9)} / ${f3(m.one_to_one.above_0_7)}` : ''),
    );
  console.log(`written to ${join(options.out, 'features.json')} and features.html`);
  return 0;
}
