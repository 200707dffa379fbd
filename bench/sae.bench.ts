/**
 * services/sae: SAE training throughput and the SAE table on a trained BabyModel.
 *
 * Throughput (TopK, random activations, the shapes do not depend on the data): samples/s of the
 * train-step program (Trainer.step: forward, backward and Adam in one ONNX program) and of
 * SaeTrainer.step (that program plus the forward pass that counts firing latents, input scaling and
 * checks), each against the forward-only program (encode + decode, Session.run) in the same run, at
 * (d_in 64, d_sae 256, batch 4096) and (d_in 768, d_sae 16384, batch 256).
 *
 * The BabyModel table: configs/wmil-sequence-next.yaml trained (seed 1), blocks.1.hook_resid_post
 * captured over 20,000 one-step episodes at level 2, a 256-latent TopK (k 20) and ReLU + L1 (c 3) SAE
 * trained on it (lr 1e-3, batch 1024), metrics on the held-out rows, loss recovered on 4,096 stored
 * observations, and the feature analysis's headline numbers. RLMESH_BENCH_QUICK=1: 200 SAE steps and
 * 4,000 episodes (a smoke test, not the table).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { Session, Trainer } from '@rlmesh/graph';
import { loadPolicyFile, parseRunConfig, trainEmbedded } from '@rlmesh/learner';
import {
  analyseFeatures,
  buildSaeForwardProgram,
  buildSaeTrainProgram,
  captureActivations,
  initialSaeParameters,
  lossRecovered,
  readActivationStore,
  SAE_BATCH,
  SaeTrainer,
  saeConfig,
  trainOnStore,
} from '@rlmesh/sae';
import { parse as parseYaml } from 'yaml';
import { type BenchResult, type BenchSettings, describeTiming, timePair } from './harness';

const ROOT = join(__dirname, '..');
const QUICK = process.env.RLMESH_BENCH_QUICK === '1';

function log(msg: string): void {
  process.stderr.write(`[bench:sae] ${msg}\n`);
}

function randomRows(rng: Rng, rows: number, d: number): Float32Array {
  return Float32Array.from({ length: rows * d }, () => rng.normal());
}

async function throughput(dIn: number, dSae: number, batch: number, s: BenchSettings): Promise<BenchResult[]> {
  const cfg = saeConfig({ architecture: 'topk', d_in: dIn, d_sae: dSae, k: 32, lr: 1e-4 });
  const rng = new Rng(1);
  const x = randomRows(rng, batch, dIn);
  const options = { intraOpThreads: s.threads };
  const t0 = Date.now();
  const trainer = await Trainer.create(buildSaeTrainProgram(cfg), initialSaeParameters(cfg), options);
  const saeTrainer = await SaeTrainer.create(cfg, { data: x, rows: batch }, options);
  const forward = buildSaeForwardProgram(cfg);
  const session = await Session.create(forward.onnx, options);
  const flat = forward.layout.pack(initialSaeParameters(cfg));
  log(`d_in ${dIn}, d_sae ${dSae}: programs built in ${Date.now() - t0} ms`);
  const feeds = {
    [SAE_BATCH.x]: { data: x, shape: [batch, dIn] },
    [SAE_BATCH.coefficient]: { data: Float32Array.of(0), shape: [] },
    [SAE_BATCH.deadMask]: { data: new Float32Array(dSae), shape: [dSae] },
    [SAE_BATCH.auxScale]: { data: Float32Array.of(0), shape: [] },
  };
  const fwd = () => session.run({ params: { data: flat, shape: [flat.length] }, x: { data: x, shape: [batch, dIn] } }, ['sae_out']);
  // One call of the large size takes seconds: a few calls per repeat are enough to time it.
  const big = dIn * dSae > 1e6;
  const settings = big ? { ...s, warmup: 1, repeats: 3, repeatMs: 1 } : s;
  const name = `sae topk d_in ${dIn} d_sae ${dSae} batch ${batch}`;
  const out: BenchResult[] = [];
  try {
    const step = await timePair(() => trainer.step(feeds, cfg.lr), fwd, settings);
    const full = await timePair(() => saeTrainer.step({ data: x, rows: batch }), fwd, settings);
    const rate = (ns: number) => (batch * 1e9) / ns;
    out.push({
      name: `${name}: train-step program`,
      metric: 'samples/s',
      value: rate(step.subject.medianNs),
      unit: 'samples/s',
      baseline: { name: 'forward-only program (encode + decode)', value: rate(step.baseline.medianNs) },
      ratio: step.baseline.medianNs / step.subject.medianNs,
      notes: `Trainer.step (forward, backward, Adam in one ONNX program) / Session.run of the forward program; ${describeTiming('train', step.subject)}; ${describeTiming('forward', step.baseline)}`,
    });
    out.push({
      name: `${name}: SaeTrainer.step`,
      metric: 'samples/s',
      value: rate(full.subject.medianNs),
      unit: 'samples/s',
      baseline: { name: 'forward-only program (encode + decode)', value: rate(full.baseline.medianNs) },
      ratio: full.baseline.medianNs / full.subject.medianNs,
      notes: `the train step plus the forward pass counting firing latents, input scaling and checks; ${describeTiming('train', full.subject)}; ${describeTiming('forward', full.baseline)}`,
    });
  } finally {
    await trainer.release();
    await saeTrainer.release();
    await session.release();
  }
  for (const r of out)
    log(`${r.name}: ${r.value.toFixed(0)} samples/s vs forward ${r.baseline?.value.toFixed(0)} (${r.ratio?.toFixed(3)}x)`);
  return out;
}

async function babyModelTable(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-bench-sae-'));
  try {
    const raw = parseYaml(readFileSync(join(ROOT, 'configs', 'wmil-sequence-next.yaml'), 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    const summary = await trainEmbedded(parseRunConfig({ ...raw, run: { ...raw.run, name: 'run', seed: 1, out_dir: dir } }));
    log(`SequenceNext: ${summary.updates} updates in ${summary.seconds.toFixed(1)} s, final success ${summary.final_success.toFixed(3)}`);
    const checkpoint = join(dir, 'run', 'model.safetensors');
    const hook = 'blocks.1.hook_resid_post';
    const episodes = QUICK ? 4000 : 20_000;
    let t = Date.now();
    await captureActivations(checkpoint, hook, { env: { episodes, level: 2, seed: 0 } }, join(dir, 'acts'));
    log(`captured ${episodes} episodes in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const store = await readActivationStore(join(dir, 'acts'));
    const policy = await loadPolicyFile(checkpoint);
    const obsRows = Math.min(4096, store.rows);
    const obs = (store.observations as { data: Float32Array; d: number }).data.subarray(0, obsRows * policy.model.obsDim);
    const steps = QUICK ? 200 : 2000;
    const kinds: [string, Record<string, unknown>][] = [
      ['TopK k=20', { architecture: 'topk', k: 20 }],
      ['ReLU+L1 c=3', { architecture: 'standard', l1_coefficient: 3, l1_warm_up_steps: 200 }],
    ];
    const out: BenchResult[] = [];
    const table = `SequenceNext (seed 1, final success ${summary.final_success.toFixed(3)}), ${hook}, ${store.rows} rows (${episodes} one-step episodes at level 2: 24 distinct states), 256 latents, ${steps} steps x 1024, lr 1e-3`;
    for (const [label, extra] of kinds) {
      t = Date.now();
      const trained = await trainOnStore(store, { d_sae: 256, lr: 1e-3, ...extra }, { steps, batchSize: 1024 });
      const seconds = (Date.now() - t) / 1000;
      const lr = await lossRecovered(policy, hook, trained.weights, obs, obsRows);
      const features = await analyseFeatures({ sae: trained.weights, store, examples: 1 });
      const m = trained.metrics;
      const actionLabels = features.correlations.filter((c) => c.label.startsWith('action='));
      const covered = actionLabels.filter((c) => (c.top[0]?.r ?? 0) > 0.9).length;
      const topMi = features.mutual_information.top[0];
      log(
        `${label}: l0 ${m.l0.toFixed(2)} mse ${m.mse.toFixed(4)} ev ${m.explained_variance.toFixed(4)} dead ${m.dead_fraction.toFixed(3)} recovered ${lr.recovered.toFixed(4)} (${seconds.toFixed(0)} s)`,
      );
      const row = (metric: string, value: number, unit: string, notes: string): BenchResult => ({
        name: `BabyModel SAE ${label}`,
        metric,
        value,
        unit,
        notes,
      });
      out.push(
        row('L0', m.l0, 'latents', `${table}; on the ${m.rows} held-out rows`),
        row('MSE (scaled)', m.mse, 'per element', 'inputs scaled to mean norm sqrt(d_in)'),
        row('explained variance', m.explained_variance, 'fraction', '1 - SSE / SS about the batch mean'),
        row('dead fraction', m.dead_fraction, 'fraction', 'latents that fired on no held-out row'),
        row(
          'loss recovered',
          lr.recovered,
          'fraction',
          `(L_zero - L_sae) / (L_zero - L_clean) over ${obsRows} observations: clean ${lr.clean.toFixed(4)}, SAE ${lr.sae.toFixed(4)}, zero ${lr.zero.toFixed(4)}`,
        ),
        row('train time', seconds, 's', 'trainOnStore, shared 2 cores'),
        row(
          'max I(z; a)',
          topMi.mi_bits,
          'bits',
          `f${topMi.feature}; state key level (one level), so I(z; a); H(A) ${features.mutual_information.h_action_given_state_bits.toFixed(3)} bits; ${covered} of ${actionLabels.length} actions have a feature with point-biserial r > 0.9`,
        ),
      );
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runSaeBenchmarks(s: BenchSettings): Promise<BenchResult[]> {
  return [...(await throughput(64, 256, 4096, s)), ...(await throughput(768, 16384, 256, s)), ...(await babyModelTable())];
}
