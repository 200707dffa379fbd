/**
 * `rlmesh train --mesh <config>`: submits the run to a running mesh's learner (StartRun) and follows
 * its progress (WatchRun, through learner restarts: watch.ts) until it ends. The config is validated
 * here first, so a bad key fails before anything is sent, with the same one-line error as the
 * embedded mode. A text env's run (GRPO) goes the same way; its init_from names a GPT-2 directory
 * under the learner's run root (the learner's --out-dir), since the learner reads it from its disk.
 */
import { type ServiceError, status } from '@grpc/grpc-js';
import { type TlsFiles, unary, unreachableReason } from '@rlmesh/mesh';
import { type Run, RunState } from '@rlmesh/proto';
import { UsageError } from './args';
import { Progress } from './progress';
import { DEFAULT_RECONNECT_TIMEOUT_S, followRun, learnerClient, printFinal, progressFields } from './watch';

export async function meshTrain(
  config: Record<string, unknown>,
  learner: string,
  runId: string,
  tls: TlsFiles = {},
  reconnectTimeoutS = DEFAULT_RECONNECT_TIMEOUT_S,
): Promise<number> {
  const { isSequenceRunConfig, parseRunConfig, parseSequenceRunConfig } = await import('@rlmesh/learner');
  const text = isSequenceRunConfig(config);
  const cfg = text ? parseSequenceRunConfig(config) : parseRunConfig(config);
  const client = learnerClient(learner, tls);
  let run: Run;
  try {
    run = await unary(
      'cli',
      'rlmesh.v1.LearnerService/StartRun',
      client.startRun.bind(client),
      { config: JSON.stringify(cfg), runId },
      60_000,
    );
  } catch (e) {
    const err = e as ServiceError;
    if (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED) {
      const { tls, reason } = unreachableReason(err.details ?? '');
      if (tls) throw new UsageError(`train --mesh: cannot reach the learner at ${learner}: ${reason}`);
      throw new UsageError(`train --mesh: no learner answers at ${learner}: ${reason} (start the mesh with rlmesh up)`);
    }
    throw new UsageError(`train --mesh: the learner refused the run: ${err.details}`);
  }
  const each = 'num_envs' in cfg.env ? `${cfg.env.num_envs} envs x ${cfg.env.num_steps} steps` : `${cfg.algo.name} rollouts`;
  console.log(`rlmesh train --mesh: run ${run.runId} on ${learner}: ${cfg.env.id}, ${run.totalUpdates} updates of ${each}`);
  const bar = new Progress(run.totalUpdates, run.runId);
  const result = await followRun(client, run.runId, {
    learner,
    command: 'rlmesh train --mesh',
    reconnectTimeoutS,
    known: run,
    onRun: (r) => bar.update(r.updates, progressFields(r)),
  });
  client.close();
  if ('failure' in result) {
    console.error(result.failure);
    return 1;
  }
  printFinal(result.run);
  return result.run.state === RunState.RUN_STATE_COMPLETED ? 0 : 1;
}
