/**
 * The `rlmesh` command. `train` runs a config in one process (embedded mode) or, with --mesh, on a
 * running mesh; `serve` runs one service; `up` starts the mesh locally; `policy act` queries a
 * trained checkpoint and `eval` evaluates one on a suite; `experiment` runs the card game's data ->
 * SFT -> GRPO -> eval. A bad config or argument prints one line and exits 2.
 * Nothing here imports @grpc/grpc-js at load time: `serve` must start OpenTelemetry before it loads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { applyOverrides, ConfigError, parseConfigText } from '@rlmesh/core';
import { RunState } from '@rlmesh/proto';
import { ANALYZE_USAGE, analyzeCommand } from './analyze';
import { parseArgs, UsageError } from './args';
import { BABYLON_USAGE } from './babylon-config';
import { CYCLE_USAGE } from './cycle-config';
import { DASHBOARD_USAGE, dashboard } from './dashboard';
import { DATA_USAGE, dataCommand } from './data';
import { EVAL_USAGE, evalCommand } from './eval';
import { EXPERIMENT_USAGE } from './experiment-config';
import { policyAct } from './policy-act';
import { Progress } from './progress';
import { REPORT_USAGE, report } from './report';
import { SAE_USAGE, saeCommand } from './sae';
import { SERVE_USAGE, serve } from './serve';
import { SFT_USAGE, sftCommand } from './sft';
import { UP_USAGE, up } from './up';

const TRAIN_USAGE = `rlmesh train <config.yaml> [--section.key value ...] [--resume <checkpoint>]
  rlmesh train --mesh <config.yaml> [--learner HOST:PORT] [--run-id ID] [--reconnect-timeout SECONDS] [--tls-ca F [--tls-cert F --tls-key F]] [--section.key value ...]
  rlmesh train --in-process-mesh <config.yaml> [--section.key value ...]
    Trains the run a config describes: in this process (default), on a running mesh (--mesh), or
    with the mesh's services in this process on an in-memory bus (--in-process-mesh). Any config key
    can be overridden (--algo.lr 1e-3). --resume continues from a checkpoint written by any mode.
    A text env (env.id CardRules) trains a GPT-2 checkpoint by GRPO (algo.name grpo) or PPO
    (algo.name ppo_seq), embedded (--resume takes a checkpoints/update_<n> directory), or by GRPO
    with --mesh (init_from is then a directory under the learner's run root, its --out-dir).
    --mesh follows the run through learner restarts, as rlmesh watch does.`;
// Here, not in watch.ts: that module loads gRPC, which `serve` must not see loaded before OpenTelemetry starts.
const WATCH_USAGE = `rlmesh watch <run-id> [--learner HOST:PORT] [--reconnect-timeout SECONDS] [--tls-ca F [--tls-cert F --tls-key F]]
    Follows a run on the mesh's learner to its end (exit 0 when it completes, 1 when it stops or
    fails), through learner restarts; exits 1 with one line when the learner has no such run, or does
    not answer again within the reconnect timeout (default 60 s).`;
const POLICY_USAGE = 'rlmesh policy act --checkpoint <model.safetensors> --obs <json [[...],...]> [--greedy]';

const USAGE = `usage:
  ${TRAIN_USAGE}
  ${WATCH_USAGE}
  ${UP_USAGE}
  ${SERVE_USAGE}
  ${POLICY_USAGE}
  ${EVAL_USAGE}
  ${REPORT_USAGE}
  ${DASHBOARD_USAGE}
  ${DATA_USAGE}
  ${SFT_USAGE}
  ${EXPERIMENT_USAGE}
  ${CYCLE_USAGE}
  ${BABYLON_USAGE}
  ${SAE_USAGE}
  ${ANALYZE_USAGE}`;

/** `rlmesh <command> --help` prints that command's usage. */
const HELP: Record<string, string> = {
  train: TRAIN_USAGE,
  watch: WATCH_USAGE,
  up: UP_USAGE,
  serve: SERVE_USAGE,
  policy: POLICY_USAGE,
  eval: EVAL_USAGE,
  report: REPORT_USAGE,
  dashboard: DASHBOARD_USAGE,
  data: DATA_USAGE,
  sft: SFT_USAGE,
  experiment: EXPERIMENT_USAGE,
  cycle: CYCLE_USAGE,
  babylon: BABYLON_USAGE,
  sae: SAE_USAGE,
  analyze: ANALYZE_USAGE,
};

export async function main(argv: readonly string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command in HELP && rest.includes('--help')) {
      console.log(`usage:\n  ${HELP[command]}`);
      return 0;
    }
    if (command === 'train') return await train(rest);
    if (command === 'watch') return await (await import('./watch')).watch(rest);
    if (command === 'serve') return await serve(rest);
    if (command === 'up') return await up(rest);
    if (command === 'policy' && rest[0] === 'act') return await policyAct(rest.slice(1));
    if (command === 'eval') return await evalCommand(rest);
    if (command === 'report') return await report(rest);
    if (command === 'dashboard') return await dashboard(rest);
    if (command === 'data') return await dataCommand(rest);
    if (command === 'sft') return await sftCommand(rest);
    if (command === 'experiment') return await (await import('./experiment')).experimentCommand(rest);
    if (command === 'cycle') return await (await import('./cycle')).cycleCommand(rest);
    if (command === 'babylon') return await (await import('./babylon')).babylonCommand(rest);
    if (command === 'sae') return await saeCommand(rest);
    if (command === 'analyze') return await analyzeCommand(rest);
    if (command === undefined || command === 'help' || command === '--help') {
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown command ${JSON.stringify(argv.join(' '))}; try rlmesh help`);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`rlmesh: config error: ${e.message}`);
      return 2;
    }
    if (e instanceof UsageError) {
      console.error(`rlmesh: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

/** Reads YAML, applies `--a.b value` overrides, validates (ConfigError names the key). */
export function loadConfig(path: string, overrides: Record<string, string>): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UsageError(`cannot read config file ${path}`);
  }
  const raw = parseConfigText(text, path) ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('(root)', `${path} must hold a mapping`);
  return applyOverrides(raw as Record<string, unknown>, overrides);
}

async function trainInProcess(config: Record<string, unknown>): Promise<number> {
  const { parseRunConfig, totalUpdates } = await import('@rlmesh/learner');
  const cfg = parseRunConfig(config);
  const { trainInProcessMesh } = await import('./in-process');
  const { printFinal, progressFields } = await import('./watch');
  const bar = new Progress(totalUpdates(cfg), cfg.run.name);
  console.log(`rlmesh train --in-process-mesh: ${cfg.env.id}; learner, policy and env actors in this process on the in-memory bus`);
  const final = await trainInProcessMesh(JSON.stringify(cfg), { onProgress: (r) => bar.update(r.updates, progressFields(r)) });
  printFinal(final);
  return final.state === RunState.RUN_STATE_COMPLETED ? 0 : 1;
}

async function train(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv, ['mesh', 'in-process-mesh']);
  if (positionals.length !== 1) throw new UsageError('train needs exactly one config file');
  const {
    resume,
    mesh,
    'in-process-mesh': inProcess,
    learner,
    'run-id': runId,
    'reconnect-timeout': reconnect,
    'tls-cert': tlsCert,
    'tls-key': tlsKey,
    'tls-ca': tlsCa,
    ...overrides
  } = options;
  const raw = loadConfig(positionals[0], overrides);
  const { isSequenceRunConfig } = await import('@rlmesh/learner');
  if (isSequenceRunConfig(raw) && !mesh) {
    if (inProcess) throw new UsageError('--in-process-mesh: a text env trains embedded (rlmesh train <config>) or with --mesh');
    if (learner !== undefined || runId !== undefined || reconnect !== undefined || tlsCert || tlsKey || tlsCa)
      throw new UsageError('--learner, --run-id, --reconnect-timeout and --tls-* need --mesh');
    const { trainSequenceCommand } = await import('./train-sequence');
    return trainSequenceCommand(raw, resume);
  }
  if (inProcess) {
    if (mesh || resume !== undefined || learner !== undefined)
      throw new UsageError('--in-process-mesh: takes no --mesh, --resume or --learner');
    return trainInProcess(raw);
  }
  if (mesh) {
    if (resume !== undefined) throw new UsageError('--resume: not supported with --mesh');
    const { meshTrain } = await import('./mesh-train');
    const { reconnectTimeout } = await import('./watch');
    const { tlsFilesFrom } = await import('@rlmesh/mesh');
    const tls = tlsFilesFrom({ 'tls-cert': tlsCert, 'tls-key': tlsKey, 'tls-ca': tlsCa });
    const learnerAddress = learner ?? process.env.RLMESH_LEARNER ?? '127.0.0.1:50051';
    return meshTrain(raw, learnerAddress, runId ?? '', tls, reconnectTimeout(reconnect));
  }
  if (learner !== undefined || runId !== undefined || reconnect !== undefined || tlsCert || tlsKey || tlsCa)
    throw new UsageError('--learner, --run-id, --reconnect-timeout and --tls-* need --mesh');
  if (resume !== undefined && !existsSync(resume)) throw new UsageError(`--resume: no checkpoint at ${resume}`);
  // Loaded lazily so that `rlmesh help` and config errors do not pay for onnxruntime start-up.
  const { parseRunConfig, totalUpdates, trainEmbedded, algorithmSpec } = await import('@rlmesh/learner');
  const cfg = parseRunConfig(raw);
  const total = totalUpdates(cfg);
  const shown = algorithmSpec(cfg.algo.name).progressMetrics;
  const bar = new Progress(total, cfg.run.name);
  console.log(
    `rlmesh train: ${cfg.algo.name} on ${cfg.env.id}, ${cfg.env.num_envs} envs x ${cfg.env.num_steps} steps per update, ${total} updates, seed ${cfg.run.seed}`,
  );
  const summary = await trainEmbedded(cfg, {
    resumeFrom: resume,
    onUpdate: (r, run) => {
      const fields: Record<string, string> = { return: r.return_mean.toFixed(1), success: `${(100 * r.success_mean).toFixed(1)}%` };
      for (const m of shown) if (r.metrics[m] !== undefined) fields[m] = r.metrics[m].toPrecision(3);
      if (run.shape.numLevels > 1) fields.level = String(r.level);
      bar.update(r.update, fields);
    },
  });
  console.log(
    `done: ${summary.updates} updates, ${summary.env_steps} env steps, ${summary.episodes} episodes in ${summary.seconds.toFixed(1)} s ` +
      `(${summary.env_steps_per_s.toFixed(0)} env steps/s, ${summary.updates_per_s.toFixed(1)} updates/s); ` +
      `mean return of the last 20 episodes ${summary.return_mean.toFixed(2)}, success ${(100 * summary.final_success).toFixed(2)}%, level ${summary.level}`,
  );
  if (summary.criteria.length) {
    console.log(`criteria (${cfg.algo.name}):`);
    for (const c of summary.criteria) {
      const fmt = (x: number) => (c.name.startsWith('success') ? `${(100 * x).toFixed(2)}%` : x.toFixed(4));
      console.log(`  ${c.pass ? '✓' : '✗'} ${c.name.padEnd(24)} ${fmt(c.start)} -> ${fmt(c.end)}  (${c.target})`);
    }
    console.log(summary.pass ? 'criteria PASSED' : 'criteria NOT PASSED');
  }
  console.log(`run directory ${summary.run_dir}`);
  return 0;
}
