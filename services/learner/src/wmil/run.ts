/**
 * WMIL in one process (embedded mode): vectorised symbolic environments, the policy acting from the
 * learner's current parameters, and the REINFORCE train step. Reads top to bottom:
 *   config -> env + model + programs -> (resume) -> loop { rollout, returns, update, log, curriculum,
 *   checkpoint } -> export policy ONNX -> summary with the source's MVP criteria.
 * Every update starts its episodes from a seed derived from (run seed, update index), and the action
 * sampler is seeded the same way, so a resumed run replays the uninterrupted one exactly.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { makeEnv, VectorEnv } from '@rlmesh/env';
import {
  buildForwardProgram,
  initParameters,
  loadTrainingCheckpoint,
  Session,
  saveTrainingCheckpoint,
  softmax,
  Trainer,
} from '@rlmesh/graph';
import type { WmilConfig } from './config';
import { type MvpReport, mvpCriteria } from './criteria';
import { Curriculum } from './curriculum';
import { discountedReturns } from './returns';
import { buildWmil, exportPolicy } from './setup';

export interface UpdateMetrics {
  update: number;
  episodes: number;
  level: number;
  success: number;
  metrics: Record<string, number>;
  updates_per_s: number;
  episodes_per_s: number;
}

export interface RunHooks {
  onUpdate?(m: UpdateMetrics): void;
  /** Resume from a training checkpoint written by an earlier run. */
  resumeFrom?: string;
  /** Stop after this many updates in this call (tests use it to cut a run in two). */
  maxUpdates?: number;
}

export interface RunSummary {
  run_dir: string;
  updates: number;
  episodes: number;
  final_success: number;
  best_success: number;
  level: number;
  parameters: number;
  seconds: number;
  episodes_per_s: number;
  updates_per_s: number;
  mvp: MvpReport;
}

/** A seed for (run seed, update, stream): distinct streams never collide for realistic sizes. */
const derivedSeed = (seed: number, update: number, stream: number) => ((seed * 1_000_003 + update) * 7 + stream) % 2 ** 31;

export async function runWmil(cfg: WmilConfig, hooks: RunHooks = {}): Promise<RunSummary> {
  // ---- environments, model and programs ------------------------------------------------------
  const N = cfg.env.num_envs;
  const L = cfg.env.max_episode_steps;
  const envOpts = { numSymbols: cfg.env.num_symbols, numActions: cfg.env.num_symbols, maxEpisodeSteps: L };
  const vec = new VectorEnv(Array.from({ length: N }, () => makeEnv(cfg.env.id, envOpts)));
  const { model, program, components, numLevels, obsDim: S, numActions: A } = buildWmil(cfg);
  const algo = cfg.algo;
  if (cfg.env.start_level >= numLevels)
    throw new Error(`env.start_level: ${cfg.env.id} has levels 0..${numLevels - 1}, got ${cfg.env.start_level}`);
  const obsSpec = [{ name: 'obs', dtype: 'float32' as const, shape: ['batch', S] }];
  const policyFwd = buildForwardProgram({
    module: model,
    inputs: obsSpec,
    forward: (i) => ({ probs: softmax(model.forward(i.obs).logits, -1) }),
  });
  // Policy and learner sessions take turns on the same cores. A batch-64 forward gains nothing from
  // a thread pool, and a second spinning pool starves the learner's (measured: 12k -> 22k episodes/s).
  const sessionOpts = { intraOpThreads: cfg.train.threads };
  const policy = await Session.create(policyFwd.onnx, { intraOpThreads: 1 });
  const trainer = await Trainer.create(program, initParameters(model, new Rng(cfg.run.seed)), sessionOpts);

  // ---- run directory and resume -------------------------------------------------------------
  const runDir = join(cfg.run.out_dir, cfg.run.name);
  mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
  writeFileSync(join(runDir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  const metricsPath = join(runDir, 'metrics.jsonl');
  let baseline = 0;
  let startUpdate = 0;
  let curriculum = new Curriculum(cfg, numLevels);
  if (hooks.resumeFrom) {
    const meta = await loadTrainingCheckpoint(hooks.resumeFrom, trainer);
    baseline = Number(meta.baseline);
    startUpdate = trainer.stepCount;
    curriculum = new Curriculum(cfg, numLevels, { level: Number(meta.level), history: JSON.parse(meta.success_history) as number[] });
  } else if (existsSync(metricsPath)) {
    writeFileSync(metricsPath, '');
  }
  const totalUpdates = Math.ceil(cfg.train.total_episodes / N);
  const stopAt = Math.min(totalUpdates, hooks.maxUpdates !== undefined ? startUpdate + hooks.maxUpdates : totalUpdates);

  // ---- buffers (one update = N episodes of L steps) -----------------------------------------
  const B = N * L;
  const obsBuf = new Float32Array(B * S);
  const nextBuf = new Float32Array(B * S);
  const actBuf = new BigInt64Array(B);
  const actions = new Int32Array(N);
  const rewardBuf = Object.fromEntries(components.map((c) => [c, new Float32Array(B)]));
  const returnBuf = Object.fromEntries(components.map((c) => [c, new Float32Array(B)]));
  const saveCheckpoint = async (update: number) => {
    const path = join(runDir, 'checkpoints', `update-${String(update).padStart(6, '0')}.safetensors`);
    await saveTrainingCheckpoint(path, trainer, {
      baseline: String(baseline),
      level: String(curriculum.level),
      success_history: JSON.stringify(curriculum.history),
      config: JSON.stringify(cfg),
    });
    return path;
  };

  const t0 = performance.now();
  let success = 0;
  let best = 0;
  let episodesDone = startUpdate * N;
  for (let update = startUpdate; update < stopAt; update++) {
    // rollout: all N episodes start together and end together at the time limit (fix #1)
    const sampler = new Rng(derivedSeed(cfg.run.seed, update, 1));
    const level = curriculum.level;
    let obs = vec.reset(derivedSeed(cfg.run.seed, update, 0), { difficulty: level });
    let successes = 0;
    for (let t = 0; t < L; t++) {
      const out = await policy.run({
        params: { data: trainer.flatParams as Float32Array, shape: [policyFwd.layout.total] },
        obs: { data: obs, shape: [N, S] },
      });
      const probs = out.probs.data as Float32Array;
      for (let i = 0; i < N; i++) actions[i] = sampler.categorical(probs.subarray(i * A, (i + 1) * A));
      const row = t * N;
      obsBuf.set(obs, row * S); // before stepping: the vector env reuses its observation buffer
      const step = vec.step(actions);
      for (let i = 0; i < N; i++) {
        actBuf[row + i] = BigInt(actions[i]);
        successes += step.success[i];
        const done = step.terminated[i] || step.truncated[i];
        nextBuf.set((done ? step.finalObs : step.obs).subarray(i * S, (i + 1) * S), (row + i) * S);
      }
      for (const c of components) rewardBuf[c].set(step.rewards[c], row);
      obs = step.obs;
    }
    // returns: discounted sums to the end of each episode, per component
    // (every episode spans the whole rollout, so no step inside it is a boundary)
    for (const c of components) discountedReturns(rewardBuf[c], null, L, N, algo.gamma, returnBuf[c]);
    const batch: Record<string, { data: Float32Array | BigInt64Array; shape: number[] }> = {
      obs: { data: obsBuf, shape: [B, S] },
      actions: { data: actBuf, shape: [B] },
      next_obs: { data: nextBuf, shape: [B, S] },
      baseline: { data: Float32Array.of(baseline), shape: [] },
    };
    for (const c of components) batch[`return.${c}`] = { data: returnBuf[c], shape: [B] };
    const metrics = await trainer.step(batch, algo.lr);
    if (algo.baseline === 'ema') baseline = metrics.baseline;

    // bookkeeping: success, curriculum, logs, checkpoints
    const batchSuccess = successes / B;
    curriculum.record(batchSuccess);
    success = curriculum.success;
    best = Math.max(best, success);
    episodesDone += N;
    const seconds = (performance.now() - t0) / 1000;
    const done = update + 1 - startUpdate;
    const record: UpdateMetrics = {
      update: update + 1,
      episodes: episodesDone,
      level: curriculum.level,
      success: batchSuccess,
      metrics,
      updates_per_s: done / seconds,
      episodes_per_s: (done * N) / seconds,
    };
    appendFileSync(metricsPath, `${JSON.stringify({ ...record, success_mean: success })}\n`);
    hooks.onUpdate?.(record);
    if (cfg.train.checkpoint_every > 0 && (update + 1) % cfg.train.checkpoint_every === 0) await saveCheckpoint(update + 1);
  }
  const seconds = (performance.now() - t0) / 1000;
  const updates = stopAt - startUpdate;

  // ---- outputs: final checkpoint, weights, policy ONNX, summary -----------------------------
  await saveCheckpoint(stopAt);
  await exportPolicy(runDir, cfg, model, trainer.parameters());
  const mvp = mvpCriteria(metricsPath, A);
  const summary: RunSummary = {
    run_dir: runDir,
    updates: stopAt,
    episodes: episodesDone,
    final_success: success,
    best_success: best,
    level: curriculum.level,
    parameters: model.parameterCount(),
    seconds,
    episodes_per_s: (updates * N) / seconds,
    updates_per_s: updates / seconds,
    mvp,
  };
  writeFileSync(join(runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  await policy.release();
  await trainer.release();
  return summary;
}
