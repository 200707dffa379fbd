/**
 * The policy service's device reaches its inference worker: asked for CUDA where the provider cannot
 * load, loading a policy fails with FAILED_PRECONDITION carrying onnxruntime's reason, instead of the
 * worker quietly running on the CPU (the CLI refuses earlier still, see device.test.ts); on cpu the
 * same policy serves.
 */
import { status } from '@grpc/grpc-js';
import { deviceUnavailable } from '@rlmesh/graph';
import { MemoryBus } from '@rlmesh/mesh';
import { PolicyCore } from '@rlmesh/policy';
import { afterAll, describe, expect, it } from 'vitest';
import { compile, observations, publish, quietLogger } from '../../services/policy/test/fixture';

const C = compile();

describe('the policy worker runs on the service device', () => {
  const cores: PolicyCore[] = [];
  afterAll(async () => {
    await Promise.all(cores.map((c) => c.close()));
  });
  async function core(device: 'cpu' | 'cuda') {
    const bus = new MemoryBus();
    await publish(bus, 'r', C, 1, C.params(1));
    const c = new PolicyCore({ bus, logger: quietLogger, seed: 0, device });
    cores.push(c);
    return c;
  }

  it('serves on cpu', async () => {
    const r = await (await core('cpu')).act('r', observations(4, C.obsDim), 4, true);
    expect(r.values.length).toBe(4);
  });

  it.skipIf(deviceUnavailable('cuda') === null)('fails to load on cuda where the provider is missing, never falling back', async () => {
    const err = await (await core('cuda')).act('r', observations(4, C.obsDim), 4, true).catch((e) => e);
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.message).toMatch(/^run_id: policy of run "r" could not be loaded: .*Cuda/);
  });
});
