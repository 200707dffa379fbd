/**
 * PolicyService.Act over gRPC for the actors: a deadline on every call, and retries on UNAVAILABLE
 * (Act has no side effect on the server, so a retried call is safe).
 */
import { type ChannelCredentials, credentials } from '@grpc/grpc-js';
import { channelOptions, unary } from '@rlmesh/mesh';
import { decodeTensor, encodeTensor, PolicyServiceClient } from '@rlmesh/proto';
import type { ActResult, PolicyClient } from './actor';

export class GrpcPolicyClient implements PolicyClient {
  private readonly client: PolicyServiceClient;

  constructor(
    address: string,
    private readonly deadlineMs = 5000,
    channelCredentials: ChannelCredentials = credentials.createInsecure(),
  ) {
    this.client = new PolicyServiceClient(address, channelCredentials, channelOptions('rlmesh.v1.PolicyService', ['Act', 'GetPolicy']));
  }

  async act(runId: string, obs: Float32Array, rows: number, minVersion = 0): Promise<ActResult> {
    const res = await unary(
      'env',
      'rlmesh.v1.PolicyService/Act',
      this.client.act.bind(this.client),
      { runId, obs: encodeTensor(obs, [rows, obs.length / rows]), greedy: false, minVersion },
      this.deadlineMs,
    );
    return {
      actions: decodeTensor('actions', res.actions, { dtype: 'int32', shape: [rows] }).data,
      logProbs: decodeTensor('log_probs', res.logProbs, { dtype: 'float32', shape: [rows] }).data,
      values: decodeTensor('values', res.values, { dtype: 'float32', shape: [rows] }).data,
      version: res.policyVersion,
    };
  }

  close(): void {
    this.client.close();
  }
}
