/**
 * `rlmesh train --mesh <config>`: submits the run to a running mesh's learner (StartRun) and streams
 * its progress (WatchRun) until it ends. The config is validated here first, so a bad key fails
 * before anything is sent, with the same one-line error as the embedded mode.
 */
import { type ServiceError, status } from '@grpc/grpc-js';
import { channelCredentials, channelOptions, type TlsFiles, unary } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { UsageError } from './args';
import { Progress } from './progress';
import { tlsOrUsage } from './serve';

export async function meshTrain(config: Record<string, unknown>, learner: string, runId: string, tls: TlsFiles = {}): Promise<number> {
  const { parseRunConfig } = await import('@rlmesh/learner');
  const cfg = parseRunConfig(config);
  const client = new LearnerServiceClient(
    learner,
    tlsOrUsage(() => channelCredentials(tls)),
    channelOptions('rlmesh.v1.LearnerService', ['GetRun', 'ListRuns']),
  );
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
    if (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED)
      throw new UsageError(`train --mesh: no learner answers at ${learner} (start the mesh with rlmesh up)`);
    throw new UsageError(`train --mesh: the learner refused the run: ${err.details}`);
  }
  console.log(
    `rlmesh train --mesh: run ${run.runId} on ${learner}: ${cfg.env.id}, ${run.totalUpdates} updates of ${cfg.env.num_envs} envs x ${cfg.env.num_steps} steps`,
  );
  const bar = new Progress(run.totalUpdates, run.runId);
  const final = await new Promise<Run>((resolve, reject) => {
    let last = run;
    const stream = client.watchRun({ runId: run.runId });
    stream.on('data', (r: Run) => {
      last = r;
      bar.update(r.updates, progressFields(r));
    });
    stream.on('end', () => resolve(last));
    stream.on('error', reject);
  });
  client.close();
  printFinal(final);
  return final.state === RunState.RUN_STATE_COMPLETED ? 0 : 1;
}

/** The live fields of the progress bar, for a run reported by the learner. */
export function progressFields(r: Run): Record<string, string> {
  return {
    return: r.returnMean.toFixed(1),
    success: `${(100 * r.success).toFixed(1)}%`,
    entropy: (r.metrics.entropy ?? 0).toFixed(3),
    lag: r.policyLagMean.toFixed(2),
    level: String(r.level),
    'ep/s': r.episodesPerS.toFixed(0),
  };
}

export function printFinal(final: Run): void {
  const actors = Object.entries(final.chunksByActor)
    .map(([a, n]) => `${a}: ${n}`)
    .join(', ');
  console.log(
    `${RunState[final.state]}: ${final.updates} updates, ${final.episodes} episodes (${final.episodesPerS.toFixed(0)} episodes/s); ` +
      `success ${(100 * final.success).toFixed(2)}%, level ${final.level}; policy lag mean ${final.policyLagMean.toFixed(2)}, max ${final.policyLagMax}; ` +
      `chunks dropped ${final.chunksDropped}; chunks by actor {${actors}}${final.error ? `; error: ${final.error}` : ''}`,
  );
}
