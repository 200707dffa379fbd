/**
 * A text-env run's checkpoints are GPT-2 directories on its learner's disk, not objects on the bus,
 * so a learner that finds one announced as running (its learner went away) cannot continue it: the
 * run ends as failed, saying why, and the announcement tells its actors to stop.
 */
import { createLogger, decodeAnnouncement, encodeAnnouncement, keys, MemoryBus } from '@rlmesh/mesh';
import { RunState } from '@rlmesh/proto';
import { describe, expect, it } from 'vitest';
import { LearnerCore } from '../src/mesh/learner-core';

describe('take-over of a text-env run', () => {
  it('is refused: the run ends as failed and is announced so', async () => {
    const bus = new MemoryBus();
    const config = { run: { name: 'cards' }, env: { id: 'CardRules' }, init_from: '/gone/sft', algo: { name: 'grpo' } };
    await bus.kv.put(
      keys.run('cards'),
      encodeAnnouncement({
        runId: 'cards',
        state: 'running',
        seed: 0,
        envId: 'CardRules',
        envOptions: '{}',
        numEnvs: 16,
        numSteps: 1,
        level: 0,
        actorsPerReplica: 1,
        maxChunksInFlight: 1,
        inference: 'central',
        config: JSON.stringify(config),
        checkpoint: '',
      }),
    );
    const learner = new LearnerCore({ bus, logger: createLogger('test', 'error'), outDir: '/nonexistent-run-root' });
    expect(await learner.recover()).toEqual([]);
    const run = learner.getRun('cards');
    expect(run.state).toBe(RunState.RUN_STATE_FAILED);
    expect(run.error).toMatch(/^a text-env run cannot be taken over by another learner/);
    const announced = decodeAnnouncement((await bus.kv.get(keys.run('cards'))) as Uint8Array);
    expect(announced.state).toBe('failed');
    await learner.close();
  });
});
