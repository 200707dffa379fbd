/**
 * How actors choose actions in the mesh. Central inference (SEED RL): PolicyService.Act over gRPC,
 * with a deadline and retries on UNAVAILABLE (Act has no side effect, so a retry is safe). Local
 * inference (IMPALA): the actor runs each published version itself, fetched from the object store
 * when the run's policy pointer moves; for small policies this saves a network hop per step.
 */
import { type ChannelCredentials, credentials } from '@grpc/grpc-js';
import type { ActFn, ActOutput } from '@rlmesh/core';
import { ActProgram, type Bus, channelOptions, keys, paramsFromBytes, parsePolicyPointer, pointerShape, unary } from '@rlmesh/mesh';
import { DType, decodeTensor, encodeTensor, PolicyServiceClient } from '@rlmesh/proto';

/** What an actor needs from the policy service (a gRPC client in the mesh, the core in process). */
export interface PolicyClient {
  act(runId: string, obs: Float32Array, rows: number, seed: number, minVersion: number): Promise<ActOutput>;
}

export class GrpcPolicyClient implements PolicyClient {
  private readonly client: PolicyServiceClient;

  constructor(
    address: string,
    private readonly deadlineMs = 5000,
    channelCredentials: ChannelCredentials = credentials.createInsecure(),
  ) {
    this.client = new PolicyServiceClient(address, channelCredentials, channelOptions('rlmesh.v1.PolicyService', ['Act', 'GetPolicy']));
  }

  async act(runId: string, obs: Float32Array, rows: number, seed: number, minVersion: number): Promise<ActOutput> {
    const res = await unary(
      'env',
      'rlmesh.v1.PolicyService/Act',
      this.client.act.bind(this.client),
      { runId, obs: encodeTensor(obs, [rows, obs.length / rows]), greedy: false, minVersion, seed },
      this.deadlineMs,
    );
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

  /** Loads the version the run's pointer names now (the replica calls this on every pointer change). */
  refresh(): Promise<void> {
    this.loading = this.loading.then(() => this.load()).catch(() => undefined);
    return this.loading;
  }

  private async load(): Promise<void> {
    const bytes = await this.bus.kv.get(keys.policy(this.runId));
    if (!bytes) return;
    const p = parsePolicyPointer(bytes);
    if (p.version <= this.version) return;
    if (!this.program) {
      const program = await this.bus.objects.get(p.program);
      if (!program) throw new Error(`policy program ${p.program} is missing`);
      this.program = await ActProgram.create(program, pointerShape(p).distribution, { threads: 1 });
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
