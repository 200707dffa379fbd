/**
 * `rlmesh dashboard [--runs DIR] [--port N] [--learner HOST:PORT]`: a live page on 127.0.0.1 with
 * the runs of a runs directory (their metrics.jsonl tailed) and, with --learner, the mesh's runs
 * (LearnerService.WatchRun), their curves growing as they train, evaluations and the frontier.
 * Runs until Ctrl-C.
 */
import { existsSync, statSync } from 'node:fs';
import type { ChannelCredentials } from '@grpc/grpc-js';
import type { Run } from '@rlmesh/proto';
import type { DashboardHub, MetricRow } from '@rlmesh/report';
import { parseArgs, UsageError } from './args';
import { connectBus, NATS_OPTIONS, natsTarget } from './nats-args';
import { tlsOrUsage } from './serve';

export const DASHBOARD_USAGE = `rlmesh dashboard [--runs DIR] [--port N] [--learner HOST:PORT [--tls-ca F [--tls-cert F --tls-key F]]]
    [--nats URL [--nats-creds F | --nats-nkey F] [--nats-tls-ca F [--nats-tls-cert F --nats-tls-key F]]]
    Serves a live page on 127.0.0.1 (default port 8780): runs and their curves as they train (from
    DIR/*/metrics.jsonl, default runs/, and with --learner from the mesh's WatchRun), evaluations (in
    the run directories, and with --nats those the mesh's evaluator stored) and the Pareto frontier.
    Ctrl-C stops it.`;

export async function dashboard(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  const {
    runs: runsDir = 'runs',
    port: portText = '8780',
    learner,
    'tls-cert': tlsCert,
    'tls-key': tlsKey,
    'tls-ca': tlsCa,
    ...rest
  } = options;
  const unknown = Object.keys(rest).filter((k) => !NATS_OPTIONS.includes(k));
  if (unknown.length) throw new UsageError(`dashboard: unknown option --${unknown[0]}`);
  if (positionals.length) throw new UsageError(`dashboard: takes no arguments, got ${JSON.stringify(positionals[0])}`);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port: must be an integer in [0, 65535], got ${JSON.stringify(portText)}`);
  if (existsSync(runsDir) && !statSync(runsDir).isDirectory()) throw new UsageError(`--runs: ${runsDir} is not a directory`);
  if (learner !== undefined && !/^[^:\s]+:\d+$/.test(learner))
    throw new UsageError(`--learner: must be HOST:PORT, got ${JSON.stringify(learner)}`);
  if (learner === undefined && (tlsCert || tlsKey || tlsCa)) throw new UsageError('--tls-*: only with --learner');
  // Only --nats: a NATS_URL in the environment is not a request to show the mesh's evaluations.
  const nats = natsTarget(options, 'dashboard', false);

  const { DashboardHub, RunsWatcher, StoreWatcher, serveDashboard } = await import('@rlmesh/report');
  const hub = new DashboardHub();
  const watcher = new RunsWatcher(runsDir, hub);
  watcher.start();
  const stops: (() => unknown)[] = [() => watcher.stop()];
  if (nats) {
    const { BusEvaluationStore } = await import('@rlmesh/evaluator');
    let bus: Awaited<ReturnType<typeof connectBus>>;
    try {
      bus = await connectBus(nats, 'rlmesh-dashboard');
    } catch (e) {
      watcher.stop();
      throw e;
    }
    const store = new StoreWatcher(new BusEvaluationStore(bus), hub, 'mesh');
    store.start();
    stops.push(
      () => store.stop(),
      () => bus.close(),
    );
  }
  if (learner) {
    const { channelCredentials, tlsFilesFrom } = await import('@rlmesh/mesh');
    const tls = tlsFilesFrom({ 'tls-cert': tlsCert, 'tls-key': tlsKey, 'tls-ca': tlsCa });
    const mesh = await watchLearner(
      learner,
      hub,
      tlsOrUsage(() => channelCredentials(tls)),
    );
    stops.push(() => mesh.stop());
  }
  const stopAll = async () => {
    for (const stop of stops) await stop();
  };
  let server: Awaited<ReturnType<typeof serveDashboard>>;
  try {
    server = await serveDashboard(hub, { port });
  } catch (e) {
    await stopAll();
    throw new UsageError(`dashboard: cannot listen on 127.0.0.1:${port}: ${(e as Error).message}`);
  }
  const from = [`runs from ${runsDir}`, learner && `mesh runs from ${learner}`, nats && `mesh evaluations from ${nats}`].filter(Boolean);
  console.log(`rlmesh dashboard: ${server.url}  (${from.join(', ')}; Ctrl-C stops it)`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await stopAll();
  await server.close();
  return 0;
}

/** A mesh Run update as a metrics row (the learner reports the means metrics.jsonl logs). */
export function rowOfRun(r: Run): MetricRow {
  return {
    update: r.updates,
    env_steps: r.envSteps,
    episodes: r.episodes,
    level: r.level,
    success_mean: r.success,
    return_mean: r.returnMean,
    policy_lag: r.policyLagMean,
    metrics: { ...r.metrics },
  };
}

/**
 * Lists the learner's runs every 2 s and follows each with WatchRun; a run's stream that ends or
 * fails is picked up again by the next listing while the run is still running.
 */
export async function watchLearner(
  learner: string,
  hub: DashboardHub,
  channel?: ChannelCredentials,
  listEveryMs = 2000,
): Promise<{ stop(): void }> {
  const { credentials } = await import('@grpc/grpc-js');
  const { LearnerServiceClient, RunState } = await import('@rlmesh/proto');
  const client = new LearnerServiceClient(learner, channel ?? credentials.createInsecure());
  const watching = new Map<string, { cancel(): void }>();
  /** The last update shown per run, across re-opened streams. */
  const lastUpdate = new Map<string, number>();
  /** The state last shown per run, so that a listing repeats nothing. */
  const shownState = new Map<string, string>();
  let warned = false;
  const follow = (r: Run) => {
    const name = `mesh:${r.runId}`;
    const state = RunState[r.state];
    if (!shownState.has(r.runId)) {
      // A run that ended before the dashboard started shows its final state as its one point.
      const rows = r.state !== RunState.RUN_STATE_RUNNING && r.updates > 0 ? [rowOfRun(r)] : [];
      hub.setRun({ name, source: 'mesh', rows, state });
      shownState.set(r.runId, state);
      lastUpdate.set(r.runId, rows.length ? r.updates : 0);
    }
    if (watching.has(r.runId)) return;
    if (r.state !== RunState.RUN_STATE_RUNNING) {
      if (shownState.get(r.runId) !== state) hub.appendRows(name, [], state);
      shownState.set(r.runId, state);
      return;
    }
    const stream = client.watchRun({ runId: r.runId });
    watching.set(r.runId, stream);
    stream.on('data', (u: Run) => {
      // WatchRun starts with the current state, so a stream opened again repeats an update: only new ones are rows.
      const last = lastUpdate.get(r.runId) ?? 0;
      lastUpdate.set(r.runId, Math.max(last, u.updates));
      shownState.set(r.runId, RunState[u.state]);
      hub.appendRows(name, u.updates > last ? [rowOfRun(u)] : [], RunState[u.state]);
    });
    const done = () => watching.delete(r.runId);
    stream.on('end', done);
    stream.on('error', done);
  };
  const list = () =>
    client.listRuns({}, (err, res) => {
      if (err) {
        if (!warned) console.error(`rlmesh dashboard: ListRuns on ${learner} failed: ${err.details || err.message}; retrying`);
        warned = true;
        return;
      }
      warned = false;
      for (const r of res.runs) follow(r);
    });
  list();
  const timer = setInterval(list, listEveryMs);
  return {
    stop() {
      clearInterval(timer);
      for (const w of watching.values()) w.cancel();
      client.close();
    },
  };
}
