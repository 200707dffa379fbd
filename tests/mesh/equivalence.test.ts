/**
 * One training core for every mode: the embedded trainer and the mesh's cores in one process (one
 * actor, policy lag 0, the policy service sampling with the actor's per-call seeds) produce the same
 * metrics, update for update, for the same seed; checkpoints written by either resume in the other;
 * and a resumed run equals the uninterrupted one.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LearnerCore, parseRunConfig, type RunConfig, trainEmbedded } from '@rlmesh/learner';
import { createLogger, encodeAnnouncement, keys, MemoryBus } from '@rlmesh/mesh';
import { RunState } from '@rlmesh/proto';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { trainInProcessMesh } from '../../packages/cli/src/in-process';

const ROOT = join(__dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'rlmesh-equiv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(file: string, name: string, train: Record<string, number>): RunConfig {
  const raw = parseYaml(readFileSync(join(ROOT, 'configs', file), 'utf8'));
  return parseRunConfig({ ...raw, run: { ...raw.run, name, out_dir: dir }, train: { ...raw.train, threads: 1, ...train } });
}

const lines = (runDir: string) =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map(
      (l) =>
        JSON.parse(l) as { update: number; env_steps: number; return_mean: number; policy_lag: number; metrics: Record<string, number> },
    );

const CASES = [
  { algo: 'REINFORCE', file: 'wmil-pattern-echo.yaml', train: { total_env_steps: 64 * 12, checkpoint_every: 4 } },
  { algo: 'PPO', file: 'ppo-cartpole.yaml', train: { total_env_steps: 512 * 8, checkpoint_every: 4 } },
];

describe.each(CASES)('$algo: every mode trains alike', ({ file, train }) => {
  const tag = file.replace('.yaml', '');
  const embedded = config(file, `${tag}-embedded`, train);
  const embeddedDir = join(dir, embedded.run.name);

  it('embedded and the in-process mesh (one actor, lag 0) log the same metrics, update for update', async () => {
    await trainEmbedded(embedded);
    const mesh = config(file, `${tag}-mesh`, train);
    const final = await trainInProcessMesh(JSON.stringify(mesh), { outDir: dir, runId: mesh.run.name });
    expect(final.state).toBe(RunState.RUN_STATE_COMPLETED);
    const a = lines(embeddedDir);
    const b = lines(join(dir, `${tag}-mesh`));
    expect(b.length).toBe(a.length);
    expect(b.every((l) => l.policy_lag === 0)).toBe(true);
    for (let k = 0; k < a.length; k++) {
      expect(b[k].update).toBe(a[k].update);
      expect(b[k].metrics).toEqual(a[k].metrics);
      expect(b[k].return_mean).toBe(a[k].return_mean);
    }
  });

  it('a run resumed from its checkpoint equals the uninterrupted one', async () => {
    const resumed = config(file, `${tag}-resumed`, train);
    const runDir = join(dir, resumed.run.name);
    await trainEmbedded(resumed, { maxUpdates: 4 });
    await trainEmbedded(resumed, { resumeFrom: join(runDir, 'checkpoints', 'update-000004.safetensors') });
    expect(lines(runDir)).toEqual(lines(embeddedDir));
  });

  it('a checkpoint written by the mesh resumes embedded', async () => {
    const from = join(dir, `${tag}-mesh`, 'checkpoints', 'update-000004.safetensors');
    const cont = config(file, `${tag}-from-mesh`, train);
    const summary = await trainEmbedded(cont, { resumeFrom: from });
    expect(summary.updates).toBe(lines(embeddedDir).length);
    // The new run's log keeps the mesh run's first 4 updates, then continues from update 5, each once.
    const log = lines(join(dir, cont.run.name));
    expect(log.map((l) => l.update)).toEqual(lines(embeddedDir).map((l) => l.update));
    expect(log.slice(0, 4)).toEqual(lines(join(dir, `${tag}-mesh`)).slice(0, 4));
  });

  it('a checkpoint written embedded resumes in the mesh learner', async () => {
    const bus = new MemoryBus();
    const logger = createLogger('test', 'error');
    const name = `${tag}-to-mesh`;
    const cfg = config(file, name, train);
    const ckpt = join(dir, 'embedded-ckpt.safetensors');
    copyFileSync(join(embeddedDir, 'checkpoints', 'update-000004.safetensors'), ckpt);
    await bus.objects.put(`${name}/checkpoints/4`, readFileSync(ckpt));
    await bus.kv.put(
      keys.run(name),
      encodeAnnouncement({
        runId: name,
        state: 'running',
        seed: cfg.run.seed,
        envId: cfg.env.id,
        envOptions: JSON.stringify(cfg.env.options),
        numEnvs: cfg.env.num_envs,
        numSteps: cfg.env.num_steps,
        level: 0,
        actorsPerReplica: 1,
        maxChunksInFlight: 1,
        inference: 'central',
        config: JSON.stringify(cfg),
        checkpoint: `${name}/checkpoints/4`,
      }),
    );
    const learner = new LearnerCore({ bus, logger, outDir: dir });
    try {
      expect(await learner.recover()).toEqual([name]);
      const run = learner.getRun(name);
      expect(run.resumedFromUpdate).toBe(4);
      expect(run.updates).toBe(4);
    } finally {
      await learner.close();
      await bus.close();
    }
  });
});
