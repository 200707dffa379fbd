/**
 * What MeshRun trains: a learner core seen from the mesh. MeshRun does the mesh's part (the bus,
 * policy lag, publishing, progress, announcements) once for every kind of run; a trainee says how
 * its chunks decode, what a published version holds and where its checkpoints go. Two kinds:
 * numeric runs (LearnerRun, this file) and text-env runs (SequenceLearnerRun, sequence-trainee.ts).
 */
import { readFileSync } from 'node:fs';
import { decodeRollout, type PublishPolicy, spaceToProto } from '@rlmesh/mesh';
import type { Run, TrajectoryChunk } from '@rlmesh/proto';
import type { PolicyModel } from '../registry';
import type { RunConfig } from '../run/config';
import { LearnerRun } from '../run/learner-run';

/** The config sections MeshRun reads; numeric and text-env run configs both have them. */
export interface MeshRunConfig {
  run: { name: string; seed: number; out_dir: string };
  env: { id: string; options: unknown };
  algo: { name: string };
  train: { checkpoint_every: number };
  mesh: RunConfig['mesh'];
}

export interface MeshTrainee<R extends { policyVersion: number } = { policyVersion: number }> {
  readonly updates: number;
  readonly total: number;
  readonly done: boolean;
  /** The version the next published policy carries. */
  readonly version: number;
  readonly level: number;
  readonly success: number;
  readonly episodes: number;
  readonly envSteps: number;
  readonly metrics: Record<string, number>;
  returnMean(): number;
  /** The announcement's shape of one chunk: environments (prompts) per actor and steps per environment. */
  readonly chunkShape: { numEnvs: number; numSteps: number };
  /** Environment steps (text: completions) one update trains on. */
  readonly stepsPerUpdate: number;
  /** A taken-over run's versions continue past what the previous learner published. */
  continueAfter(publishedVersion: number): void;
  /** The policy version now, without its number; `first`: also what is stored once per run. */
  publication(first: boolean): Omit<PublishPolicy, 'version'>;
  /** Decodes and checks a chunk of this run; throws naming the bad field. */
  decode(chunk: TrajectoryChunk): R;
  update(rollout: R): Promise<unknown>;
  /** Writes a checkpoint; its bytes for the object store, or null when it is not one object. */
  checkpoint(): Promise<Uint8Array | null>;
  /** The last checkpoint written (finish writes one), as checkpoint() gives it. */
  lastCheckpoint(): Uint8Array | null;
  finish(mesh: Run): Promise<unknown>;
  release(): Promise<void>;
  /** What the activation sampler reads (numeric runs): the model, the weights now, a rollout's observations. */
  readonly capture?: {
    model: PolicyModel;
    params(): Float32Array;
    observations(r: R): { data: Float32Array; rows: number; level: number };
  };
}

/**
 * Models up to this size train on the learner's own thread. Their step takes a few milliseconds at
 * most (a 9k-parameter PPO minibatch 0.4 ms, the 117k-parameter BabyModel's batch about 2 ms), a
 * stall this process's gRPC and NATS traffic absorbs, while the hop to a worker and back cost more
 * than such a step (the PPO step took 1.0 ms through the worker): PPO CartPole through the mesh
 * ran 30% faster on the thread. Larger models train in a worker thread, so that a long step never
 * holds up the service.
 */
const IN_THREAD_MAX_PARAMETERS = 200_000;

/** A numeric run: LearnerRun with its act program, safetensors checkpoints and curriculum. */
export async function numericTrainee(
  cfg: RunConfig,
  runDir: string,
  resumeFrom: string | undefined,
): Promise<MeshTrainee<ReturnType<typeof decodeRollout>>> {
  const run = await LearnerRun.create(cfg, { runDir, workerAboveParameters: IN_THREAD_MAX_PARAMETERS, resumeFrom });
  return {
    get updates() {
      return run.updates;
    },
    total: run.total,
    get done() {
      return run.done;
    },
    get version() {
      return run.version;
    },
    get level() {
      return run.curriculum.level;
    },
    get success() {
      return run.curriculum.success;
    },
    get episodes() {
      return run.episodes;
    },
    get envSteps() {
      return run.envSteps;
    },
    get metrics() {
      return run.metrics;
    },
    returnMean: () => run.returnMean(),
    chunkShape: { numEnvs: cfg.env.num_envs, numSteps: cfg.env.num_steps },
    stepsPerUpdate: cfg.env.num_envs * cfg.env.num_steps,
    continueAfter(published) {
      run.version = Math.max(run.version, published + 1);
    },
    publication: (first) => ({
      params: run.params.slice(),
      program: first ? run.actProgram : undefined,
      sampleProgram: first ? run.sampleProgram : 'stored',
      spec: {
        observationSpace: spaceToProto(run.shape.observationSpace),
        actionSpace: spaceToProto(run.shape.actionSpace),
        model: run.model.name,
        numParameters: run.model.module.parameterCount(),
      },
      distribution: run.shape.distribution.kind,
    }),
    decode: (chunk) =>
      decodeRollout(chunk, {
        numSteps: cfg.env.num_steps,
        numEnvs: cfg.env.num_envs,
        obsDim: run.model.obsDim,
        actionSpace: run.shape.actionSpace,
        components: run.shape.components,
      }),
    update: (r) => run.update(r),
    checkpoint: async () => readFileSync(await run.checkpoint()),
    lastCheckpoint: () => readFileSync(run.checkpointPath()),
    finish: (mesh) => run.finish({ mesh }),
    release: () => run.release(),
    capture: {
      model: run.model,
      params: () => run.params,
      observations: (r) => ({ data: r.obs, rows: r.numSteps * r.numEnvs, level: r.level }),
    },
  };
}
