import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildTrainProgram,
  crossEntropy,
  initParameters,
  loadSafetensors,
  loadTrainingCheckpoint,
  loadWeights,
  MLP,
  parseSafetensors,
  Rng,
  saveTrainingCheckpoint,
  saveWeights,
  serializeSafetensors,
  Trainer,
  TransformerEncoder,
  TransformerEncoderLayer,
} from '../src';

const dir = () => mkdtempSync(join(tmpdir(), 'rlmesh-ckpt-'));

describe('safetensors', () => {
  it('round-trips every dtype, a scalar and an empty tensor', () => {
    const tensors = {
      f32: { dtype: 'F32' as const, shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6.5) },
      f64: { dtype: 'F64' as const, shape: [2], data: Float64Array.of(Math.PI, -1e-300) },
      i64: { dtype: 'I64' as const, shape: [3], data: BigInt64Array.of(1n, -2n, 2n ** 40n) },
      i32: { dtype: 'I32' as const, shape: [1, 1], data: Int32Array.of(-7) },
      u8: { dtype: 'U8' as const, shape: [3], data: Uint8Array.of(0, 128, 255) },
      scalar: { dtype: 'F32' as const, shape: [], data: Float32Array.of(42) },
      empty: { dtype: 'F32' as const, shape: [0, 4], data: new Float32Array(0) },
    };
    const bytes = serializeSafetensors(tensors, { note: 'hi' });
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLen % 8).toBe(0);
    const back = parseSafetensors(bytes);
    expect(back.metadata).toEqual({ note: 'hi' });
    for (const [name, t] of Object.entries(tensors)) {
      expect(back.tensors[name].dtype).toBe(t.dtype);
      expect(back.tensors[name].shape).toEqual(t.shape);
      expect(Array.from(back.tensors[name].data as ArrayLike<number>)).toEqual(Array.from(t.data as ArrayLike<number>));
    }
  });

  it("reads the bytes Python's safetensors writer produces", () => {
    const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2,1],"data_offsets":[8,16]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    const bytes = new Uint8Array(8 + padded.length + 16);
    const dv = new DataView(bytes.buffer);
    dv.setBigUint64(0, BigInt(padded.length), true);
    bytes.set(new TextEncoder().encode(padded), 8);
    dv.setFloat32(8 + padded.length, 1, true);
    dv.setFloat32(8 + padded.length + 4, 2, true);
    const parsed = parseSafetensors(bytes);
    expect(Array.from(parsed.tensors.a.data as Float32Array)).toEqual([1, 2]);
    expect(parsed.tensors.b.shape).toEqual([2, 1]);
    expect(Array.from(parsed.tensors.b.data as Int32Array)).toEqual([0, 0]);
    // and our writer emits exactly those bytes for the same tensors
    const ours = serializeSafetensors({
      b: { dtype: 'I32', shape: [2, 1], data: new Int32Array(2) },
      a: { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) },
    });
    expect(Buffer.from(ours).equals(Buffer.from(bytes))).toBe(true);
  });

  it('rejects malformed files with the tensor and the rule named', () => {
    const good = serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) } });
    expect(() => parseSafetensors(good.subarray(0, good.length - 4))).toThrow(/tensor w .*(outside|past the end)/);
    expect(() => serializeSafetensors({ w: { dtype: 'F32', shape: [3], data: Float32Array.of(1) } })).toThrow(
      /tensor w has 1 values.* shape \[3\] needs 3/,
    );
    const big = new Uint8Array(8);
    new DataView(big.buffer).setBigUint64(0, 1000n, true);
    expect(() => parseSafetensors(big)).toThrow(/header length 1000/);
  });
});

describe('PyTorch-compatible checkpoints', () => {
  it('names a 2-layer TransformerEncoder exactly as its torch state_dict does', () => {
    const enc = new TransformerEncoder(() => new TransformerEncoderLayer(16, 4, { dimFeedforward: 32 }), 2);
    const names = enc.namedParameters().map((p) => `${p.name}:${p.shape.join('x')}`);
    const layer = (i: number) => [
      `layers.${i}.self_attn.in_proj_weight:48x16`,
      `layers.${i}.self_attn.in_proj_bias:48`,
      `layers.${i}.self_attn.out_proj.weight:16x16`,
      `layers.${i}.self_attn.out_proj.bias:16`,
      `layers.${i}.linear1.weight:32x16`,
      `layers.${i}.linear1.bias:32`,
      `layers.${i}.linear2.weight:16x32`,
      `layers.${i}.linear2.bias:16`,
      `layers.${i}.norm1.weight:16`,
      `layers.${i}.norm1.bias:16`,
      `layers.${i}.norm2.weight:16`,
      `layers.${i}.norm2.bias:16`,
    ];
    expect(names).toEqual([...layer(0), ...layer(1)]);
    // torch: 2 * (3*16*16 + 3*16 + 16*16 + 16 + 32*16 + 32 + 16*32 + 16 + 4*16)
    expect(enc.parameterCount()).toBe(2 * (768 + 48 + 256 + 16 + 512 + 32 + 512 + 16 + 64));
  });

  it('saves and loads weights by name and shape, and names a mismatch', async () => {
    const mlp = new MLP([3, 5, 2]);
    const params = initParameters(mlp, new Rng(1));
    const path = join(dir(), 'w.safetensors');
    await saveWeights(path, mlp, params);
    const raw = await loadSafetensors(path);
    expect(Object.keys(raw.tensors).sort()).toEqual(['0.bias', '0.weight', '2.bias', '2.weight']);
    expect(raw.tensors['0.weight'].shape).toEqual([5, 3]);
    const { params: back } = await loadWeights(path, mlp);
    for (const [k, v] of params) expect(Array.from(back.get(k)!)).toEqual(Array.from(v));
    await expect(loadWeights(path, new MLP([3, 6, 2]))).rejects.toThrow(/0\.weight has shape \[5,3\], the model expects \[6,3\]/);
  });

  it('a training checkpoint resumes to the same next update as the uninterrupted run', async () => {
    const mlp = new MLP([4, 16, 3]);
    const program = buildTrainProgram({
      module: mlp,
      batch: [
        { name: 'x', dtype: 'float32', shape: ['batch', 4] },
        { name: 'y', dtype: 'int64', shape: ['batch'] },
      ],
      optimizer: { kind: 'adamw' },
      loss: (b) => ({ loss: crossEntropy(mlp.forward(b.x), b.y) }),
    });
    const rng = new Rng(5);
    const batch = () => ({
      x: { data: Float32Array.from({ length: 32 }, () => rng.normal()), shape: [8, 4] },
      y: { data: BigInt64Array.from({ length: 8 }, () => BigInt(rng.int(3))), shape: [8] },
    });
    const batches = Array.from({ length: 6 }, batch);
    const a = await Trainer.fromModule(program, mlp, 9);
    for (const b of batches.slice(0, 3)) await a.step(b, 1e-2);
    const path = join(dir(), 'train.safetensors');
    await saveTrainingCheckpoint(path, a, { run: 'test' });
    for (const b of batches.slice(3)) await a.step(b, 1e-2);

    const b2 = await Trainer.fromModule(program, mlp, 123);
    const meta = await loadTrainingCheckpoint(path, b2);
    expect(meta.run).toBe('test');
    expect(b2.stepCount).toBe(3);
    for (const b of batches.slice(3)) await b2.step(b, 1e-2);
    expect(Array.from(b2.flatParams)).toEqual(Array.from(a.flatParams));
    const saved = await loadSafetensors(path);
    expect(saved.tensors['optimizer.exp_avg.0.weight'].shape).toEqual([16, 4]);
  });
});
