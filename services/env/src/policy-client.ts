/**
 * How actors choose actions in the mesh. Central inference (SEED RL): PolicyService.Act over gRPC,
 * with a deadline and retries on UNAVAILABLE (Act has no side effect, so a retry is safe). Local
 * inference (IMPALA): the actor runs each published version itself, fetched from the object store
 * when the run's policy pointer moves; for small policies this saves a network hop per step.
 *
 * When the policy service cannot be reached (killed, restarting, rescheduled) every actor of the
 * replica stalls; the client says so in one log line when the first call fails and in one more when
 * a call succeeds again, instead of a line per failed call from every actor.
 */
import { type ChannelCredentials, credentials, type ServiceError, status } from '@grpc/grpc-js';
import type { ActFn, ActOutput, GenerateFn } from '@rlmesh/core';
import {
  ActProgram,
  type Bus,
  channelOptions,
  keys,
  type Logger,
  paramsFromBytes,
  parsePolicyPointer,
  pointerShape,
  unary,
  unreachableReason,
} from '@rlmesh/mesh';
import { DType, decodeTensor, encodeTensor, PolicyServiceClient } from '@rlmesh/proto';
import { generateThroughPolicy } from './sequence-generate';

/** What an actor needs from the policy service (a gRPC client in the mesh, the core in process). */
export interface PolicyClient {
  act(runId: string, obs: Float32Array, rows: number, seed: number, minVersion: number): Promise<ActOutput>;
  /** Text generation for the run's text actors (Generate); a client without it serves no text-env run. */
  generator?(runId: string, minVersion: () => number): GenerateFn;
}

/** An Act that failed because the policy service cannot be reached; the client has reported the outage. */
export class PolicyUnreachableError extends Error {}

/** Statuses that mean nobody answered (down, restarting, too slow), not that the request was wrong. */
const UNREACHABLE = new Set<status>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);

/**
 * The longest wait between reconnection attempts to a policy service that went away. grpc-js backs
 * off up to 120 s by default, so after a long outage actors could sit idle for two minutes next to a
 * policy service that is already back.
 */
const MAX_RECONNECT_BACKOFF_MS = 2000;

export class GrpcPolicyClient implements PolicyClient {
  private readonly client: PolicyServiceClient;
  /** When the current outage began (the first call that found nobody), or undefined while calls succeed. */
  private downSince: number | undefined;
  private failedCalls = 0;

  constructor(
    private readonly address: string,
    private readonly deadlineMs = 5000,
    channelCredentials: ChannelCredentials = credentials.createInsecure(),
    private readonly logger?: Logger,
  ) {
    this.client = new PolicyServiceClient(address, channelCredentials, {
      ...channelOptions('rlmesh.v1.PolicyService', ['Act', 'GetPolicy']),
      'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS,
    });
  }

  async act(runId: string, obs: Float32Array, rows: number, seed: number, minVersion: number): Promise<ActOutput> {
    const res = await this.call(runId, obs, rows, seed, minVersion).catch((e: ServiceError) => {
      throw this.failed(e);
    });
    this.answered();
    const a = res.actions;
    const shape = (a?.shape ?? []).map(Number);
    const actions =
      a?.dtype === DType.DTYPE_FLOAT32
        ? decodeTensor('actions', a, { dtype: 'float32', shape: shape.length === 2 ? [rows, -1] : [rows] }).data
        : decodeTensor('actions', a, { dtype: 'int32', shape: shape.length === 2 ? [rows, -1] : [rows] }).data;
    return {
      actions,
      logProbs: decodeTensor('log_probs', res.logProbs, { dtype: 'float32', shape: [rows] }).data,
      values: decodeTensor('values', res.values, { dtype: 'float32', shape: [rows] }).data,
      version: res.policyVersion,
    };
  }

  private call(runId: string, obs: Float32Array, rows: number, seed: number, minVersion: number) {
    return unary(
      'env',
      'rlmesh.v1.PolicyService/Act',
      this.client.act.bind(this.client),
      { runId, obs: encodeTensor(obs, [rows, obs.length / rows]), greedy: false, minVersion, seed },
      this.deadlineMs,
    );
  }

  /** The error an Act failure is passed on as; the first of an outage is logged. */
  private failed(e: ServiceError): Error {
    if (!UNREACHABLE.has(e.code)) return e;
    this.failedCalls++;
    const error = `${status[e.code]}: ${unreachableReason(e.details ?? '').reason}`;
    if (this.downSince === undefined) {
      this.downSince = Date.now();
      this.logger?.warn('policy service unreachable; actors wait and retry until it is back', { address: this.address, error });
    }
    return new PolicyUnreachableError(`policy service at ${this.address} unreachable (${error})`);
  }

  /** A call succeeded: the end of an outage, if one was reported, is reported too. */
  private answered(): void {
    if (this.downSince === undefined) return;
    this.logger?.info('policy service is back; actors resume', {
      address: this.address,
      down_ms: Date.now() - this.downSince,
      failed_calls: this.failedCalls,
    });
    this.downSince = undefined;
    this.failedCalls = 0;
  }

  generator(runId: string, minVersion: () => number): GenerateFn {
    return generateThroughPolicy(this.client, runId, { minVersion });
  }

  close(): void {
    this.client.close();
  }
}

/** Central inference as an actor's act function. */
export function centralAct(client: PolicyClient, runId: string): ActFn {
  return (obs, rows, seed, minVersion) => client.act(runId, obs, rows, seed, minVersion);
}

/** Local inference: the run's latest published version, run in this process. */
export class LocalPolicy {
  private program: ActProgram | null = null;
  private params: Float32Array | null = null;
  private version = 0;
  private loading: Promise<void> = Promise.resolve();

  constructor(
    private readonly bus: Bus,
    private readonly runId: string,
  ) {}

  /**
   * Loads the version the run's pointer names: `pointer` when the replica's watch just delivered it
   * (sparing a read of the pointer on every update), else the one stored now.
   */
  refresh(pointer?: Uint8Array): Promise<void> {
    this.loading = this.loading.then(() => this.load(pointer)).catch(() => undefined);
    return this.loading;
  }

  private async load(pointer?: Uint8Array): Promise<void> {
    const bytes = pointer ?? (await this.bus.kv.get(keys.policy(this.runId)));
    if (!bytes) return;
    const p = parsePolicyPointer(bytes);
    if (p.version <= this.version) return;
    if (!this.program) {
      // The sampling program when the run has one: an actor needs no values (the learner computes them).
      const name = p.sampleProgram ?? p.program;
      const program = await this.bus.objects.get(name);
      if (!program) throw new Error(`policy program ${name} is missing`);
      this.program = await ActProgram.create(program, pointerShape(p).distribution, { threads: 1, value: p.sampleProgram === undefined });
    }
    const params = await this.bus.objects.get(p.params);
    if (!params) return;
    this.params = paramsFromBytes(params);
    this.version = p.version;
  }

  readonly act: ActFn = async (obs, rows, seed, minVersion) => {
    // Wait (bounded) for the version the actor asks for, as the policy service does.
    const until = Date.now() + 1000;
    while (this.version < Math.max(1, minVersion) && Date.now() < until) {
      await this.refresh();
      if (this.version < Math.max(1, minVersion)) await new Promise((r) => setTimeout(r, 5));
    }
    if (!this.program || !this.params) throw new Error(`no policy published for run "${this.runId}" yet`);
    const out = await this.program.act(this.params, obs, rows, { greedy: false, seed });
    return { ...out, version: this.version };
  };

  async close(): Promise<void> {
    await this.loading;
    await this.program?.release();
  }
}
