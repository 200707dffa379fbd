import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeEnv, resetEnv } from '@rlmesh/core';
import { saveSafetensors } from '@rlmesh/graph';
import { parseRunConfig, trainEmbedded } from '@rlmesh/learner';
import { describe, expect, it } from 'vitest';
import { checkpointPolicy, DEFAULT_MAX_STEPS, evaluate, type PolicySource, parseSuite, type Suite } from '../src';

/** Policies written out by hand, to know what an evaluation must find. */
function handPolicy(label: string, choose: (row: Float32Array) => number): PolicySource & { calls: number } {
  return {
    ref: { label },
    calls: 0,
    async act(obs, rows) {
      this.calls++;
      const width = obs.length / rows;
      return Int32Array.from({ length: rows }, (_, r) => choose(obs.subarray(r * width, (r + 1) * width)));
    },
    async close() {},
  };
}
const argmax = (row: Float32Array) => row.indexOf(Math.max(...row));

const echoSuite = (over: Record<string, unknown> = {}): Suite =>
  parseSuite({ name: 'echo', entries: [{ name: 'echo', env: { id: 'PatternEcho' }, episodes: 150, seed: 40, ...over }] });

describe('evaluate', () => {
  it('a perfect policy succeeds on every episode, with the Jeffreys upper bound at 1', async () => {
    const r = await evaluate(echoSuite(), handPolicy('oracle', argmax));
    const e = r.environments[0];
    expect(e.successes).toBe(150);
    expect(e.success_rate).toBe(1);
    expect(e.interval.high).toBe(1);
    expect(e.interval.low).toBeGreaterThan(0.98);
    expect(e.returns).toEqual({ mean: 1, median: 1, std: 0, min: 1, max: 1 });
    expect(e.lengths.mean).toBe(1);
    expect(r.aggregate.all.success_rate).toBe(1);
    expect(r.aggregate.by_split.ID.success_rate).toBe(1);
    expect(r.id).toMatch(/^ev-\d{8}-\d{6}-[0-9a-f]{8}$/);
  });

  it('episode i starts from seed + i: the counted successes are the ones a replay of those seeds predicts', async () => {
    // Always action 0 succeeds exactly on the episodes whose first target is symbol 0.
    const r = await evaluate(
      echoSuite(),
      handPolicy('zero', () => 0),
    );
    const e = r.environments[0];
    expect(e.seeds).toEqual(Array.from({ length: 150 }, (_, i) => 40 + i));
    const expected = e.seeds.filter((s) => resetEnv(makeEnv('PatternEcho', {}), s)[0] === 1).length;
    expect(expected).toBeGreaterThan(5); // about 150 / 8: the check is not vacuous
    expect(e.successes).toBe(expected);
    // Deterministic: the same policy and suite give the same numbers.
    const again = await evaluate(
      echoSuite(),
      handPolicy('zero', () => 0),
    );
    expect(again.environments).toEqual(r.environments);
  });

  it('success is the last step of a multi-step episode, lengths and returns count every step', async () => {
    // Correct on the first step only: 1 goal reward, but the final (3rd) step fails.
    let step = 0;
    const policy = handPolicy('first-only', (row) => (step++ % 3 === 0 ? argmax(row) : (argmax(row) + 1) % 8));
    const suite = parseSuite({
      name: 'echo3',
      entries: [{ name: 'e3', env: { id: 'PatternEcho', options: { max_episode_steps: 3 } }, episodes: 1, seed: 5 }],
    });
    const e = (await evaluate(suite, policy)).environments[0];
    expect(e.lengths.mean).toBe(3);
    expect(e.returns.mean).toBe(1);
    expect(e.successes).toBe(0);
  });

  it('episodes still running at max_steps are cut and count as failures', async () => {
    const suite = parseSuite({
      name: 'cart',
      entries: [
        { name: 'cut', env: { id: 'CartPole-v1' }, episodes: 3, max_steps: 4, split: 'OOD' },
        { name: 'free', env: { id: 'CartPole-v1' }, episodes: 3, weight: 0 },
      ],
    });
    const r = await evaluate(
      suite,
      handPolicy('left', () => 0),
    );
    const [cut, free] = r.environments;
    expect(cut.lengths).toEqual({ mean: 4, median: 4, std: 0, min: 4, max: 4 });
    expect(cut.returns.mean).toBe(4); // CartPole pays 1 per step
    expect(cut.successes).toBe(0);
    // Pushing left the pole falls within a few dozen steps, well before the default cap.
    expect(free.lengths.max).toBeGreaterThan(4);
    expect(free.lengths.max).toBeLessThan(DEFAULT_MAX_STEPS);
    expect(free.successes).toBe(0);
    expect(Object.keys(r.aggregate.by_split).sort()).toEqual(['ID', 'OOD']);
    expect(r.aggregate.all.weight).toBe(1);
  });

  it('plays continuous actions (Pendulum): no success flag, negative returns over the time limit', async () => {
    const still: PolicySource = { ref: { label: 'still' }, act: async (_obs, rows) => new Float32Array(rows), close: async () => {} };
    const suite = parseSuite({
      name: 'pend',
      entries: [{ name: 'p', env: { id: 'Pendulum-v1', options: { max_episode_steps: 50 } }, episodes: 4, seed: 3 }],
    });
    const e = (await evaluate(suite, still)).environments[0];
    expect(e.lengths).toEqual({ mean: 50, median: 50, std: 0, min: 50, max: 50 });
    expect(e.successes).toBe(0);
    expect(e.interval.low).toBe(0);
    expect(e.returns.max).toBeLessThan(0);
    // Different start states from different seeds: the returns differ.
    expect(e.returns.std).toBeGreaterThan(0);
  });

  it('reports progress per episode and stops when aborted', async () => {
    const seen: number[] = [];
    await evaluate(echoSuite({ episodes: 70 }), handPolicy('oracle', argmax), { onProgress: (p) => seen.push(p.episodes_done) });
    expect(seen).toEqual(Array.from({ length: 70 }, (_, i) => i + 1));
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    await expect(evaluate(echoSuite(), handPolicy('oracle', argmax), { signal: ac.signal })).rejects.toThrow('stop');
  });

  it('a policy that cannot act names the entry', async () => {
    const broken: PolicySource = {
      ref: {},
      act: async () => {
        throw new Error('obs width 8, expected 4');
      },
      close: async () => {},
    };
    await expect(evaluate(echoSuite(), broken)).rejects.toThrow(/entry "echo" \(PatternEcho\): the policy cannot act: obs width 8/);
  });
});

describe('checkpointPolicy', () => {
  it('loads a training checkpoint and the final model.safetensors of a run; the last checkpoint acts as the final weights', async () => {
    const out = mkdtempSync(join(tmpdir(), 'rlmesh-eval-'));
    const cfg = parseRunConfig({
      run: { name: 'echo', seed: 2, out_dir: out },
      env: { id: 'PatternEcho', num_envs: 64, num_steps: 1 },
      model: { id: 'mlp_actor_critic', hidden_dim: 16 },
      algo: { name: 'ppo', lr: 3e-3 },
      train: { total_env_steps: 64 * 6, checkpoint_every: 3, threads: 1 },
    });
    await trainEmbedded(cfg);
    const dir = join(out, 'echo');
    const suite = echoSuite({ episodes: 100 });
    const mid = await checkpointPolicy(join(dir, 'checkpoints', 'update-000003.safetensors'));
    const last = await checkpointPolicy(join(dir, 'checkpoints', 'update-000006.safetensors'), 'six');
    const final = await checkpointPolicy(join(dir, 'model.safetensors'));
    expect(mid.ref).toEqual({ checkpoint: join(dir, 'checkpoints', 'update-000003.safetensors'), version: 4, label: 'echo update 3' });
    expect(last.ref.label).toBe('six');
    expect(final.ref.version).toBeUndefined();
    const [a, b, c] = [await evaluate(suite, mid), await evaluate(suite, last), await evaluate(suite, final)];
    expect(c.environments[0].successes).toBe(b.environments[0].successes);
    const obs = new Float32Array(64);
    for (let i = 0; i < 8; i++) obs[i * 8 + i] = 1;
    const greedyMid = await mid.act(obs.subarray(0, 64), 8, true, 0);
    const greedyLast = await last.act(obs.subarray(0, 64), 8, true, 0);
    const greedyFinal = await final.act(obs.subarray(0, 64), 8, true, 0);
    expect(Array.from(greedyFinal)).toEqual(Array.from(greedyLast));
    expect(a.policy.version).toBe(4);
    // Sampled mode is reproducible by seed.
    const s1 = await last.act(obs, 8, false, 123);
    const s2 = await last.act(obs, 8, false, 123);
    expect(Array.from(s1)).toEqual(Array.from(s2));
    expect(greedyMid.length).toBe(8);
    await Promise.all([mid.close(), last.close(), final.close()]);
  });

  it('refuses a missing file and a safetensors file without a run config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rlmesh-eval-'));
    await expect(checkpointPolicy(join(dir, 'missing.safetensors'))).rejects.toThrow(/missing.safetensors/);
    const bare = join(dir, 'bare.safetensors');
    await saveSafetensors(bare, { w: { dtype: 'F32', shape: [2], data: new Float32Array(2) } });
    await expect(checkpointPolicy(bare)).rejects.toThrow(/carries no run config/);
  });
});
