/**
 * GRPO through the mesh: a real nats-server, learner, policy and one env replica, each its own
 * process. The learner trains a tiny GPT-2 (fresh weights, a BPE tokenizer trained here on card
 * prompts and answers) on the card game; the replica's text actor generates through the policy
 * service's Generate and publishes sequence chunks; every update publishes a version the policy
 * service serves next. Completions are one token, scored correct + format: an untrained model
 * rarely answers with the rule's kind of answer (a number, BIG/SMALL or EVEN/ODD), and GRPO teaches
 * it which kind each rule asks for within a few dozen updates. PPO for token policies (ppo_seq, with
 * its value head) runs through the same processes the same way. `rlmesh train --mesh` submits such a
 * run and follows it to its end; bad StartRun configs for text envs are refused naming the field.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { buildCardsDatasets } from '@rlmesh/envs';
import { Rng as GraphRng, initParameters } from '@rlmesh/graph';
import { GPT2_124M, type Gpt2Config, Gpt2LMHeadModel, saveGpt2Directory, type UpdateRecord } from '@rlmesh/learner';
import { keys, NatsBus, type NatsServer, parsePolicyPointer, startNatsServer } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { saveTokenizer, trainBpe } from '@rlmesh/text';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnService } from '../../packages/cli/src/up';
import { missingParts, ROOT, stopChild, until } from './helpers';

const missing = missingParts();
const UPDATES = 40;
const WINDOW = 10;

/** A fresh 1-layer GPT-2 and its tokenizer (answers such as " BIG" and " 12" are single tokens) as a Hugging Face directory. */
async function writeInit(out: string): Promise<void> {
  const examples = buildCardsDatasets({ seed: 7, nTrain: 300, nVal: 0, nTest: 0 }).find((d) => d.name === 'train')?.examples ?? [];
  const tok = trainBpe(
    examples.flatMap((e) => [e.prompt, e.completion, e.completion, e.completion]),
    { vocab_size: 400 },
  );
  const config: Gpt2Config = {
    ...GPT2_124M,
    vocab_size: tok.vocabSize,
    n_positions: 128,
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

const runConfig = (over: Record<string, unknown> = {}) => ({
  run: { name: 'grpo-mesh', seed: 3 },
  // No held-out prompts: building them costs seconds, and this run is not evaluated.
  env: { id: 'CardRules', options: { holdout_n_val: 0, holdout_n_test: 0 } },
  init_from: 'init',
  algo: {
    name: 'grpo',
    num_generations: 8,
    prompts_per_update: 8,
    micro_batch_size: 64,
    max_completion_length: 1,
    learning_rate: 1e-2,
    beta: 0,
    loss_type: 'dapo',
    reward_weights: { correct: 1, format: 1 },
  },
  train: { total_updates: UPDATES, threads: 1, success_window: WINDOW },
  ...over,
});

describe.skipIf(missing !== null)('GRPO through the mesh: learner, policy and an env replica as processes', () => {
  let nats: NatsServer;
  let bus: NatsBus;
  let dir: string;
  const children: ChildProcess[] = [];
  let learner: LearnerServiceClient;
  let learnerAddress = '';

  beforeAll(async () => {
    nats = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-grpo-mesh-'));
    await writeInit(join(dir, 'runs', 'init'));
    const env = { ...process.env, RLMESH_LOG_LEVEL: 'warn' };
    const common = ['--port', '0', '--nats', nats.url];
    const l = await spawnService('learner', ['learner', ...common, '--out-dir', join(dir, 'runs')], env);
    const p = await spawnService('policy', ['policy', ...common, '--seed', '1'], env);
    const e = await spawnService('env-0', ['env', ...common, '--policy', `127.0.0.1:${p.ready.port}`, '--replica-id', 'env-0'], env);
    children.push(l.child, p.child, e.child);
    learnerAddress = `127.0.0.1:${l.ready.port}`;
    learner = new LearnerServiceClient(learnerAddress, credentials.createInsecure());
    bus = await NatsBus.connect({ servers: nats.url, name: 'grpo-mesh-test' });
  }, 60_000);

  afterAll(async () => {
    learner?.close();
    await bus?.close();
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

  it('trains a GPT-2 on the card game with a rising reward, every update logged once and published as a new version', async () => {
    const started = await startRun(runConfig(), 'grpo-mesh');
    expect(started.state).toBe(RunState.RUN_STATE_RUNNING);
    expect(started.totalUpdates).toBe(UPDATES);
    const final = await until(
      async () => {
        const r = await getRun('grpo-mesh');
        return r.state === RunState.RUN_STATE_RUNNING ? undefined : r;
      },
      120_000,
      'the GRPO run to end',
    );
    expect(final.error).toBe('');
    expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(final.updates).toBe(UPDATES);
    // Every chunk came from the replica's text actor, played by the version just published.
    expect(final.chunksByActor['env-0-a0']).toBe(UPDATES);
    expect(final.policyLagMax).toBe(0);
    // One version per update, and the policy service's pointer names the last with the model and tokenizer.
    expect(final.policyVersion).toBe(UPDATES + 1);
    const pointer = parsePolicyPointer((await bus.kv.get(keys.policy('grpo-mesh'))) as Uint8Array);
    expect(pointer.version).toBe(UPDATES + 1);
    expect(pointer.tokenizer).toBe('grpo-mesh/tokenizer.json');
    expect(JSON.parse(pointer.modelConfig ?? '{}').n_layer).toBe(1);

    const rows = readFileSync(join(dir, 'runs', 'grpo-mesh', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as UpdateRecord);
    expect(rows.map((r) => r.update)).toEqual(Array.from({ length: UPDATES }, (_, k) => k + 1));
    const mean = (xs: UpdateRecord[]) => xs.reduce((a, r) => a + r.return_mean, 0) / xs.length;
    const first = mean(rows.slice(0, WINDOW));
    const last = mean(rows.slice(-WINDOW));
    console.log(JSON.stringify({ run: 'grpo-mesh', rewardFirst: first, rewardLast: last, updatesPerS: final.updatesPerS }));
    expect(first).toBeLessThan(0.2);
    expect(last).toBeGreaterThan(first + 0.25);
    // The run's end is announced while its final checkpoint and summary are being written.
    const summaryFile = join(dir, 'runs', 'grpo-mesh', 'summary.json');
    await until(() => existsSync(summaryFile) || undefined, 10_000, 'summary.json');
    expect(JSON.parse(readFileSync(summaryFile, 'utf8')).updates).toBe(UPDATES);
  }, 150_000);

  it('trains with PPO for token policies (ppo_seq: value head, token-level GAE) through the same actors and policy service', async () => {
    const config = runConfig({
      run: { name: 'ppo-seq-mesh', seed: 4 },
      algo: {
        name: 'ppo_seq',
        batch_size: 32,
        num_mini_batches: 1,
        micro_batch_size: 32,
        num_ppo_epochs: 2,
        response_length: 1,
        kl_coef: 0,
        learning_rate: 1e-2,
        warmup_steps: 0,
        reward_weights: { correct: 1, format: 1 },
      },
    });
    await startRun(config, 'ppo-seq-mesh');
    const final = await until(
      async () => {
        const r = await getRun('ppo-seq-mesh');
        return r.state === RunState.RUN_STATE_RUNNING ? undefined : r;
      },
      120_000,
      'the ppo_seq run to end',
    );
    expect(final.error).toBe('');
    expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
    expect(final.updates).toBe(UPDATES);
    expect(final.chunksByActor['env-0-a0']).toBe(UPDATES);
    const rows = readFileSync(join(dir, 'runs', 'ppo-seq-mesh', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as UpdateRecord);
    expect(rows.map((r) => r.update)).toEqual(Array.from({ length: UPDATES }, (_, k) => k + 1));
    // The value head is trained: its loss is logged with the policy's.
    expect(Object.keys(rows[0].metrics)).toEqual(expect.arrayContaining([expect.stringMatching(/value/)]));
    const mean = (xs: UpdateRecord[]) => xs.reduce((a, r) => a + r.return_mean, 0) / xs.length;
    const first = mean(rows.slice(0, WINDOW));
    const last = mean(rows.slice(-WINDOW));
    console.log(JSON.stringify({ run: 'ppo-seq-mesh', rewardFirst: first, rewardLast: last, updatesPerS: final.updatesPerS }));
    expect(first).toBeLessThan(0.2);
    expect(last).toBeGreaterThan(first + 0.25);
  }, 150_000);

  it('rlmesh train --mesh submits a text-env config and follows it to completion', async () => {
    const file = join(dir, 'grpo-cli.json');
    writeFileSync(file, JSON.stringify(runConfig({ run: { name: 'grpo-cli', seed: 5 } })));
    const bin = join(ROOT, 'packages', 'cli', 'bin', 'rlmesh.js');
    const train = spawn(process.execPath, [bin, 'train', '--mesh', file, '--learner', learnerAddress, '--train.total_updates', '5'], {
      env: { ...process.env, RLMESH_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    train.stdout?.on('data', (d) => (out += d));
    train.stderr?.on('data', (d) => (out += d));
    const code = await new Promise((r) => train.once('exit', r));
    expect(code, out).toBe(0);
    expect(out).toMatch(/rlmesh train --mesh: run grpo-cli-\w+ on .*: CardRules, 5 updates of grpo rollouts/);
    expect(
      out.split('\n').some((l) => l.startsWith('RUN_STATE_COMPLETED')),
      out,
    ).toBe(true);
  }, 60_000);

  it('refuses a text-env run with a numeric algorithm, init_from outside its root or without a tokenizer, or local inference', async () => {
    const refused = (config: unknown, runId: string) =>
      startRun(config, runId).then(
        () => {
          throw new Error(`${runId} was started`);
        },
        (e: ServiceError) => e,
      );
    const ppo = await refused(runConfig({ algo: { name: 'ppo' } }), 'bad-algo');
    expect(ppo.code).toBe(status.INVALID_ARGUMENT);
    expect(ppo.details).toMatch(/^config: algo\.name: /);
    const outside = await refused(runConfig({ init_from: '..' }), 'bad-root');
    expect(outside.code).toBe(status.INVALID_ARGUMENT);
    expect(outside.details).toMatch(/^config\.init_from: must name a file or directory under the learner's run root/);
    const nowhere = await refused(runConfig({ init_from: 'nowhere' }), 'bad-path');
    expect(nowhere.code).toBe(status.NOT_FOUND);
    expect(nowhere.details).toMatch(/^config\.init_from: no file or directory "nowhere"/);
    mkdirSync(join(dir, 'runs', 'bare'), { recursive: true });
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(dir, 'runs', 'init', f), join(dir, 'runs', 'bare', f));
    const bare = await refused(runConfig({ init_from: 'bare' }), 'bad-tokenizer');
    expect(bare.code).toBe(status.INVALID_ARGUMENT);
    expect(bare.details).toMatch(/init_from: .*tokenizer/);
    const local = await refused(runConfig({ mesh: { inference: 'local' } }), 'bad-inference');
    expect(local.code).toBe(status.INVALID_ARGUMENT);
    expect(local.details).toMatch(/^config: mesh\.inference: must be central for a text env/);
  }, 60_000);
});
