/**
 * Multi-turn RL through the mesh: a real nats-server, learner, policy and one env replica, each its
 * own process. The run's env is GridGoals (a multi-turn world), so the replica's text actor plays
 * conversations (a row per turn, generating every turn through the policy service's Generate) and
 * publishes multi-turn sequence chunks; the learner decodes them with their episodes and trains GRPO
 * and ppo_seq on every turn. A fresh tiny GPT-2 writes mostly invalid actions, so conversations run
 * to env.max_turns; what it learns is not the point here (the embedded tests show learning).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { makeTextEnv } from '@rlmesh/core';
import '@rlmesh/envs';
import { Rng as GraphRng, initParameters } from '@rlmesh/graph';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel, saveGpt2Directory, type UpdateRecord } from '@rlmesh/learner';
import { type NatsServer, startNatsServer } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { saveTokenizer, trainBpe } from '@rlmesh/text';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnService } from '../../packages/cli/src/up';
import { missingParts, stopChild, until } from './helpers';

const missing = missingParts();
const UPDATES = 3;
const MAX_TURNS = 3;

/** A fresh 1-layer GPT-2 (context 1024) with a BPE trained on GridGoals prompts, as a Hugging Face directory. */
async function writeInit(out: string): Promise<void> {
  const tok = trainBpe(
    Array.from({ length: 8 }, (_, s) => makeTextEnv('GridGoals').reset(s)),
    { vocab_size: 512 },
  );
  const config: Gpt2Config = {
    ...GPT2_124M,
    vocab_size: tok.vocabSize,
    n_positions: 1024,
    n_embd: 32,
    n_layer: 1,
    n_head: 2,
    bos_token_id: tok.bosId ?? -1,
    eos_token_id: tok.eosId ?? -1,
    pad_token_id: tok.padId ?? -1,
  };
  await saveGpt2Directory(out, config, initParameters(new Gpt2LMHeadModel(config), new GraphRng(1)));
  saveTokenizer(tok, out, { modelMaxLength: config.n_positions });
}

const WEIGHTS = { goal: 1, progress: 1, invalid: 1 };
const ALGOS: Record<string, Record<string, unknown>> = {
  grpo: { name: 'grpo', num_generations: 2, prompts_per_update: 2, micro_batch_size: 4, max_completion_length: 4, learning_rate: 1e-3 },
  ppo_seq: { name: 'ppo_seq', batch_size: 2, num_mini_batches: 2, micro_batch_size: 1, num_ppo_epochs: 1, response_length: 4 },
};

describe.skipIf(missing !== null)('multi-turn RL through the mesh: learner, policy and an env replica as processes', () => {
  let nats: NatsServer;
  let dir: string;
  const children: ChildProcess[] = [];
  let learner: LearnerServiceClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-mt-mesh-'));
    await writeInit(join(dir, 'runs', 'init'));
    const env = { ...process.env, RLMESH_LOG_LEVEL: 'warn' };
    const common = ['--port', '0', '--nats', nats.url];
    const l = await spawnService('learner', ['learner', ...common, '--out-dir', join(dir, 'runs')], env);
    const p = await spawnService('policy', ['policy', ...common, '--seed', '1'], env);
    const e = await spawnService('env-0', ['env', ...common, '--policy', `127.0.0.1:${p.ready.port}`, '--replica-id', 'env-0'], env);
    children.push(l.child, p.child, e.child);
    learner = new LearnerServiceClient(`127.0.0.1:${l.ready.port}`, credentials.createInsecure());
  }, 60_000);

  afterAll(async () => {
    learner?.close();
    await Promise.all(children.map((c) => stopChild(c)));
    await nats?.stop();
    if (dir && !process.env.KEEP_MESH_DIR) rmSync(dir, { recursive: true, force: true });
  });

  const startRun = (config: unknown, runId: string) =>
    new Promise<Run>((resolve, reject) =>
      learner.startRun({ config: JSON.stringify(config), runId }, (err, r) => (err ? reject(err) : resolve(r))),
    );
  const getRun = (runId: string) =>
    new Promise<Run>((resolve, reject) => learner.getRun({ runId }, (err, r) => (err ? reject(err) : resolve(r))));

  for (const [name, algo] of Object.entries(ALGOS))
    it(`${name} trains on every turn of GridGoals conversations played by the replica's text actor`, async () => {
      const runId = `mt-${name.replace('_', '-')}`;
      await startRun(
        {
          run: { name: runId, seed: 2 },
          env: { id: 'GridGoals', max_turns: MAX_TURNS },
          init_from: 'init',
          algo: { ...algo, reward_weights: WEIGHTS },
          train: { total_updates: UPDATES, threads: 1 },
        },
        runId,
      );
      const final = await until(
        async () => {
          const r = await getRun(runId);
          return r.state === RunState.RUN_STATE_RUNNING ? undefined : r;
        },
        150_000,
        `the ${name} run to end`,
      );
      expect(final.error).toBe('');
      expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
      expect(final.updates).toBe(UPDATES);
      expect(final.chunksByActor['env-0-a0']).toBe(UPDATES);
      const rows = readFileSync(join(dir, 'runs', runId, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as UpdateRecord);
      expect(rows).toHaveLength(UPDATES);
      for (const r of rows) {
        for (const k of ['loss', 'policy_loss', 'entropy', 'grad_norm']) expect(Number.isFinite(r.metrics[k]), k).toBe(true);
        // Conversations of more than one turn, capped at max_turns; 4 episodes an update.
        expect(r.metrics.episode_turns_mean).toBeGreaterThan(1);
        expect(r.metrics.episode_turns_mean).toBeLessThanOrEqual(MAX_TURNS);
      }
      const last = rows[rows.length - 1];
      expect(last.episodes).toBe(UPDATES * (name === 'grpo' ? 4 : 2));
      expect(last.env_steps).toBeGreaterThan(last.episodes);
      const summaryFile = join(dir, 'runs', runId, 'summary.json');
      await until(() => existsSync(summaryFile) || undefined, 10_000, 'summary.json');
    }, 180_000);
});
