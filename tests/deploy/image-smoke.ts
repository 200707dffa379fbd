/**
 * The image's smoke check, run from the host against services started from the image (see
 * deploy/image.sh smoke): the env service answers grpc.health.v1 and an EnvService Reset over
 * loopback, and the policy service runs an inference of a policy published on NATS whose values
 * match the same program run here on onnxruntime's CPU provider.
 *
 *   tsx --conditions=source tests/deploy/image-smoke.ts --env HOST:PORT --policy HOST:PORT --nats URL
 *
 * Prints one JSON line of what it measured; exits 1 (with the reason) on any mismatch.
 */
import { parseArgs } from 'node:util';
import { type Client, credentials, Metadata, makeGenericClientConstructor } from '@grpc/grpc-js';
import { Box, Discrete, Rng } from '@rlmesh/core';
import { buildForwardProgram, initParameters, Linear, logSoftmax, MLP, Module, Session, squeeze, type Value } from '@rlmesh/graph';
import { NatsBus, publishPolicy, spaceToProto } from '@rlmesh/mesh';
import { ActRequest, decodeTensor, EnvServiceClient, encodeTensor, PolicyServiceClient, ResetRequest } from '@rlmesh/proto';
import { service as healthService } from 'grpc-health-check';

const OBS = 6;
const ACTIONS = 4;
const ROWS = 3;

class SmokePolicy extends Module {
  private readonly trunk = this.child('trunk', new MLP([OBS, 16]));
  private readonly pi = this.child('pi', new Linear(16, ACTIONS));
  private readonly v = this.child('v', new Linear(16, 1));
  forward(obs: Value) {
    const h = this.trunk.forward(obs);
    return { log_probs: logSoftmax(this.pi.forward(h)), value: squeeze(this.v.forward(h), [1]) };
  }
}

type Callback<T> = (err: Error | null, res: T) => void;
function unary<T>(invoke: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => invoke((err, res) => (err ? reject(err) : resolve(res))));
}
const deadline = () => ({ deadline: Date.now() + 10_000 });

async function health(address: string, service: string): Promise<string> {
  const Health = makeGenericClientConstructor(healthService, 'grpc.health.v1.Health');
  const client = new Health(address, credentials.createInsecure()) as unknown as Client & {
    check(req: { service: string }, opts: object, cb: Callback<{ status: string }>): void;
  };
  try {
    return (await unary<{ status: string }>((cb) => client.check({ service }, deadline(), cb))).status;
  } finally {
    client.close();
  }
}

async function checkEnv(address: string) {
  const status = await health(address, 'rlmesh.v1.EnvService');
  if (status !== 'SERVING') throw new Error(`env ${address}: health says ${status}, expected SERVING`);
  const client = new EnvServiceClient(address, credentials.createInsecure());
  try {
    const res = await unary<{ handle: string; obs?: Parameters<typeof decodeTensor>[1] }>((cb) =>
      client.reset(ResetRequest.fromPartial({ envId: 'PatternEcho', seed: 7 }), new Metadata(), deadline(), cb as never),
    );
    const obs = decodeTensor('obs', res.obs, { dtype: 'float32', shape: [8] }).data;
    // PatternEcho shows one one-hot symbol: exactly one 1 among 8.
    if (!res.handle || obs.reduce((a, b) => a + b, 0) !== 1) throw new Error(`env ${address}: Reset answered ${JSON.stringify(res)}`);
    return { health: status, reset_handle: res.handle, obs: Array.from(obs) };
  } finally {
    client.close();
  }
}

async function checkPolicy(address: string, natsUrl: string) {
  const model = new SmokePolicy();
  const program = buildForwardProgram({
    module: model,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', OBS] }],
    forward: (i) => model.forward(i.obs),
  });
  const params = program.layout.pack(initParameters(model, new Rng(11)));
  const obs = Float32Array.from({ length: ROWS * OBS }, (_, i) => Math.sin(i));
  const run = `smoke-${process.pid}`;
  const bus = await NatsBus.connect({ servers: natsUrl, name: 'rlmesh-image-smoke' });
  try {
    await publishPolicy(bus, run, {
      version: 1,
      params,
      program: program.onnx,
      spec: {
        observationSpace: spaceToProto(new Box(-1, 1, [OBS])),
        actionSpace: spaceToProto(new Discrete(ACTIONS)),
        model: 'SmokePolicy',
        numParameters: program.layout.total,
      },
      distribution: 'categorical',
    });
  } finally {
    await bus.close();
  }
  const client = new PolicyServiceClient(address, credentials.createInsecure());
  let values: Float32Array;
  const started = performance.now();
  try {
    const res = await unary<{ values?: Parameters<typeof decodeTensor>[1]; policyVersion: number }>((cb) =>
      client.act(
        ActRequest.fromPartial({ runId: run, obs: encodeTensor(obs, [ROWS, OBS]), greedy: true }),
        new Metadata(),
        deadline(),
        cb as never,
      ),
    );
    values = decodeTensor('values', res.values, { dtype: 'float32', shape: [ROWS] }).data as Float32Array;
  } finally {
    client.close();
  }
  const actMs = performance.now() - started;
  const local = await Session.create(program.onnx, { executionProviders: ['cpu'] });
  const ref = (await local.run({ params: { data: params, shape: [params.length] }, obs: { data: obs, shape: [ROWS, OBS] } })).value
    .data as Float32Array;
  await local.release();
  const worst = Math.max(...Array.from(values, (v, i) => Math.abs(v - ref[i])));
  if (!(worst <= 1e-5)) throw new Error(`policy ${address}: values ${Array.from(values)} differ from the host's ${Array.from(ref)}`);
  return { act_ms: Math.round(actMs), values: Array.from(values), max_abs_diff: worst };
}

async function main() {
  const { values } = parseArgs({ options: { env: { type: 'string' }, policy: { type: 'string' }, nats: { type: 'string' } } });
  if (!values.env || !values.policy || !values.nats) throw new Error('needs --env HOST:PORT --policy HOST:PORT --nats URL');
  const env = await checkEnv(values.env);
  const policy = await checkPolicy(values.policy, values.nats);
  console.log(JSON.stringify({ env, policy }));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`image smoke: ${(e as Error).message}`);
    process.exit(1);
  },
);
