import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  loadSafetensors,
  parseSafetensors,
  type SafeTensor,
  saveSafetensors,
  serializeSafetensors,
} from '../src/safetensors';

/** Hand-assembles a file: u64 LE header length, the header padded with spaces to 8, then `data`. */
function assemble(headerJson: string, data: Uint8Array, pad = true): Uint8Array {
  let json = new TextEncoder().encode(headerJson);
  if (pad) {
    const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function headerOf(bytes: Uint8Array): string {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return new TextDecoder().decode(bytes.subarray(8, 8 + n));
}

const ALL: Record<string, SafeTensor> = {
  f64: { dtype: 'F64', shape: [3], data: Float64Array.of(1.5, -2, Math.PI) },
  f32: { dtype: 'F32', shape: [2, 2], data: Float32Array.of(1, -2, 3.25, 1e-30) },
  f16: { dtype: 'F16', shape: [3], data: f32ToF16([1, -2.5, 65504]) },
  bf16: { dtype: 'BF16', shape: [1, 2], data: f32ToBf16([1, -2.5]) },
  i64: { dtype: 'I64', shape: [2], data: BigInt64Array.of(-(2n ** 62n), 2n ** 53n + 1n) },
  i32: { dtype: 'I32', shape: [3, 1], data: Int32Array.of(-(2 ** 31), 0, 2 ** 31 - 1) },
  i16: { dtype: 'I16', shape: [2], data: Int16Array.of(-32768, 32767) },
  i8: { dtype: 'I8', shape: [3], data: Int8Array.of(-128, 0, 127) },
  u8: { dtype: 'U8', shape: [5], data: Uint8Array.of(0, 1, 2, 254, 255) },
  bool: { dtype: 'BOOL', shape: [2, 2], data: Uint8Array.of(1, 0, 0, 1) },
  empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  scalar: { dtype: 'F64', shape: [], data: Float64Array.of(42) },
};

describe('safetensors round trip', () => {
  it('round-trips every dtype, an empty tensor and a scalar, with metadata', () => {
    const bytes = serializeSafetensors(ALL, { format: 'pt', note: 'ünïcode ✓' });
    const back = parseSafetensors(bytes);
    expect(back.metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(ALL).sort());
    for (const [name, t] of Object.entries(ALL)) {
      const got = back.tensors[name];
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(got.data).toEqual(t.data);
    }
    // Serialising what was read reproduces the file byte for byte.
    expect(serializeSafetensors(back.tensors, back.metadata)).toEqual(bytes);
  });

  it('copies data out into aligned arrays that do not alias the input', () => {
    const bytes = serializeSafetensors({ a: { dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) }, b: ALL.f64 });
    const { tensors } = parseSafetensors(bytes);
    for (const t of Object.values(tensors)) {
      expect(t.data.byteOffset % t.data.BYTES_PER_ELEMENT).toBe(0);
      expect(t.data.buffer).not.toBe(bytes.buffer);
    }
    // Unaligned on purpose: a 1-byte tensor ahead of the F64 one in the buffer.
    const shifted = assemble(
      '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F64","shape":[1],"data_offsets":[1,9]}}',
      (() => {
        const d = new Uint8Array(9);
        d[0] = 7;
        new DataView(d.buffer).setFloat64(1, -0.125, true);
        return d;
      })(),
    );
    expect(parseSafetensors(shifted).tensors.b.data).toEqual(Float64Array.of(-0.125));
  });

  it('reads from a Uint8Array that is a view into a larger buffer', () => {
    const bytes = serializeSafetensors({ x: ALL.f32 });
    const big = new Uint8Array(bytes.length + 5);
    big.set(bytes, 3);
    expect(parseSafetensors(big.subarray(3, 3 + bytes.length)).tensors.x.data).toEqual(ALL.f32.data);
  });

  it('pads the header with spaces to a multiple of 8 bytes', () => {
    for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
      const bytes = serializeSafetensors({ [name]: { dtype: 'U8', shape: [1], data: Uint8Array.of(9) } });
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect(n % 8).toBe(0);
      const header = headerOf(bytes);
      expect(header.trimEnd()).toBe(`{"${name}":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`);
      expect(header.length - header.trimEnd().length).toBeLessThan(8);
      expect(bytes.length).toBe(8 + n + 1);
    }
  });

  it('lays tensors out as the Python writer does: descending dtype alignment, then name', () => {
    const t = (dtype: SafeTensor['dtype'], data: SafeTensor['data']): SafeTensor => ({ dtype, shape: [data.length], data });
    const bytes = serializeSafetensors({
      zeta: t('F32', Float32Array.of(1)),
      alpha: t('F32', Float32Array.of(2)),
      mid: t('U8', Uint8Array.of(3)),
      big: t('I64', BigInt64Array.of(4n)),
      'b.10': t('F32', Float32Array.of(5)),
      'b.9': t('F32', Float32Array.of(6)),
    });
    const header = JSON.parse(headerOf(bytes)) as Record<string, { data_offsets: [number, number] }>;
    const order = Object.entries(header)
      .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])
      .map(([k]) => k);
    expect(order).toEqual(['big', 'alpha', 'b.10', 'b.9', 'zeta', 'mid']);
    // The header lists them in the same order, so every tensor starts aligned to its element size.
    expect(Object.keys(header)).toEqual(order);
  });

  it('writes __metadata__ first and omits it when empty', () => {
    const withMeta = headerOf(serializeSafetensors({ a: ALL.u8 }, { format: 'pt' }));
    expect(withMeta.startsWith('{"__metadata__":{"format":"pt"},"a":')).toBe(true);
    expect(headerOf(serializeSafetensors({ a: ALL.u8 }, {}))).not.toContain('__metadata__');
    expect(headerOf(serializeSafetensors({}))).toBe('{}      ');
  });

  it('keeps integer-like and prototype names as plain tensor names', () => {
    const bytes = serializeSafetensors({ z: ALL.u8, '10': ALL.i8, '2': ALL.i8, __proto__x: ALL.u8 });
    expect(headerOf(bytes).trimEnd()).toMatch(/^\{"10":.*,"2":.*,"__proto__x":.*,"z":.*\}$/);
    const evil = assemble('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', Uint8Array.of(5));
    const { tensors } = parseSafetensors(evil);
    expect(Object.keys(tensors)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(tensors)).toBe(Object.prototype);
  });
});

describe('safetensors golden bytes', () => {
  it('reads the file safetensors.torch.save_file writes for {a: [1., 2.], b: zeros(2, 1, int32)}', () => {
    const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2,1],"data_offsets":[8,16]}}';
    const padded = Math.ceil(json.length / 8) * 8;
    const golden = new Uint8Array(8 + padded + 16);
    const dv = new DataView(golden.buffer);
    dv.setBigUint64(0, BigInt(padded), true);
    for (let i = 0; i < padded; i++) golden[8 + i] = i < json.length ? json.charCodeAt(i) : 0x20;
    const data = 8 + padded;
    dv.setFloat32(data, 1, true);
    dv.setFloat32(data + 4, 2, true);
    dv.setInt32(data + 8, 0, true);
    dv.setInt32(data + 12, 0, true);

    const { tensors, metadata } = parseSafetensors(golden);
    expect(metadata).toEqual({});
    expect(tensors.a).toEqual({ dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) });
    expect(tensors.b).toEqual({ dtype: 'I32', shape: [2, 1], data: new Int32Array(2) });
    // And writing the same tensors gives the same bytes as Python.
    expect(serializeSafetensors({ b: tensors.b, a: tensors.a })).toEqual(golden);
  });
});

describe('safetensors validation', () => {
  const ok = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';

  it('rejects a file shorter than the length prefix', () => {
    expect(() => parseSafetensors(new Uint8Array(5))).toThrow(/shorter than the 8-byte header length/);
  });

  it('rejects a header length larger than the file', () => {
    const bytes = assemble(ok, new Uint8Array(8));
    new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length), true);
    expect(() => parseSafetensors(bytes)).toThrow(/header length \d+ is larger than/);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 63n, true);
    expect(() => parseSafetensors(bytes)).toThrow(/header length \d+ is larger than/);
  });

  it('rejects headers that are not UTF-8 JSON objects', () => {
    expect(() => parseSafetensors(assemble('{"a":', new Uint8Array(0)))).toThrow(/not valid JSON/);
    expect(() => parseSafetensors(assemble('[1,2]', new Uint8Array(0)))).toThrow(/must be a JSON object/);
    const bad = assemble('{}', new Uint8Array(0));
    bad[9] = 0xff;
    expect(() => parseSafetensors(bad)).toThrow(/not valid UTF-8/);
  });

  it('rejects an unknown dtype, naming the tensor', () => {
    expect(() => parseSafetensors(assemble('{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}', new Uint8Array(2)))).toThrow(
      /tensor w has unknown dtype "F8_E4M3"/,
    );
    expect(() => serializeSafetensors({ w: { dtype: 'C64' as 'F32', shape: [1], data: new Float32Array(1) } })).toThrow(
      /tensor w has unknown dtype C64/,
    );
  });

  it('rejects a bad shape or malformed offsets', () => {
    expect(() => parseSafetensors(assemble('{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}', new Uint8Array(0)))).toThrow(
      /tensor w has shape/,
    );
    expect(() => parseSafetensors(assemble('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}}', new Uint8Array(1)))).toThrow(
      /tensor w data_offsets \[0\] must be two non-negative integers/,
    );
    expect(() => parseSafetensors(assemble('{"w":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}', new Uint8Array(1)))).toThrow(
      /tensor w data_offsets \[1,0\] end before they begin/,
    );
  });

  it('rejects a byte span that does not match dtype and shape', () => {
    expect(() => parseSafetensors(assemble('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)))).toThrow(
      /tensor a data_offsets \[0,8\] span 8 bytes but F32 shape \[3\] needs 12/,
    );
  });

  it('rejects offsets past the end of the buffer', () => {
    expect(() => parseSafetensors(assemble(ok, new Uint8Array(4)))).toThrow(
      /tensor a data_offsets \[0,8\] run past the end of the 4-byte buffer/,
    );
  });

  it('rejects overlapping tensors', () => {
    const h = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expect(() => parseSafetensors(assemble(h, new Uint8Array(8)))).toThrow(/tensor b data_offsets \[4,8\] overlap tensor a/);
  });

  it('rejects gaps and trailing bytes not covered by any tensor', () => {
    const gap = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}';
    expect(() => parseSafetensors(assemble(gap, new Uint8Array(12)))).toThrow(
      /bytes \[4,8\) of the byte buffer belong to no tensor \(gap before tensor b\)/,
    );
    expect(() => parseSafetensors(assemble(ok, new Uint8Array(12)))).toThrow(/tensors cover 8 of the 12-byte buffer/);
  });

  it('rejects non-string metadata values, reading and writing', () => {
    const h = '{"__metadata__":{"step":3},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    expect(() => parseSafetensors(assemble(h, new Uint8Array(8)))).toThrow(/metadata "step" must be a string, got 3/);
    expect(() => parseSafetensors(assemble('{"__metadata__":[]}', new Uint8Array(0)))).toThrow(/__metadata__ must be an object/);
    expect(() => serializeSafetensors({}, { step: 3 as unknown as string })).toThrow(/metadata "step" must be a string/);
  });

  it('rejects, when writing, data whose length or type does not fit', () => {
    expect(() => serializeSafetensors({ w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(5) } })).toThrow(
      /tensor w has 5 values but shape \[2,3\] needs 6/,
    );
    expect(() => serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Float64Array(2) } })).toThrow(
      /tensor w of dtype F32 needs its data in a Float32Array/,
    );
    expect(() => serializeSafetensors({ __metadata__: ALL.u8 })).toThrow(/reserved/);
  });
});

describe('safetensors files', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('saves through a temporary file and loads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'safetensors-'));
    dirs.push(dir);
    const path = join(dir, 'model.safetensors');
    await saveSafetensors(path, ALL, { format: 'pt' });
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect(new Uint8Array(await readFile(path))).toEqual(serializeSafetensors(ALL, { format: 'pt' }));
    const back = await loadSafetensors(path);
    expect(back.metadata).toEqual({ format: 'pt' });
    expect(back.tensors.f32.data).toEqual(ALL.f32.data);
    // Overwriting replaces the file whole.
    await saveSafetensors(path, { x: ALL.u8 });
    expect(Object.keys((await loadSafetensors(path)).tensors)).toEqual(['x']);
  });

  it('leaves no file behind when serialising fails, and names the path on a bad load', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'safetensors-'));
    dirs.push(dir);
    const path = join(dir, 'bad.safetensors');
    await expect(saveSafetensors(path, { w: { dtype: 'F32', shape: [2], data: new Float32Array(1) } })).rejects.toThrow(/tensor w/);
    expect(await readdir(dir)).toEqual([]);
    await writeFile(path, Uint8Array.of(1, 2, 3));
    await expect(loadSafetensors(path)).rejects.toThrow(`${path}: safetensors: file is 3 bytes`);
  });
});

describe('f16 and bf16 conversion', () => {
  const bits = (xs: Uint16Array) => Array.from(xs, (x) => x.toString(16).padStart(4, '0'));

  it('encodes known float16 values', () => {
    const values = [1, -2.5, 65504, 0, -0, 2 ** -14, 2 ** -24, 1023 * 2 ** -24, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
    expect(bits(f32ToF16(values))).toEqual(['3c00', 'c100', '7bff', '0000', '8000', '0400', '0001', '03ff', '7c00', 'fc00']);
  });

  it('rounds float16 to nearest even, overflowing to infinity and underflowing to zero', () => {
    const values = [
      65519, // below the midpoint to 65536: stays finite
      65520, // the midpoint, ties to even: 65536, which is Inf
      1e6,
      2 ** -25, // half the smallest subnormal, ties to even: 0
      1.5 * 2 ** -25, // rounds up to the smallest subnormal
      2 ** -26,
      -3 * 2 ** -25, // 1.5 ulp of subnormals, ties to even: 2 ulp
      1 + 2 ** -11, // midpoint between 1 and the next half, ties to even: 1
      1 + 3 * 2 ** -11, // midpoint, ties to even: up
    ];
    expect(bits(f32ToF16(values))).toEqual(['7bff', '7c00', '7c00', '0000', '0001', '0000', '8002', '3c00', '3c02']);
  });

  it('keeps NaN a NaN in float16', () => {
    const h = f32ToF16([Number.NaN])[0];
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
    expect(f16ToF32(Uint16Array.of(h))[0]).toBeNaN();
    // A NaN whose payload sits only in the low bits must not truncate to Inf.
    const lowNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer);
    expect(f32ToF16(lowNaN)[0] & 0x3ff).not.toBe(0);
  });

  it('decodes float16 exactly, subnormals and specials included', () => {
    const decoded = f16ToF32(Uint16Array.of(0x3c00, 0xc100, 0x7bff, 0x0001, 0x03ff, 0x8001, 0x0400, 0x7c00, 0xfc00, 0x8000, 0x7e00));
    expect(Array.from(decoded.subarray(0, 10))).toEqual([
      1,
      -2.5,
      65504,
      2 ** -24,
      1023 * 2 ** -24,
      -(2 ** -24),
      2 ** -14,
      Infinity,
      -Infinity,
      -0,
    ]);
    expect(decoded[10]).toBeNaN();
  });

  it('round-trips every finite float16 bit pattern', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i).filter((h) => (h & 0x7c00) !== 0x7c00);
    expect(f32ToF16(f16ToF32(all))).toEqual(all);
  });

  it('encodes and decodes known bfloat16 values', () => {
    const tiny = 2 ** -133; // the smallest bfloat16 subnormal
    expect(bits(f32ToBf16([1, -2.5, 65504, tiny, 1e-40, 0, -0, Infinity, -Infinity, 3.4e38]))).toEqual([
      '3f80',
      'c020',
      '4780', // 65504 rounds up to 65536
      '0001',
      '0001',
      '0000',
      '8000',
      '7f80',
      'ff80',
      '7f80', // beyond the largest bfloat16 (3.39e38): rounds to Inf
    ]);
    expect(bits(f32ToBf16([1 + 2 ** -8, 1 + 3 * 2 ** -8]))).toEqual(['3f80', '3f82']);
    const back = bf16ToF32(Uint16Array.of(0x3f80, 0xc020, 0x4780, 0x0001, 0x7f80, 0xff80, 0x8000));
    expect(Array.from(back)).toEqual([1, -2.5, 65536, tiny, Infinity, -Infinity, -0]);
  });

  it('keeps NaN a NaN in bfloat16', () => {
    const h = f32ToBf16([Number.NaN])[0];
    expect(h & 0x7f80).toBe(0x7f80);
    expect(h & 0x7f).not.toBe(0);
    expect(bf16ToF32(Uint16Array.of(h))[0]).toBeNaN();
    // A NaN whose payload sits only in the low bits must not round or truncate to Inf.
    const lowNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer);
    expect(f32ToBf16(lowNaN)[0] & 0x7f).not.toBe(0);
  });
});
