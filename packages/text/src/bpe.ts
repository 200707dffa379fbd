/**
 * The byte-pair-encoding model: a vocabulary (byte-level token string -> id) and an ordered merge
 * list. Encoding one pre-tokenized piece starts from one symbol per byte and repeatedly merges the
 * adjacent pair with the lowest merge rank (leftmost first on ties) until no pair has a merge: the
 * rule GPT-2's `bpe()` and Hugging Face's `BPE` model apply. A binary heap keeps a piece of n bytes
 * at O(n log n), so a megabyte-long run of one character cannot stall a service.
 */
import { BYTE_TO_CHAR, bytesToUnicode, unicodeToBytes } from './bytes';
import { TokenizerFormatError } from './errors';

export interface BpeModelOptions {
  /** Token string (byte-level characters) -> id. */
  vocab: ReadonlyMap<string, number>;
  /** Merges in rank order: `[left, right]`, whose concatenation must be in `vocab`. */
  merges: readonly (readonly [string, string])[];
  /** Emitted for a byte whose character is missing from the vocabulary; without it that is an error. */
  unkToken?: string | null;
  /** Take a piece that is itself a vocabulary entry as one token without merging (Llama-3's setting). */
  ignoreMerges?: boolean;
}

/** Pieces up to this many bytes are cached, as Hugging Face does: longer ones are rarely repeated. */
const CACHE_MAX_PIECE = 256;
const CACHE_CAPACITY = 10_000;
const utf8 = new TextEncoder();

export class BpeModel {
  readonly vocab: ReadonlyMap<string, number>;
  readonly merges: readonly (readonly [string, string])[];
  readonly unkToken: string | null;
  readonly ignoreMerges: boolean;
  /** One past the largest id in the vocabulary. */
  readonly size: number;
  private readonly idToToken: (string | undefined)[];
  private readonly idBytes: (Uint8Array | undefined)[];
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly unkId: number;
  /** Pair key `left * size + right` -> merge rank; `mergeResult[rank]` is the merged token's id. */
  private readonly mergeRank = new Map<number, number>();
  private readonly mergeResult: Int32Array;
  private readonly cache = new Map<string, number[]>();

  constructor(opts: BpeModelOptions) {
    this.vocab = opts.vocab;
    this.merges = opts.merges;
    this.unkToken = opts.unkToken ?? null;
    this.ignoreMerges = opts.ignoreMerges ?? false;
    let size = 0;
    for (const id of opts.vocab.values()) {
      if (!Number.isInteger(id) || id < 0) throw new TokenizerFormatError('model.vocab', `ids must be integers >= 0, got ${id}`);
      size = Math.max(size, id + 1);
    }
    this.size = size;
    this.idToToken = new Array(size);
    this.idBytes = new Array(size);
    for (const [tok, id] of opts.vocab) {
      if (this.idToToken[id] !== undefined)
        throw new TokenizerFormatError(
          'model.vocab',
          `id ${id} is given to both ${JSON.stringify(this.idToToken[id])} and ${JSON.stringify(tok)}`,
        );
      this.idToToken[id] = tok;
      this.idBytes[id] = unicodeToBytes(tok) ?? undefined;
    }
    for (let b = 0; b < 256; b++) this.byteIds[b] = opts.vocab.get(BYTE_TO_CHAR[b]) ?? -1;
    this.unkId = this.unkToken === null ? -1 : (opts.vocab.get(this.unkToken) ?? -1);
    if (this.unkToken !== null && this.unkId < 0)
      throw new TokenizerFormatError('model.unk_token', `${JSON.stringify(this.unkToken)} is not in model.vocab`);
    this.mergeResult = new Int32Array(opts.merges.length);
    opts.merges.forEach(([l, r], rank) => {
      const key = `model.merges[${rank}]`;
      const a = opts.vocab.get(l);
      const b = opts.vocab.get(r);
      const m = opts.vocab.get(l + r);
      if (a === undefined) throw new TokenizerFormatError(key, `${JSON.stringify(l)} is not in model.vocab`);
      if (b === undefined) throw new TokenizerFormatError(key, `${JSON.stringify(r)} is not in model.vocab`);
      if (m === undefined) throw new TokenizerFormatError(key, `the merged token ${JSON.stringify(l + r)} is not in model.vocab`);
      const pair = a * size + b;
      // A repeated pair keeps its first (lowest) rank, as a rank lookup over the list would.
      if (!this.mergeRank.has(pair)) this.mergeRank.set(pair, rank);
      this.mergeResult[rank] = m;
    });
  }

  /** The token string of an id, or undefined for an id the vocabulary does not hold. */
  token(id: number): string | undefined {
    return this.idToToken[id];
  }

  /** The bytes a token stands for; undefined for unknown ids or tokens outside the byte-level alphabet. */
  tokenBytes(id: number): Uint8Array | undefined {
    return this.idBytes[id];
  }

  /** Token ids of one pre-tokenized piece (its UTF-8 bytes are what BPE merges). Callers must not mutate the result. */
  encodePiece(piece: string): readonly number[] {
    if (piece.length === 0) return [];
    const cacheable = piece.length <= CACHE_MAX_PIECE;
    if (cacheable) {
      const hit = this.cache.get(piece);
      if (hit !== undefined) return hit;
    }
    const ids = this.merge(utf8.encode(piece));
    if (cacheable) {
      if (this.cache.size >= CACHE_CAPACITY) this.cache.clear();
      this.cache.set(piece, ids);
    }
    return ids;
  }

  private merge(piece: Uint8Array): number[] {
    if (this.ignoreMerges) {
      const whole = this.vocab.get(bytesToUnicode(piece));
      if (whole !== undefined) return [whole];
    }
    const n = piece.length;
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const id = this.byteIds[piece[i]];
      if (id < 0) {
        if (this.unkId < 0)
          throw new TokenizerFormatError('model.vocab', `has no token for byte 0x${piece[i].toString(16)} and model.unk_token is null`);
        ids[i] = this.unkId;
      } else ids[i] = id;
    }
    if (n === 1) return [ids[0]];
    // A doubly linked list of symbols; a merge keeps the left node and unlinks the right one.
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    for (let i = 0; i + 1 < n; i++) {
      const r = this.mergeRank.get(ids[i] * this.size + ids[i + 1]);
      if (r !== undefined) heap.push(r, i);
    }
    while (heap.length > 0) {
      const [rank, pos] = heap.pop();
      // Entries go stale when a neighbour merged first: the pair at pos must still be the one ranked.
      if (!alive[pos]) continue;
      const right = next[pos];
      if (right < 0 || this.mergeRank.get(ids[pos] * this.size + ids[right]) !== rank) continue;
      ids[pos] = this.mergeResult[rank];
      alive[right] = 0;
      const after = next[right];
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      const before = prev[pos];
      if (before >= 0) {
        const r = this.mergeRank.get(ids[before] * this.size + ids[pos]);
        if (r !== undefined) heap.push(r, before);
      }
      if (after >= 0) {
        const r = this.mergeRank.get(ids[pos] * this.size + ids[after]);
        if (r !== undefined) heap.push(r, pos);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(ids[i]);
    return out;
  }
}

/** A binary min-heap of (rank, position), ordered by rank then position (leftmost first). */
class PairHeap {
  private ranks: number[] = [];
  private positions: number[] = [];

  get length(): number {
    return this.ranks.length;
  }

  private less(i: number, j: number): boolean {
    const a = this.ranks[i];
    const b = this.ranks[j];
    return a < b || (a === b && this.positions[i] < this.positions[j]);
  }

  private swap(i: number, j: number): void {
    const r = this.ranks[i];
    this.ranks[i] = this.ranks[j];
    this.ranks[j] = r;
    const p = this.positions[i];
    this.positions[i] = this.positions[j];
    this.positions[j] = p;
  }

  push(rank: number, pos: number): void {
    this.ranks.push(rank);
    this.positions.push(pos);
    let i = this.ranks.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.ranks[0], this.positions[0]];
    const last = this.ranks.length - 1;
    this.swap(0, last);
    this.ranks.pop();
    this.positions.pop();
    let i = 0;
    const n = this.ranks.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(l, m)) m = l;
      if (r < n && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}
