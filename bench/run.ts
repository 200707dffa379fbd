/**
 * Benchmark runner: `npm run bench` (all suites) or `npm run bench -- graph` (some of them);
 * `npm run bench -- --readme-only` rewrites the README from the stored results.
 *
 * Each suite (a module under bench/ exporting a function that returns BenchResult[]) writes
 * bench/results/<suite>.json; then bench/README.md is rewritten with one table per suite found in
 * bench/results, so running a subset keeps the other suites' last results in the README.
 *
 * To add a suite: write bench/<name>.bench.ts exporting `async function runXBenchmarks(settings)`,
 * and add it to SUITES below.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runEvalBenchmarks } from './eval.bench';
import { runGenerateBenchmarks } from './generate.bench';
import { runGraphBenchmarks } from './graph.bench';
import { type BenchResult, type BenchSettings, type BenchSuite, type Machine, machine, type SuiteFile, settingsFromEnv } from './harness';
import { runMeshBenchmarks } from './mesh.bench';
import { runOpenAiBenchmarks } from './openai.bench';
import { runPolicyBenchmarks } from './policy.bench';
import { runPpoBenchmarks } from './ppo.bench';
import { runSaeBenchmarks } from './sae.bench';
import { runTextBenchmarks } from './text.bench';
import { runWmilBenchmarks } from './wmil.bench';

const SUITES: BenchSuite[] = [
  {
    name: 'graph',
    description:
      'packages/graph: compiled train steps (Trainer.step, Adam) vs the forward-only inference program of the same model, and Session.run overhead vs raw onnxruntime-node.',
    run: runGraphBenchmarks,
  },
  {
    name: 'wmil',
    description:
      'WMIL end to end: the BabyModel REINFORCE step, the embedded loop, PatternEcho on 5 seeds at 2,048 episodes, SequenceNext and Conditional curricula.',
    run: runWmilBenchmarks,
  },
  {
    name: 'ppo',
    description:
      'PPO in the embedded trainer: CartPole-v1 on 5 seeds at 500k env steps (env steps/s vs the PyTorch CleanRL-style reference in the same run, first env steps at return_mean 475, final return_mean and curve) and Pendulum-v1 on 5 seeds at 500k env steps (final return_mean). RLMESH_BENCH_QUICK=1: 1 seed at 100k each.',
    run: runPpoBenchmarks,
  },
  {
    name: 'policy',
    description:
      'services/policy: Act throughput and p50/p99 latency through the gRPC server on loopback (8 callers x batch 64, dynamic batching) vs the same forward program run in-process by a Session.',
    run: runPolicyBenchmarks,
  },
  {
    name: 'openai',
    description:
      "services/policy's OpenAI-compatible endpoint: completion tokens/s through HTTP with OpenAI's npm client (whole and streamed answers, 1 and 16 callers) vs PolicyCore.generate in-process.",
    run: runOpenAiBenchmarks,
  },
  {
    name: 'mesh',
    description:
      'The mesh: PatternEcho episodes/s through nats-server + learner, policy and env processes, and through the same cores in one process, vs the embedded loop; chunk publish -> consume latency on JetStream vs the in-memory bus.',
    run: runMeshBenchmarks,
  },
  {
    name: 'eval',
    description:
      'services/evaluator: each shipped config (PatternEcho, SequenceNext, Conditional, CartPole) trained (seed 1; WMIL for its shipped length, CartPole 200k env steps), its final weights and first checkpoint evaluated greedy on its suite (configs/suites/): success with 80% Jeffreys intervals per entry and split, dominance of the final weights over the first checkpoint; evaluation episodes/s through the EvaluatorService (gRPC on loopback) vs in process, on the PatternEcho and CartPole suites. RLMESH_BENCH_QUICK=1: short runs (a smoke test).',
    run: runEvalBenchmarks,
  },
  {
    name: 'text',
    description:
      "packages/text: GPT-2 tokenizer encode and decode throughput (MB/s) against js-tiktoken's own encoder over the same ranks, on English prose (the repository's docs) and seeded random multilingual text; both must give identical ids.",
    run: runTextBenchmarks,
  },
  {
    name: 'generate',
    description:
      'GPT-2 generation (the Gpt2Generator loop behind PolicyService.Generate): tokens/s at batch 1 and 16 for the 124M configuration with and without the KV cache, and batch 1 against the memory-bandwidth bound (weight bytes read per token / measured memcpy bandwidth).',
    run: runGenerateBenchmarks,
  },
  {
    name: 'sae',
    description:
      'services/sae: TopK SAE train samples/s (the train-step program, and SaeTrainer.step with its firing count) against the forward-only encode + decode program at (d_in 64, d_sae 256) and (d_in 768, d_sae 16384); a 256-latent TopK and ReLU + L1 SAE on a trained SequenceNext BabyModel (L0, MSE, explained variance, dead fraction, loss recovered, and the feature analysis headline). RLMESH_BENCH_QUICK=1: a smoke test.',
    run: runSaeBenchmarks,
  },
];

const BENCH_DIR = __dirname;
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
const README = path.join(BENCH_DIR, 'README.md');
const COMMAND = 'npm run bench';

function describeMachine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, ${m.os}, Node ${m.node}, onnxruntime-node ${m.onnxruntime}`;
}

function describeSettings(s: BenchSettings): string {
  return `BENCH_THREADS=${s.threads} BENCH_REPEATS=${s.repeats} BENCH_WARMUP=${s.warmup} BENCH_REPEAT_MS=${s.repeatMs}`;
}

/** Three significant digits, without exponent notation for the magnitudes we report. */
function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(3);
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** A markdown table padded the way biome formats markdown, so `biome check .` accepts the README as written. */
function table(results: readonly BenchResult[]): string {
  const header = ['benchmark', 'metric', 'value', 'unit', 'baseline', 'baseline value', 'ratio', 'notes'];
  const right = [false, false, true, false, false, true, true, false];
  const body = results.map((r) => [
    cell(r.name),
    cell(r.metric),
    fmt(r.value),
    cell(r.unit),
    cell(r.baseline?.name ?? ''),
    fmt(r.baseline?.value),
    r.ratio === undefined ? '' : `${fmt(r.ratio)}x`,
    cell(r.notes),
  ]);
  const len = (s: string) => [...s].length;
  const widths = header.map((h, i) => Math.max(3, len(h), ...body.map((row) => len(row[i]))));
  const pad = (s: string, i: number) => {
    const fill = ' '.repeat(widths[i] - len(s));
    return right[i] ? fill + s : s + fill;
  };
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(header.map(pad)),
    line(widths.map((w, i) => (right[i] ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w)))),
    ...body.map((row) => line(row.map(pad))),
  ].join('\n');
}

function readSuiteFiles(): SuiteFile[] {
  const files = readdirSync(RESULTS_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();
  const out: SuiteFile[] = [];
  for (const f of files) {
    try {
      out.push(JSON.parse(readFileSync(path.join(RESULTS_DIR, f), 'utf8')) as SuiteFile);
    } catch (e) {
      process.stderr.write(`[bench] skipping unreadable ${f}: ${(e as Error).message}\n`);
    }
  }
  // Registered suites first, in registration order; unknown ones after.
  const order = (name: string) => {
    const i = SUITES.findIndex((s) => s.name === name);
    return i < 0 ? SUITES.length : i;
  };
  return out.sort((a, b) => order(a.suite) - order(b.suite));
}

function readme(current: Machine, settings: BenchSettings, ranNow: ReadonlySet<string>, suites: readonly SuiteFile[]): string {
  const lines = [
    '# Benchmarks',
    '',
    '<!-- Generated by bench/run.ts; edits are overwritten on the next `npm run bench`. -->',
    '',
    `Command: \`${COMMAND}\` (runs \`tsx --conditions=source bench/run.ts\`; \`${COMMAND} -- <suite>\` runs some suites only, \`${COMMAND} -- --readme-only\` only rewrites this file).`,
    '',
    `Machine: ${describeMachine(current)}.`,
    '',
    `Settings: \`${describeSettings(settings)}\`.`,
    '',
    '## Method',
    '',
    '- Every number is compared with a named baseline measured in the same run, because these machines are noisy: the ratio is the number to watch.',
    `- Each measurement warms up (BENCH_WARMUP calls), calibrates a call count that fills about BENCH_REPEAT_MS, then times ` +
      'BENCH_REPEATS repeats of that many sequential awaited calls with `process.hrtime.bigint()`; the value is the median over repeats of the mean time per call.',
    '- Subject and baseline repeats alternate (S B, B S, S B, ...) so drift in machine load hits both.',
    '- What each ratio divides is stated in its notes. FLOP counts are matmul FLOPs only (element-wise ops ignored); a train step counts as 3x forward.',
    '- Environment: BENCH_THREADS (ORT intra-op threads, default 2), BENCH_REPEATS (5), BENCH_WARMUP (20), BENCH_REPEAT_MS (1500).',
    '',
  ];
  for (const f of suites) {
    lines.push(`## ${f.suite}`, '', f.description, '');
    const stale = !ranNow.has(f.suite);
    const sameMachine = describeMachine(f.machine) === describeMachine(current);
    if (stale || !sameMachine || describeSettings(f.settings) !== describeSettings(settings)) {
      lines.push(
        `_From ${stale ? 'an earlier run' : 'this run'} at ${f.generatedAt} on ${describeMachine(f.machine)}, settings \`${describeSettings(f.settings)}\`._`,
        '',
      );
    } else {
      lines.push(`Measured ${f.generatedAt} in ${f.durationS.toFixed(1)} s; raw results in \`bench/results/${f.suite}.json\`.`, '');
    }
    lines.push(table(f.results), '');
  }
  lines.push(
    '## Adding a benchmark',
    '',
    'Write `bench/<name>.bench.ts` exporting `async function run<Name>Benchmarks(settings: BenchSettings): Promise<BenchResult[]>`',
    '(see `bench/harness.ts` for `BenchResult` and `timePair`), register it in `SUITES` in `bench/run.ts`, and run `npm run bench`.',
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  for (const w of wanted) {
    if (!SUITES.some((s) => s.name === w)) throw new Error(`unknown suite ${w}; known: ${SUITES.map((s) => s.name).join(', ')}`);
  }
  // --readme-only rewrites the README from bench/results without measuring anything.
  const readmeOnly = process.argv.includes('--readme-only');
  const selected = readmeOnly ? [] : wanted.length ? SUITES.filter((s) => wanted.includes(s.name)) : SUITES;
  const settings = settingsFromEnv();
  const m = machine();
  process.stderr.write(`[bench] ${describeMachine(m)}; ${describeSettings(settings)}\n`);
  mkdirSync(RESULTS_DIR, { recursive: true });

  const ran = new Set<string>();
  for (const suite of selected) {
    const t0 = process.hrtime.bigint();
    const results = await suite.run(settings);
    const durationS = Number(process.hrtime.bigint() - t0) / 1e9;
    const file: SuiteFile = {
      suite: suite.name,
      description: suite.description,
      generatedAt: new Date().toISOString(),
      command: COMMAND,
      machine: m,
      settings,
      durationS,
      results,
    };
    const out = path.join(RESULTS_DIR, `${suite.name}.json`);
    writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
    ran.add(suite.name);
    process.stderr.write(
      `[bench] ${suite.name}: ${results.length} results in ${durationS.toFixed(1)} s -> ${path.relative(process.cwd(), out)}\n`,
    );
    process.stdout.write(`\n## ${suite.name}\n\n${table(results)}\n`);
  }

  writeFileSync(README, readme(m, settings, ran, readSuiteFiles()));
  process.stderr.write(`[bench] wrote ${path.relative(process.cwd(), README)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
