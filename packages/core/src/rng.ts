/**
 * A seeded, serialisable PRNG: xoshiro128** over four 32-bit words, seeded by splitmix32.
 * Everything that draws randomness (initialisers, data shuffles, sampling) takes an Rng, so a run
 * is reproducible from its seed and resumable from `state()`.
 */

/** The full generator state; `spare` is the cached second Box-Muller normal, if any. */
export interface RngState {
  s: [number, number, number, number];
  spare?: number | null;
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 step: returns the next state and a well-mixed output word. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  z ^= z >>> 15;
  return [next, z >>> 0];
}

/** Murmur3's 32-bit finaliser. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function isWord(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < TWO_POW_32;
}

export class Rng {
  private readonly s = new Uint32Array(4);
  private spare: number | null = null;

  /** Seeds the four state words from an integer seed via splitmix32. */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    // Fold the high bits in so that seeds differing only above bit 32 (or in sign) still differ.
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    let st = (lo ^ fmix32(hi)) | 0;
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(st);
      st = next;
      this.s[i] = out;
    }
    this.guardZero();
  }

  /** Restores a generator exactly where `state()` left it. */
  static fromState(state: RngState): Rng {
    const s = state?.s;
    if (!Array.isArray(s) || s.length !== 4 || !s.every(isWord)) {
      throw new Error('Rng.fromState: s must be four unsigned 32-bit integers');
    }
    if (s.every((w) => w === 0)) throw new Error('Rng.fromState: s must not be all zero (xoshiro would emit only zeros)');
    const spare = state.spare ?? null;
    if (spare !== null && (typeof spare !== 'number' || !Number.isFinite(spare))) {
      throw new Error(`Rng.fromState: spare must be a finite number or null, got ${String(spare)}`);
    }
    const rng = new Rng(0);
    rng.s.set(s);
    rng.spare = spare;
    return rng;
  }

  /** A JSON-serialisable copy of the state, including the cached normal spare. */
  state(): RngState {
    return { s: [this.s[0], this.s[1], this.s[2], this.s[3]], spare: this.spare };
  }

  /** The next raw 32-bit output, as an unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextU32() >>> 5;
    const b = this.nextU32() >>> 6;
    return (a * 67108864 + b) / TWO_POW_53;
  }

  /** A uniform double in [lo, hi). */
  uniformRange(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** A standard normal sample (Box-Muller; the second value of each pair is cached). */
  normal(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    // 1 - u lies in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** A uniform integer in [0, n), unbiased by rejection; n up to 2^53. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_53) throw new Error(`Rng.int: n must be an integer in [1, 2^53], got ${n}`);
    if (n <= TWO_POW_32) {
      const limit = TWO_POW_32 - (TWO_POW_32 % n);
      let x = this.nextU32();
      while (x >= limit) x = this.nextU32();
      return x % n;
    }
    const limit = TWO_POW_53 - (TWO_POW_53 % n);
    let x = this.uniform() * TWO_POW_53;
    while (x >= limit) x = this.uniform() * TWO_POW_53;
    return x % n;
  }

  /** Samples an index with probability proportional to probs[i] (weights need not sum to 1). */
  categorical(probs: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < probs.length; i++) {
      const p = probs[i];
      if (!(p >= 0) || !Number.isFinite(p)) throw new Error(`Rng.categorical: probs[${i}] must be finite and >= 0, got ${p}`);
      total += p;
    }
    if (!(total > 0)) throw new Error('Rng.categorical: probs must have a positive sum');
    const u = this.uniform() * total;
    let acc = 0;
    let last = -1;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i] === 0) continue;
      acc += probs[i];
      last = i;
      if (u < acc) return i;
    }
    // Rounding can leave u just above the accumulated sum; the last positive weight takes it.
    return last;
  }

  /** Shuffles arr in place (Fisher-Yates) and returns it. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    return arr;
  }

  /** A child generator seeded from this one's next outputs; advances this generator. */
  fork(): Rng {
    // Hashing the drawn words (rather than copying them) keeps the child's state from being a
    // simple function of outputs the parent has already handed out.
    const child = new Rng(0);
    for (let i = 0; i < 4; i++) child.s[i] = fmix32((this.nextU32() ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0);
    child.guardZero();
    return child;
  }

  private guardZero(): void {
    if (this.s[0] === 0 && this.s[1] === 0 && this.s[2] === 0 && this.s[3] === 0) this.s[0] = 1;
  }
}
