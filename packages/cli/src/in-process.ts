/**
 * `rlmesh train --in-process-mesh <config>`: the mesh's own cores (LearnerCore, PolicyCore, an
 * EnvReplica with its rollout actors) in one process, joined by the in-memory bus instead of NATS
 * and by direct calls instead of gRPC. The same code paths as `rlmesh up` + `train --mesh`, minus
 * the transports: for debugging the distributed path on a laptop, and to compare the two.
 */
import type { PolicyClient } from '@rlmesh/env';
import type { Run } from '@rlmesh/proto';

export interface InProcessOptions {
  outDir?: string;
  /** Empty: the config's run.name plus a unique suffix, as StartRun does. */
  runId?: string;
  onProgress?: (r: Run) => void;
}

export async function trainInProcessMesh(config: string, opts: InProcessOptions = {}): Promise<Run> {
  const { EnvReplica } = await import('@rlmesh/env');
  const { LearnerCore } = await import('@rlmesh/learner');
  const { createLogger, MemoryBus } = await import('@rlmesh/mesh');
  const { PolicyCore } = await import('@rlmesh/policy');
  const bus = new MemoryBus();
  const logger = createLogger('mesh', (process.env.RLMESH_LOG_LEVEL as 'warn') ?? 'warn');
  const policyCore = new PolicyCore({ bus, logger });
  const policy: PolicyClient = {
    act: (runId, obs, rows, seed, minVersion) => policyCore.act(runId, obs, rows, false, minVersion, seed),
  };
  const replica = new EnvReplica({ replicaId: 'local', bus, policy, logger });
  const learner = new LearnerCore({ bus, logger, outDir: opts.outDir });
  try {
    await replica.start();
    const run = await learner.startRun(config, opts.runId ?? '');
    let last = run;
    await learner.watchRun(run.runId, (r) => {
      last = r;
      opts.onProgress?.(r);
    });
    return last;
  } finally {
    await replica.stop();
    await learner.close();
    await policyCore.close();
    await bus.close();
  }
}
