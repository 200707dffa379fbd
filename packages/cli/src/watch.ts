/**
 * Following a run on the mesh's learner: `rlmesh watch <run>` and the progress of `rlmesh train
 * --mesh`. WatchRun streams the run until it ends; when the learner goes away (a restart, a crash, a
 * rolling update that hands the run to the next learner) the stream is opened again with backoff,
 * with one line saying so, until the run is back or the reconnect timeout passes.
 */
import { type ServiceError, status } from '@grpc/grpc-js';
import { channelCredentials, channelOptions, type TlsFiles, unreachableReason } from '@rlmesh/mesh';
import { LearnerServiceClient, type Run, RunState } from '@rlmesh/proto';
import { parseArgs, UsageError } from './args';
import { Progress } from './progress';
import { tlsOrUsage } from './serve';

/** Long enough for a learner to restart and take its runs over (a killed one's lease lasts 10 s); main.ts's usage states it. */
export const DEFAULT_RECONNECT_TIMEOUT_S = 60;
const BACKOFF_START_MS = 250;
const BACKOFF_MAX_MS = 4000;

/** Errors not worth a retry: the learner answered, and the answer will not change. */
const FINAL_CODES = new Set<status>([
  status.INVALID_ARGUMENT,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
  status.UNIMPLEMENTED,
  status.FAILED_PRECONDITION,
]);

export function learnerClient(learner: string, tls: TlsFiles): LearnerServiceClient {
  return new LearnerServiceClient(
    learner,
    tlsOrUsage(() => channelCredentials(tls)),
    channelOptions('rlmesh.v1.LearnerService', ['GetRun', 'ListRuns']),
  );
}

export interface FollowOptions {
  learner: string;
  /** Names the command in the lines printed. */
  command: string;
  reconnectTimeoutS: number;
  /** The run as the caller last saw it (StartRun's answer): NOT_FOUND is then a take-over in progress, not a wrong id. */
  known?: Run;
  onRun: (r: Run) => void;
}

/** The run once it ended, or the one line that says why it could not be followed. */
export type FollowResult = { run: Run } | { failure: string };

/** One WatchRun stream: how it ended. */
function watchOnce(client: LearnerServiceClient, runId: string, onRun: (r: Run) => void): Promise<ServiceError | null> {
  return new Promise((resolve) => {
    const stream = client.watchRun({ runId });
    stream.on('data', onRun);
    stream.on('end', () => resolve(null));
    stream.on('error', (e: ServiceError) => resolve(e));
  });
}

export async function followRun(client: LearnerServiceClient, runId: string, opts: FollowOptions): Promise<FollowResult> {
  let last = opts.known;
  let lostAt: number | undefined;
  let delay = BACKOFF_START_MS;
  for (;;) {
    const error = await watchOnce(client, runId, (r) => {
      last = r;
      lostAt = undefined;
      delay = BACKOFF_START_MS;
      opts.onRun(r);
    });
    if (!error && last && last.state !== RunState.RUN_STATE_RUNNING) return { run: last };
    if (error && FINAL_CODES.has(error.code))
      return { failure: `${opts.command}: the learner at ${opts.learner} refused: ${error.details}` };
    if (error?.code === status.NOT_FOUND && !last)
      return { failure: `${opts.command}: the learner at ${opts.learner} has no run "${runId}"` };
    // The stream ended with the run still running (handed over), or the learner is unreachable.
    const now = Date.now();
    if (lostAt === undefined) {
      lostAt = now;
      const why = error ? (error.code === status.NOT_FOUND ? 'not taken over yet' : status[error.code]) : 'the learner let the run go';
      const what = last ? `lost run ${runId} on ${opts.learner}` : `cannot reach the learner at ${opts.learner} for run ${runId}`;
      const line = `${opts.command}: ${what} (${why}); reconnecting for up to ${opts.reconnectTimeoutS} s`;
      process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${line}\n`);
    } else if (now - lostAt > opts.reconnectTimeoutS * 1000) {
      return {
        failure:
          error?.code === status.NOT_FOUND
            ? `${opts.command}: run ${runId} is gone: the learner at ${opts.learner} has not had it for ${opts.reconnectTimeoutS} s`
            : `${opts.command}: the learner at ${opts.learner} did not answer for ${opts.reconnectTimeoutS} s (${error ? `${status[error.code]}: ${unreachableReason(error.details ?? '').reason}` : 'no stream: ended'}); run ${runId} was at update ${last?.updates ?? 0}`,
      };
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, BACKOFF_MAX_MS);
  }
}

/** `--reconnect-timeout SECONDS`: a positive number. */
export function reconnectTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_RECONNECT_TIMEOUT_S;
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0)
    throw new UsageError(`--reconnect-timeout: must be a positive number of seconds, got ${JSON.stringify(value)}`);
  return s;
}

export async function watch(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  const { learner: learnerOpt, 'reconnect-timeout': timeoutOpt, 'tls-cert': cert, 'tls-key': key, 'tls-ca': ca, ...rest } = options;
  if (positionals.length !== 1) throw new UsageError('watch needs exactly one run id');
  const unknown = Object.keys(rest);
  if (unknown.length) throw new UsageError(`watch: unknown option --${unknown[0]}`);
  const runId = positionals[0];
  const learner = learnerOpt ?? process.env.RLMESH_LEARNER ?? '127.0.0.1:50051';
  const { tlsFilesFrom } = await import('@rlmesh/mesh');
  const client = learnerClient(learner, tlsFilesFrom({ 'tls-cert': cert, 'tls-key': key, 'tls-ca': ca }));
  let bar: Progress | undefined;
  const result = await followRun(client, runId, {
    learner,
    command: 'rlmesh watch',
    reconnectTimeoutS: reconnectTimeout(timeoutOpt),
    onRun: (r) => {
      if (!bar) {
        console.log(`rlmesh watch: run ${r.runId} on ${learner}: ${r.envId}, update ${r.updates} of ${r.totalUpdates}`);
        bar = new Progress(r.totalUpdates, r.runId);
      }
      bar.update(r.updates, progressFields(r));
    },
  });
  client.close();
  if ('failure' in result) {
    console.error(result.failure);
    return 1;
  }
  printFinal(result.run);
  return result.run.state === RunState.RUN_STATE_COMPLETED ? 0 : 1;
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
