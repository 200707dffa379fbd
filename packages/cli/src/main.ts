/**
 * The `rlmesh` command. `train` runs a config in one process (embedded mode) or, with --mesh, on a
 * running mesh; `serve` runs one service; `up` starts the mesh locally; `policy act` queries a
 * trained checkpoint. A bad config or argument prints one line and exits 2.
 * Nothing here imports @grpc/grpc-js at load time: `serve` must start OpenTelemetry before it loads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { applyOverrides, ConfigError } from '@rlmesh/core';
import { parse as parseYaml } from 'yaml';
import { parseArgs, UsageError } from './args';
import { policyAct } from './policy-act';
import { Progress } from './progress';
import { SERVE_USAGE, serve } from './serve';
import { UP_USAGE, up } from './up';

const USAGE = `usage:
  rlmesh train <config.yaml> [--section.key value ...] [--resume <checkpoint>]
  rlmesh train --mesh <config.yaml> [--learner HOST:PORT] [--run-id ID] [--tls-ca F [--tls-cert F --tls-key F]] [--section.key value ...]
  rlmesh train --in-process-mesh <config.yaml> [--section.key value ...]
  ${UP_USAGE}
  ${SERVE_USAGE}
  rlmesh policy act --checkpoint <model.safetensors|checkpoint> --obs <json [[...],...]> [--action k]`;

export async function main(argv: readonly string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === 'train') return await train(rest);
    if (command === 'serve') return await serve(rest);
    if (command === 'up') return await up(rest);
    if (command === 'policy' && rest[0] === 'act') return await policyAct(rest.slice(1));
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
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (e) {
    throw new UsageError(`${path} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('(root)', `${path} must hold a mapping`);
  return applyOverrides(raw as Record<string, unknown>, overrides);
}

async function trainInProcess(config: Record<string, unknown>): Promise<number> {
  const { parseWmilConfig } = await import('@rlmesh/learner');
  const cfg = parseWmilConfig(config);
  const { trainInProcessMesh } = await import('./in-process');
  const { printFinal, progressFields } = await import('./mesh-train');
  const bar = new Progress(Math.ceil(cfg.train.total_episodes / cfg.env.num_envs), cfg.run.name);
  console.log(`rlmesh train --in-process-mesh: ${cfg.env.id}; learner, policy and env actors in this process on the in-memory bus`);
  const final = await trainInProcessMesh(JSON.stringify(cfg), { onProgress: (r) => bar.update(r.updates, progressFields(r)) });
  printFinal(final);
  return final.state === 2 ? 0 : 1; // RUN_STATE_COMPLETED
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
    'tls-cert': tlsCert,
    'tls-key': tlsKey,
    'tls-ca': tlsCa,
    ...overrides
  } = options;
  if (inProcess) {
    if (mesh || resume !== undefined || learner !== undefined)
      throw new UsageError('--in-process-mesh: takes no --mesh, --resume or --learner');
    return trainInProcess(loadConfig(positionals[0], overrides));
  }
  if (mesh) {
    if (resume !== undefined) throw new UsageError('--resume: not supported with --mesh');
    const { meshTrain } = await import('./mesh-train');
    const { tlsFilesFrom } = await import('@rlmesh/mesh');
    const tls = tlsFilesFrom({ 'tls-cert': tlsCert, 'tls-key': tlsKey, 'tls-ca': tlsCa });
    return meshTrain(loadConfig(positionals[0], overrides), learner ?? process.env.RLMESH_LEARNER ?? '127.0.0.1:50051', runId ?? '', tls);
  }
  if (learner !== undefined || runId !== undefined || tlsCert || tlsKey || tlsCa)
    throw new UsageError('--learner, --run-id and --tls-* need --mesh');
  if (resume !== undefined && !existsSync(resume)) throw new UsageError(`--resume: no checkpoint at ${resume}`);
  // Loaded lazily so that `rlmesh help` and config errors do not pay for onnxruntime start-up.
  const { parseWmilConfig, runWmil } = await import('@rlmesh/learner');
  const cfg = parseWmilConfig(loadConfig(positionals[0], overrides));
  const total = Math.ceil(cfg.train.total_episodes / cfg.env.num_envs);
  const bar = new Progress(total, cfg.run.name);
  console.log(`rlmesh train: ${cfg.env.id}, ${cfg.env.num_envs} episodes per update, ${total} updates, seed ${cfg.run.seed}`);
  const summary = await runWmil(cfg, {
    resumeFrom: resume,
    onUpdate: (m) =>
      bar.update(m.update, {
        success: `${(100 * m.success).toFixed(1)}%`,
        entropy: m.metrics.entropy.toFixed(3),
        wm: m.metrics['loss/world_model'].toFixed(4),
        level: String(m.level),
        'ep/s': m.episodes_per_s.toFixed(0),
      }),
  });
  console.log(
    `done: ${summary.updates} updates, ${summary.episodes} episodes in ${summary.seconds.toFixed(1)} s ` +
      `(${summary.episodes_per_s.toFixed(0)} episodes/s, ${summary.updates_per_s.toFixed(0)} updates/s); ` +
      `success (mean of last ${cfg.train.success_window} batches) ${(100 * summary.final_success).toFixed(2)}%, level ${summary.level}`,
  );
  console.log('MVP criteria (seed 001):');
  for (const c of summary.mvp.checks) {
    const fmt = (x: number) => (c.name.startsWith('success') ? `${(100 * x).toFixed(2)}%` : x.toFixed(4));
    console.log(`  ${c.pass ? '✓' : '✗'} ${c.name.padEnd(24)} ${fmt(c.start)} -> ${fmt(c.end)}  (${c.target})`);
  }
  console.log(`${summary.mvp.pass ? 'MVP PASSED' : 'MVP NOT PASSED'}; run directory ${summary.run_dir}`);
  return 0;
}
