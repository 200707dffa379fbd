/**
 * The promotion gate. Through the mesh: a private nats-server, `rlmesh serve evaluator` and
 * `rlmesh serve policy` as processes; the test announces a run with an eval section and publishes
 * versions of known quality (fixture.ts) as the learner does. A version worse than the promoted one
 * is not promoted, a better one is, and the policy service serves `promoted` and `latest` apart.
 * In process (MemoryBus): beats_baseline against a labelled stored evaluation.
 */
import type { ChildProcess } from 'node:child_process';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import type { RunConfig } from '@rlmesh/learner';
import {
  type Bus,
  createLogger,
  decodeJson,
  encodeAnnouncement,
  keys,
  MemoryBus,
  NatsBus,
  type NatsServer,
  parsePolicyPointer,
  startNatsServer,
} from '@rlmesh/mesh';
import { PolicyCore } from '@rlmesh/policy';
import { type ActResponse, decodeTensor, encodeTensor, PolicyChannel, PolicyServiceClient } from '@rlmesh/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { spawnService } from '../../packages/cli/src/up';
import { type GateState, gateKeys, PromotionGate } from '../../services/evaluator/src/gate';
import { EvaluatorCore } from '../../services/evaluator/src/service';
import { BusEvaluationStore } from '../../services/evaluator/src/store';
import { missingParts, stopChild, until } from '../mesh/helpers';
import { echoConfig, echoModel, echoSuite, half, identity, SYMBOLS, shift } from './fixture';

/** Announces `run` as the learner does, with an eval section in its resolved config. */
async function announce(bus: Bus, run: string, evalSection: Record<string, unknown>): Promise<RunConfig> {
  const cfg = echoConfig(SYMBOLS, { eval: evalSection });
  await bus.kv.put(
    keys.run(run),
    encodeAnnouncement({
      runId: run,
      state: 'running',
      seed: 0,
      envId: cfg.env.id,
      envOptions: JSON.stringify(cfg.env.options),
      numEnvs: cfg.env.num_envs,
      numSteps: cfg.env.num_steps,
      level: 0,
      actorsPerReplica: 1,
      maxChunksInFlight: 1,
      inference: 'central',
      config: JSON.stringify(cfg),
      checkpoint: '',
    }),
  );
  return cfg;
}

/** The gate's record once it has decided on `version`. */
const decided = (bus: Bus, run: string, version: number) =>
  until(
    async () => {
      const b = await bus.kv.get(gateKeys.state(run));
      const s = b ? decodeJson<GateState>(b) : undefined;
      return s && s.last_version >= version ? s : undefined;
    },
    60_000,
    `the gate to decide on version ${version} of ${run}`,
  );

const promotedVersion = async (bus: Bus, run: string) => {
  const b = await bus.kv.get(keys.promoted(run));
  return b ? parsePolicyPointer(b).version : 0;
};

const missing = missingParts();

describe.skipIf(missing !== null)('promotion gate through the mesh (evaluator and policy processes)', () => {
  let nats: NatsServer;
  let bus: Bus;
  const children: ChildProcess[] = [];
  let policy: PolicyServiceClient;
  const echo = echoModel();

  beforeAll(async () => {
    nats = await startNatsServer();
    bus = await NatsBus.connect({ servers: nats.url });
    const env = { ...process.env, RLMESH_LOG_LEVEL: 'warn' };
    const ev = await spawnService('evaluator', ['evaluator', '--port', '0', '--nats', nats.url], env);
    const po = await spawnService('policy', ['policy', '--port', '0', '--nats', nats.url], env);
    children.push(ev.child, po.child);
    policy = new PolicyServiceClient(`127.0.0.1:${po.ready.port}`, credentials.createInsecure());
  });

  afterAll(async () => {
    policy?.close();
    await Promise.all(children.map((c) => stopChild(c)));
    await bus?.close();
    await nats?.stop();
  });

  /** Greedy actions for the one-hot of every symbol, from the channel's version (at least minVersion). */
  const act = (channel: PolicyChannel, minVersion: number) =>
    new Promise<{ version: number; actions: number[] }>((resolve, reject) => {
      const obs = new Float32Array(SYMBOLS * SYMBOLS);
      for (let t = 0; t < SYMBOLS; t++) obs[t * SYMBOLS + t] = 1;
      policy.act(
        { runId: 'gated', obs: encodeTensor(obs, [SYMBOLS, SYMBOLS]), greedy: true, minVersion, seed: 1, channel },
        (e: ServiceError | null, r: ActResponse) =>
          e
            ? reject(e)
            : resolve({
                version: r.policyVersion,
                actions: [...(decodeTensor('actions', r.actions, { dtype: 'int32', shape: [-1] }).data as Int32Array)],
              }),
      );
    });

  it('promotes the first version, not a worse one, then a better one; policy serves promoted and latest apart', async () => {
    await announce(bus, 'gated', { every: 1, gate: 'not_dominated', suite_inline: parseYaml(echoSuite({ name: 'gate-suite' })) });

    await echo.publish(bus, 'gated', 1, half());
    const first = await decided(bus, 'gated', 1);
    expect(first).toMatchObject({ last_promoted: true, promoted_version: 1, last_reason: 'first evaluated version, no baseline' });
    expect(await promotedVersion(bus, 'gated')).toBe(1);

    await echo.publish(bus, 'gated', 2, shift());
    const worse = await decided(bus, 'gated', 2);
    expect(worse).toMatchObject({ last_promoted: false, promoted_version: 1, promoted_evaluation: first.last_evaluation });
    expect(worse.last_reason).toMatch(/^dominated by promoted version 1/);
    expect(await promotedVersion(bus, 'gated')).toBe(1);
    // The policy service: latest is the worse version 2, promoted is still version 1.
    expect((await act(PolicyChannel.POLICY_CHANNEL_LATEST, 2)).version).toBe(2);
    expect(await act(PolicyChannel.POLICY_CHANNEL_PROMOTED, 0)).toEqual({ version: 1, actions: half() });

    await echo.publish(bus, 'gated', 3, identity());
    const better = await decided(bus, 'gated', 3);
    expect(better).toMatchObject({ last_promoted: true, promoted_version: 3 });
    expect(better.last_reason).toMatch(/^not dominated by promoted version 1/);
    expect(await promotedVersion(bus, 'gated')).toBe(3);
    expect(await act(PolicyChannel.POLICY_CHANNEL_PROMOTED, 3)).toEqual({ version: 3, actions: identity() });
    // The promoted parameters live apart from the learner's params/ objects, which it deletes.
    expect(await bus.objects.get('gated/promoted/3')).not.toBeNull();
    expect(await bus.objects.get('gated/promoted/1')).toBeNull();
  });
});

describe('promotion gate: beats_baseline (in process)', () => {
  it('promotes only a version that dominates the labelled baseline evaluation', async () => {
    const bus = new MemoryBus();
    const logger = createLogger('evaluator', 'error');
    const core = new EvaluatorCore({ store: new BusEvaluationStore(bus), bus, logger });
    const echo = echoModel();
    const suite = echoSuite({ name: 'baseline-suite' });
    await echo.publish(bus, 'reference', 1, half());
    await core.evaluate({ suite, policy: { run_id: 'reference', label: 'half-right' } });
    const gate = await PromotionGate.start({ bus, core, logger });
    try {
      await announce(bus, 'bb', { every: 2, gate: 'beats_baseline', baseline: 'half-right', suite_inline: parseYaml(suite) });
      await until(() => gate.isGating('bb') || undefined, 10_000, 'the gate to follow run bb');
      const steps: [number, number[], boolean][] = [
        [1, shift(), false],
        [2, identity(), false], // not evaluated: every 2 takes versions 1, 3, 5, ...
        [3, half(), false], // as good as the baseline is not better
        [5, identity(), true],
      ];
      for (const [version, perm] of steps) {
        await echo.publish(bus, 'bb', version, perm);
        await gate.idle();
      }
      const s = decodeJson<GateState>((await bus.kv.get(gateKeys.state('bb'))) as Uint8Array);
      expect(s).toMatchObject({ rule: 'beats_baseline', last_version: 5, last_promoted: true, promoted_version: 5 });
      expect(s.last_reason).toMatch(/^dominates baseline ev-/);
      const evaluated = (await core.list({ run_id: 'bb' })).map((e) => e.policy.version);
      expect(evaluated).toEqual([1, 3, 5]);
      expect(await promotedVersion(bus, 'bb')).toBe(5);

      // The policy service core serves the promoted version by request, and says when there is none.
      const policy = new PolicyCore({ bus, logger, seed: 0 });
      try {
        const obs = new Float32Array(SYMBOLS * SYMBOLS);
        for (let t = 0; t < SYMBOLS; t++) obs[t * SYMBOLS + t] = 1;
        const promoted = await policy.act('bb', obs, SYMBOLS, true, 0, 1, 'promoted');
        expect({ version: promoted.version, actions: [...promoted.actions] }).toEqual({ version: 5, actions: identity() });
        expect((await policy.getPolicy('bb', 'promoted')).version).toBe(5);
        await expect(policy.act('reference', obs, SYMBOLS, true, 0, 1, 'promoted')).rejects.toMatchObject({
          code: status.NOT_FOUND,
          message: expect.stringMatching(/^channel: run "reference" has no promoted version yet/),
        });
      } finally {
        await policy.close();
      }
    } finally {
      await gate.stop();
    }
  });
});

describe('run config eval section', () => {
  const suite_inline = { name: 's', entries: [{ name: 'e', env: { id: 'PatternEcho' }, episodes: 10 }] };
  it('defaults to no evaluation, and refuses combinations that cannot work, naming the key', () => {
    expect(echoConfig().eval).toEqual({ every: 0, suite: '', suite_inline: {}, gate: 'none', baseline: '' });
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ every: 1 }, /^eval\.suite: is required when eval\.every > 0/],
      [{ every: 1, suite: 'a.yaml', suite_inline }, /^eval\.suite: set either/],
      [{ gate: 'not_dominated', suite_inline }, /^eval\.every: must be >= 1 when eval\.gate is not_dominated/],
      [{ every: 1, gate: 'beats_baseline', suite_inline }, /^eval\.baseline: is required/],
      [{ every: 1, gate: 'better', suite_inline }, /^eval\.gate: must be one of none, not_dominated, beats_baseline/],
    ];
    for (const [section, message] of cases) expect(() => echoConfig(SYMBOLS, { eval: section })).toThrow(message);
  });
});
