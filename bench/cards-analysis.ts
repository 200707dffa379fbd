/**
 * The card game's SAE and circuit analysis of an SFT and an RL checkpoint, in one command:
 *
 *   nice -n 10 npx tsx --conditions=source bench/cards-analysis.ts --sft DIR --rl DIR --data DIR --out DIR \
 *     [--hook blocks.3.hook_resid_post] [--k 20] [--l1 2] [--steps 1200] [--batch-size 512] [--lr 1e-3]
 *     [--examples 200] [--pairs 64] [--only sft,rl,circuits]
 *
 * --data is a directory of `rlmesh data cards` (test_id.jsonl and test_ood_*.jsonl). Stages:
 *   sft, rl    for that checkpoint: each test split written as prompt + completion text (OUT/data: the
 *              record with `text` added, so capture reads every token of the prompt and of the worked
 *              completion, EOS aside); `rlmesh sae capture` of --hook on every split; a TopK (k) and a
 *              ReLU + L1 (coefficient l1) SAE of 256 latents trained on the ID store (metrics on its
 *              held-out rows, scaled inputs); `rlmesh sae loss-recovered` of each on the ID store;
 *              `rlmesh analyze features` of each on the ID store with the OOD stores as --ood (the RL
 *              SAEs matched against the SFT ones of the same kind by --compare when those exist).
 *   circuits   `rlmesh analyze circuits --checkpoint SFT --compare RL` on test_id.jsonl.
 * Defaults: k 20 and l1 2 put L0 inside the 15-30 range the SAE targets ask for (with MSE < 0.1) on the 6-layer card model's blocks.3 residual
 * (ReLU + L1 at c 2 on an intermediate SFT checkpoint: L0 23, MSE 0.044; c 1: L0 29; c 4: L0 17);
 * 1,200 steps of 512 rows are about 27 passes over the ~23,000 ID training rows.
 * Each stage runs the CLI (what a person would type; the commands land in OUT/commands.sh) and writes
 * OUT/<stage>.json; OUT/summary.json gathers the stages there are, so stages can run as their
 * checkpoints appear (--only). Run it under nice on a shared machine: it uses one core per command.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';

const ROOT = join(__dirname, '..');
const CLI = join(ROOT, 'node_modules', '.bin', 'rlmesh');
const D_SAE = 256;

interface Options {
  sft?: string;
  rl?: string;
  data: string;
  out: string;
  hook: string;
  k: number;
  l1: number;
  steps: number;
  batchSize: number;
  lr: number;
  examples: number;
  pairs: number;
  only: string[];
}

const STAGES = ['sft', 'rl', 'circuits'];

function fail(message: string): never {
  process.stderr.write(`cards-analysis: ${message}\n`);
  process.exit(2);
}

function parseOptions(argv: readonly string[]): Options {
  const raw: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) fail(`expected --key value pairs, got ${JSON.stringify(argv[i])}`);
    raw[argv[i].slice(2)] = argv[i + 1];
  }
  const known = ['sft', 'rl', 'data', 'out', 'hook', 'k', 'l1', 'steps', 'batch-size', 'lr', 'examples', 'pairs', 'only'];
  for (const k of Object.keys(raw)) if (!known.includes(k)) fail(`unknown option --${k} (known: ${known.map((x) => `--${x}`).join(', ')})`);
  const num = (key: string, fallback: number, integer = true): number => {
    if (raw[key] === undefined) return fallback;
    const n = Number(raw[key]);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
      fail(`--${key}: must be a positive ${integer ? 'integer' : 'number'}`);
    return n;
  };
  if (!raw.data || !raw.out) fail('--data DIR and --out DIR are required');
  const only = (raw.only ?? STAGES.join(',')).split(',').filter((s) => s !== '');
  for (const s of only) if (!STAGES.includes(s)) fail(`--only: unknown stage ${JSON.stringify(s)} (stages: ${STAGES.join(', ')})`);
  for (const s of only.filter((s) => s !== 'circuits')) if (!raw[s]) fail(`stage ${s} needs --${s} DIR`);
  if (only.includes('circuits') && !(raw.sft && raw.rl)) fail('stage circuits needs --sft DIR and --rl DIR');
  for (const key of ['sft', 'rl'])
    if (raw[key] && !existsSync(join(raw[key], 'config.json'))) fail(`--${key} ${raw[key]}: no config.json (not a GPT-2 directory)`);
  if (!existsSync(join(raw.data, 'test_id.jsonl'))) fail(`--data ${raw.data}: no test_id.jsonl (a directory of rlmesh data cards)`);
  return {
    sft: raw.sft && resolve(raw.sft),
    rl: raw.rl && resolve(raw.rl),
    data: resolve(raw.data),
    out: resolve(raw.out),
    hook: raw.hook ?? 'blocks.3.hook_resid_post',
    k: num('k', 20),
    l1: num('l1', 2, false),
    steps: num('steps', 1200),
    batchSize: num('batch-size', 512),
    lr: num('lr', 1e-3, false),
    examples: num('examples', 200),
    pairs: num('pairs', 64),
    only,
  };
}

interface CommandRun {
  command: string;
  seconds: number;
  stdout: string;
}

/** Runs the CLI with `args`, echoing its output; a failure stops the script with the command named. */
function rlmesh(o: Options, args: string[]): CommandRun {
  const command = ['rlmesh', ...args].map((a) => (/^[\w./=,:@+-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  appendFileSync(join(o.out, 'commands.sh'), `${command}\n`);
  process.stderr.write(`\n$ ${command}\n`);
  const started = performance.now();
  const r = spawnSync(CLI, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write(r.stdout ?? '');
  if (r.status !== 0) fail(`${command}: exit ${r.status ?? r.signal}`);
  process.stderr.write(`  (${seconds.toFixed(1)} s)\n`);
  return { command, seconds, stdout: r.stdout };
}

/** The test splits of the data directory: id first, then the OOD ones. */
function splits(o: Options): string[] {
  const names = readdirSync(o.data)
    .filter((f) => /^test_.+\.jsonl$/.test(f))
    .map((f) => f.slice('test_'.length, -'.jsonl'.length));
  return ['id', ...names.filter((n) => n !== 'id').sort()];
}

/** Each record with `text` = prompt + completion, the text capture reads. */
function textData(o: Options, split: string): string {
  const dir = join(o.out, 'data');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${split}.jsonl`);
  const lines = readFileSync(join(o.data, `test_${split}.jsonl`), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  writeFileSync(
    path,
    lines
      .map((l) => {
        const r = JSON.parse(l);
        return JSON.stringify({ text: `${r.prompt}${r.completion}`, ...r });
      })
      .join('\n') + '\n',
  );
  return path;
}

/** The metadata in a safetensors header (capture writes the checkpoint and hook there), or null. */
function storeMetadata(path: string): Record<string, string> | null {
  if (!existsSync(path)) return null;
  const fd = openSync(path, 'r');
  try {
    const size = Buffer.alloc(8);
    readSync(fd, size, 0, 8, 0);
    const header = Buffer.alloc(Number(size.readBigUInt64LE(0)));
    readSync(fd, header, 0, header.length, 8);
    return JSON.parse(header.toString('utf8')).__metadata__ ?? null;
  } finally {
    closeSync(fd);
  }
}

const LOSS_LINE = /clean ([\d.e+-]+)\s+sae ([\d.e+-]+)\s+zero-ablated ([\d.e+-]+)\s+recovered ([\d.e+-]+)/;

function saeStage(o: Options, stage: 'sft' | 'rl'): Record<string, unknown> {
  const checkpoint = o[stage] as string;
  const root = join(o.out, stage);
  mkdirSync(root, { recursive: true });
  const names = splits(o);
  const captures: Record<string, CommandRun & { rows: number }> = {};
  for (const split of names) {
    const store = join(root, 'acts', split);
    // A store an earlier run captured from this checkpoint and hook is kept: capture is deterministic.
    const kept = storeMetadata(join(store, 'activations.safetensors'));
    if (kept?.checkpoint === checkpoint && kept.hook === o.hook) {
      process.stderr.write(`\n(kept ${store})\n`);
      captures[split] = { command: 'kept from an earlier run', seconds: 0, stdout: '', rows: Number.NaN };
      continue;
    }
    const run = rlmesh(o, ['sae', 'capture', '--checkpoint', checkpoint, '--hook', o.hook, '--data', textData(o, split), '--out', store]);
    captures[split] = { ...run, rows: Number(/captured (\d+) rows/.exec(run.stdout)?.[1] ?? Number.NaN) };
  }
  const kinds = [
    { id: 'topk', config: ['--config.architecture', 'topk', '--config.k', String(o.k)] },
    {
      id: 'relu-l1',
      config: [
        '--config.architecture',
        'standard',
        '--config.l1_coefficient',
        String(o.l1),
        '--config.l1_warm_up_steps',
        String(Math.round(o.steps / 5)),
      ],
    },
  ];
  const saes: Record<string, unknown> = {};
  for (const kind of kinds) {
    const train = rlmesh(o, [
      'sae',
      'train',
      '--activations',
      'acts/id', // train reads stores relative to --root
      '--root',
      root,
      '--id',
      kind.id,
      '--steps',
      String(o.steps),
      '--batch-size',
      String(o.batchSize),
      '--config.d_sae',
      String(D_SAE),
      '--config.lr',
      String(o.lr),
      ...kind.config,
    ]);
    const dir = join(root, 'saes', kind.id);
    const record = JSON.parse(readFileSync(join(dir, 'rlmesh_sae.json'), 'utf8'));
    const lr = rlmesh(o, ['sae', 'loss-recovered', '--checkpoint', checkpoint, '--sae', dir, '--activations', join(root, 'acts', 'id')]);
    const m = LOSS_LINE.exec(lr.stdout);
    const ood = names
      .filter((n) => n !== 'id')
      .map((n) => `${n}=${join(root, 'acts', n)}`)
      .join(',');
    const other = stage === 'rl' && o.sft ? join(o.out, 'sft', 'saes', kind.id) : null;
    const featuresOut = join(root, 'features', kind.id);
    const features = rlmesh(o, [
      'analyze',
      'features',
      '--sae',
      dir,
      '--activations',
      join(root, 'acts', 'id'),
      '--checkpoint',
      checkpoint,
      ...(ood ? ['--ood', ood] : []),
      ...(other && existsSync(join(other, 'cfg.json')) ? ['--compare', other] : []),
      '--out',
      featuresOut,
    ]);
    saes[kind.id] = {
      metrics: { ...record.metrics, density: undefined },
      train: { command: train.command, seconds: train.seconds, steps: record.steps, batch_size: record.batch_size },
      loss_recovered: m
        ? { clean: Number(m[1]), sae: Number(m[2]), zero: Number(m[3]), recovered: Number(m[4]), command: lr.command, seconds: lr.seconds }
        : { command: lr.command, seconds: lr.seconds, stdout: lr.stdout },
      features: { ...featureHeadline(join(featuresOut, 'features.json')), command: features.command, seconds: features.seconds },
    };
  }
  return { checkpoint, hook: o.hook, rows: 'every token of prompt + completion of each test record', captures, saes };
}

/** The feature analysis's headline: the best I(z; a | s), the best |r| per label, ID vs OOD stability, matching. */
function featureHeadline(path: string): Record<string, unknown> {
  const r = JSON.parse(readFileSync(path, 'utf8'));
  const mi = r.mutual_information;
  return {
    rows: r.store?.rows_used,
    mutual_information: {
      state: mi.state,
      action: mi.action,
      h_action_given_state_bits: mi.h_action_given_state_bits,
      top: mi.top.slice(0, 5).map((x: { feature: number; mi_bits: number }) => ({ feature: x.feature, mi_bits: x.mi_bits })),
    },
    correlations: Object.fromEntries(
      r.correlations.map((c: { label: string; top: { feature: number; r: number }[] }) => [
        c.label,
        { feature: c.top[0]?.feature, r: c.top[0]?.r },
      ]),
    ),
    stability: r.stability.map((s: Record<string, unknown>) => ({
      name: s.name,
      changed: s.changed,
      considered: s.considered,
      stable_fraction: s.stable_fraction,
    })),
    matching: r.matching ? { other: r.matching.other, best: r.matching.best, one_to_one: r.matching.one_to_one ?? null } : null,
  };
}

/** The parts of circuits.json the summary keeps. */
interface CircuitsJson {
  examples: number;
  compare?: Record<string, number | null>;
  checkpoints: {
    checkpoint: string;
    seconds: Record<string, number>;
    ablation: { clean: unknown; important_heads: string[]; important_mlps: string[]; top_heads: string[] };
    patching: { kind: string; pairs: number; source_logit_diff: number; target_logit_diff: number }[];
    probes: {
      hook: string;
      target: string;
      position: string;
      regression?: { r2: number; baseline_r2: number };
      classification?: { accuracy: number; baseline_accuracy: number };
    }[];
  }[];
}

function circuitsStage(o: Options): Record<string, unknown> {
  const out = join(o.out, 'circuits');
  const run = rlmesh(o, [
    'analyze',
    'circuits',
    '--checkpoint',
    o.sft as string,
    '--compare',
    o.rl as string,
    '--data',
    join(o.data, 'test_id.jsonl'),
    '--out',
    out,
    '--examples',
    String(o.examples),
    '--pairs',
    String(o.pairs),
  ]);
  const r: CircuitsJson = JSON.parse(readFileSync(join(out, 'circuits.json'), 'utf8'));
  return {
    command: run.command,
    seconds: run.seconds,
    examples: r.examples,
    compare: r.compare,
    checkpoints: r.checkpoints.map((c) => ({
      checkpoint: c.checkpoint,
      seconds: c.seconds,
      clean: c.ablation.clean,
      important_heads: c.ablation.important_heads,
      important_mlps: c.ablation.important_mlps,
      top_heads: c.ablation.top_heads,
      patching: c.patching.map((k) => ({
        kind: k.kind,
        pairs: k.pairs,
        source_logit_diff: k.source_logit_diff,
        target_logit_diff: k.target_logit_diff,
      })),
      probes_last_layer: c.probes
        .filter((p) => p.hook === c.probes[c.probes.length - 1].hook)
        .map((p) => ({
          target: p.target,
          position: p.position,
          score: p.regression?.r2 ?? p.classification?.accuracy,
          baseline: p.regression?.baseline_r2 ?? p.classification?.baseline_accuracy,
        })),
    })),
  };
}

function main(): void {
  const o = parseOptions(process.argv.slice(2));
  mkdirSync(o.out, { recursive: true });
  if (!existsSync(CLI)) fail(`${CLI} missing: run npm install and npx tsc -b first`);
  for (const stage of o.only) {
    const started = performance.now();
    const load = loadavg();
    const result = stage === 'circuits' ? circuitsStage(o) : saeStage(o, stage as 'sft' | 'rl');
    const seconds_total = (performance.now() - started) / 1000;
    // The machine is shared: the load average at the start says how contended the wall times are.
    const machine = { cpus: cpus().length, loadavg_at_start: load };
    writeFileSync(join(o.out, `${stage}.json`), `${JSON.stringify({ stage, ...result, seconds_total, machine }, null, 1)}\n`);
  }
  const summary: Record<string, unknown> = { out: o.out, data: o.data, cpus: cpus().length, loadavg_at_end: loadavg() };
  for (const stage of STAGES) {
    const path = join(o.out, `${stage}.json`);
    if (existsSync(path)) summary[stage] = JSON.parse(readFileSync(path, 'utf8'));
  }
  writeFileSync(join(o.out, 'summary.json'), `${JSON.stringify(summary, null, 1)}\n`);
  process.stderr.write(
    `\nwrote ${join(o.out, 'summary.json')} (stages: ${STAGES.filter((s) => summary[s]).join(', ') || 'none'}; ${basename(o.out)})\n`,
  );
}

main();
