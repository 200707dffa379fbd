/**
 * Decoding a batch of prompts of different lengths with a causal LM's KV cache (any CausalLm: gpt2,
 * llama): one prefill over the
 * left-padded prompts, then one decode step per new token that feeds back the cache. Each row's
 * output is what the unpadded prompt alone gives (positions count tokens; padding is masked), and
 * each row samples with its own settings and its own seeded generator, so a row's tokens do not
 * depend on which other rows share the batch. Rows may join a running loop (prefilled, then the
 * batch re-padded on the left) and leave it when they stop (serve), so a server keeps one loop busy.
 *
 * The log-prob returned per token is log softmax(logits)[token] of the model itself (temperature 1,
 * no top-k/top-p truncation): the behaviour log-prob an RL learner compares its own log-probs
 * against, since the learner's forward computes exactly that quantity. It is not the log-prob under
 * the truncated, tempered distribution the token was drawn from.
 */
import { ConfigError, Rng } from '@rlmesh/core';
import { type HostTensor, ParamLayout, Session, WorkerSession } from '@rlmesh/graph';
import { buildKvProgram, type CausalLm, KV_IO } from './causal-lm';
import { type Gpt2Config, Gpt2LMHeadModel } from './gpt2';
import { causalLmConfigJson, causalLmFromConfigJson } from './hf-causal-lm';

/** How one row chooses its tokens. */
export interface SamplingOptions {
  /** 0 (or top_k 1) is greedy; otherwise logits are divided by it before the softmax. Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 keeps all. Default 0. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches top_p, in (0, 1]. Default 1. */
  topP?: number;
  /** Seeds this row's generator; a row with the same seed and prompt draws the same tokens. Default 0. */
  seed?: number;
}

/** cancelled: the row's `cancelled` said so (its caller went away); the others say what ended the completion. */
export type StopReason = 'max_tokens' | 'eos' | 'stop' | 'cancelled';

export interface GenerateRow extends SamplingOptions {
  prompt: readonly number[];
  maxNewTokens: number;
  /** The row stops after emitting this token (it is included in the output). */
  eosTokenId?: number;
  /** The row stops once the decoded completion contains one of these (needs `decode`); the text stays in. */
  stop?: readonly string[];
  /** The row stops once its tokens end with one of these id sequences (included). */
  stopTokens?: readonly (readonly number[])[];
  /** Asked before each of the row's steps; true ends the row there, so a caller that left costs no more steps. */
  cancelled?: () => boolean;
}

export interface GeneratedRow {
  /** New tokens, at most maxNewTokens. */
  tokens: number[];
  /** log softmax(logits)[token] at temperature 1 for each new token (see the file comment). */
  logProbs: number[];
  stopReason: StopReason;
}

export interface GenerateOptions {
  /** Token ids to text, for stop strings. */
  decode?: (ids: readonly number[]) => string;
  /** Called after every step with the rows that got a token this step (finished rows are absent). */
  onStep?: (emitted: { row: number; token: number; logProb: number }[]) => void;
  /**
   * false: no KV cache, every step runs the prefill program over the whole sequence so far (the
   * baseline the cache is measured against, and a check of it). Default true.
   */
  cache?: boolean;
}

export interface GreedyOptions {
  maxNewTokens: number;
  eosTokenId?: number;
}

export interface Generated {
  tokens: number[][];
  logProbs: number[][];
}

/** Throws a ConfigError naming the setting (by the names a request gives them) and the rule. */
export function checkSampling(s: SamplingOptions): void {
  const t = s.temperature ?? 1;
  if (!(Number.isFinite(t) && t >= 0)) throw new ConfigError('temperature', `must be a finite number >= 0, got ${t}`);
  const k = s.topK ?? 0;
  if (!(Number.isInteger(k) && k >= 0)) throw new ConfigError('top_k', `must be an integer >= 0, got ${k}`);
  const p = s.topP ?? 1;
  if (!(p > 0 && p <= 1)) throw new ConfigError('top_p', `must be in (0, 1], got ${p}`);
  const seed = s.seed ?? 0;
  if (!(Number.isInteger(seed) && seed >= 0)) throw new ConfigError('seed', `must be an integer >= 0, got ${seed}`);
}

/**
 * What a PolicyPointer's model_config holds for a causal LM: its config.json (model_type says which
 * architecture), plus whether the flat parameters include the value head (config.json has no key for it).
 */
export function causalLmModelConfig(model: CausalLm): string {
  return JSON.stringify({ ...causalLmConfigJson(model), rlmesh_value_head: model.vHead !== null });
}

/** causalLmModelConfig of a GPT-2 config. */
export function gpt2ModelConfig(c: Gpt2Config): string {
  return causalLmModelConfig(new Gpt2LMHeadModel(c));
}

/** The model and named parameters of a published causal-LM policy: its model_config and flat params (state_dict order). */
export function causalLmFromModelConfig(json: string, flat: Float32Array): { model: CausalLm; params: Map<string, Float32Array> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (e) {
    throw new ConfigError('model_config', `is not JSON: ${(e as Error).message}`);
  }
  const valueHead = (parsed as { rlmesh_value_head?: unknown } | null)?.rlmesh_value_head === true;
  const model = causalLmFromConfigJson(parsed, 'model_config', valueHead);
  const layout = new ParamLayout(model);
  if (flat.length !== layout.total)
    throw new ConfigError('params', `holds ${flat.length} values; the model_config's model has ${layout.total} parameters`);
  return { model, params: layout.unpack(flat) };
}

/**
 * One token from next-token `logits`: argmax when greedy (temperature 0 or top_k 1), else a draw
 * from softmax(logits / temperature) cut to the top k, then to the nucleus of mass top_p, renormalised.
 */
export function sampleToken(logits: Float32Array, s: SamplingOptions, rng: Rng): number {
  const t = s.temperature ?? 1;
  const k = s.topK ?? 0;
  const p = s.topP ?? 1;
  if (t === 0 || k === 1) return argmax(logits);
  const V = logits.length;
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, logits[v]);
  const w = new Float64Array(V);
  let total = 0;
  for (let v = 0; v < V; v++) total += w[v] = Math.exp((logits[v] - m) / t);
  if ((k === 0 || k >= V) && p >= 1) {
    // No truncation: one pass in vocabulary order, no sort.
    let u = rng.uniform() * total;
    for (let v = 0; v < V; v++) if ((u -= w[v]) < 0) return v;
    return lastPositive(w);
  }
  const order = Array.from({ length: V }, (_, v) => v).sort((a, b) => w[b] - w[a] || a - b);
  const keep = k === 0 ? V : Math.min(k, V);
  let kept = 0;
  for (let i = 0; i < keep; i++) kept += w[order[i]];
  // The nucleus: the shortest prefix (of the top k) whose share of their mass reaches top_p; at least one token.
  let n = 0;
  let mass = 0;
  while (n < keep && (n === 0 || mass < p * kept)) mass += w[order[n++]];
  let u = rng.uniform() * mass;
  for (let i = 0; i < n; i++) if ((u -= w[order[i]]) < 0) return order[i];
  return order[n - 1];
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
  return best;
}

function lastPositive(w: Float64Array): number {
  for (let v = w.length - 1; v > 0; v--) if (w[v] > 0) return v;
  return 0;
}

function logSumExp(row: Float32Array): number {
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return m + Math.log(s);
}

function endsWith(tokens: readonly number[], tail: readonly number[]): boolean {
  if (tail.length === 0 || tail.length > tokens.length) return false;
  const at = tokens.length - tail.length;
  return tail.every((t, i) => tokens[at + i] === t);
}

/** What the loop needs of a session: Session (this thread) and WorkerSession (a worker thread) both are. */
interface ProgramRunner {
  run(feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}

/** A row in the decode loop: its request, its completion so far and its own generator. */
interface ActiveRow {
  row: GenerateRow;
  out: GeneratedRow;
  rng: Rng;
}

/**
 * The loop's state: rows, their left-padded ids and mask [B, width], the cache (per layer key and
 * value [B, H, width, D], in kvName's order; null without a cache) and next-token logits [B, V].
 */
interface Batch {
  rows: ActiveRow[];
  width: number;
  ids: BigInt64Array;
  mask: BigInt64Array;
  kv: HostTensor[] | null;
  logits: Float32Array;
}

/** The i-th cache tensor's name: layer i >> 1, key when i is even, value when odd. */
function kvName(i: number, io: 'past' | 'present'): string {
  const l = i >> 1;
  if (io === 'past') return i % 2 === 0 ? KV_IO.pastKey(l) : KV_IO.pastValue(l);
  return i % 2 === 0 ? KV_IO.presentKey(l) : KV_IO.presentValue(l);
}

type Rows = BigInt64Array | Float32Array;

/**
 * Rows of `a` laid out as B blocks of `inner` runs of `t` slots of `d` values ([B, inner, t, d]),
 * each run left-padded with zeros to `w` slots and its first `cut` slots dropped.
 */
function widen<T extends Rows>(a: T, B: number, inner: number, t: number, d: number, w: number, cut = 0): T {
  const out = new (a.constructor as new (n: number) => T)(B * inner * (w - cut) * d);
  for (let r = 0; r < B * inner; r++) {
    const from = a.subarray(r * t * d + Math.max(0, cut - (w - t)) * d, (r + 1) * t * d);
    out.set(from as never, (r + 1) * (w - cut) * d - from.length);
  }
  return out;
}

/** The rows `keep` of a [B, ...] array whose rows hold `size` values each. */
function pick<T extends Rows>(a: T, size: number, keep: readonly number[]): T {
  const out = new (a.constructor as new (n: number) => T)(keep.length * size);
  keep.forEach((b, i) => {
    out.set(a.subarray(b * size, (b + 1) * size) as never, i * size);
  });
  return out;
}

function concatRows<T extends Rows>(a: T, b: T): T {
  const out = new (a.constructor as new (n: number) => T)(a.length + b.length);
  out.set(a as never);
  out.set(b as never, a.length);
  return out;
}

/** One batch of both: the narrower one left-padded to the wider one's width. */
function mergeBatches(a: Batch, b: Batch): Batch {
  const w = Math.max(a.width, b.width);
  const pad = (x: Batch): Batch => {
    if (x.width === w) return x;
    const B = x.rows.length;
    return {
      ...x,
      width: w,
      ids: widen(x.ids, B, 1, x.width, 1, w),
      mask: widen(x.mask, B, 1, x.width, 1, w),
      kv:
        x.kv?.map((t) => ({
          data: widen(t.data as Float32Array, B, t.shape[1], x.width, t.shape[3], w),
          shape: [B, t.shape[1], w, t.shape[3]],
        })) ?? null,
    };
  };
  const [p, q] = [pad(a), pad(b)];
  const B = p.rows.length + q.rows.length;
  return {
    rows: [...p.rows, ...q.rows],
    width: w,
    ids: concatRows(p.ids, q.ids),
    mask: concatRows(p.mask, q.mask),
    kv:
      p.kv && q.kv
        ? p.kv.map((t, i) => ({
            data: concatRows(t.data as Float32Array, q.kv?.[i].data as Float32Array),
            shape: [B, t.shape[1], w, t.shape[3]],
          }))
        : null,
    logits: concatRows(p.logits, q.logits),
  };
}

/** The rows `keep`, with the leading slots that are padding in all of them cut off. */
function selectRows(x: Batch, keep: readonly number[]): Batch {
  const B = keep.length;
  const w = x.width;
  const V = x.logits.length / x.rows.length;
  // Usually every row stays and no column is padding in all of them: then nothing is copied.
  const all = B === x.rows.length;
  const mask = all ? x.mask : pick(x.mask, w, keep);
  let cut = w;
  for (let b = 0; b < B && cut > 0; b++) {
    let lead = 0;
    while (lead < w && mask[b * w + lead] === 0n) lead++;
    cut = Math.min(cut, lead);
  }
  if (all && cut === 0) return x;
  const narrow = <T extends Rows>(a: T, inner: number, d: number) => (cut === 0 ? a : widen(a, B, inner, w, d, w, cut));
  return {
    rows: keep.map((b) => x.rows[b]),
    width: w - cut,
    ids: narrow(pick(x.ids, w, keep), 1, 1),
    mask: narrow(mask, 1, 1),
    kv:
      x.kv?.map((t) => {
        const [H, D] = [t.shape[1], t.shape[3]];
        return { data: narrow(pick(t.data as Float32Array, H * w * D, keep), H, D), shape: [B, H, w - cut, D] };
      }) ?? null,
    logits: pick(x.logits, V, keep),
  };
}

export class Gpt2Generator {
  private constructor(
    private readonly prefill: ProgramRunner,
    private readonly decode: ProgramRunner,
    readonly model: CausalLm,
  ) {}

  /**
   * `worker: true` runs the two programs in worker threads (one each): ORT's run blocks the thread
   * that calls it, and a service must keep answering while a loop decodes. The cache then crosses
   * to the worker and back at every step (a copy each way).
   */
  static async create(
    model: CausalLm,
    params: ReadonlyMap<string, Float32Array>,
    opts: { threads?: number; worker?: boolean } = {},
  ): Promise<Gpt2Generator> {
    const options = { intraOpThreads: opts.threads ?? 1 };
    const open = (program: Uint8Array): Promise<ProgramRunner> =>
      opts.worker ? WorkerSession.create(program, options) : Session.create(program, options);
    const prefill = await open(buildKvProgram(model, params, { past: false }));
    try {
      return new Gpt2Generator(prefill, await open(buildKvProgram(model, params, { past: true })), model);
    } catch (e) {
      await prefill.release();
      throw e;
    }
  }

  /** Greedy decoding of every prompt with the same limit and EOS. */
  async greedy(prompts: readonly (readonly number[])[], opts: GreedyOptions): Promise<Generated> {
    const rows = await this.generate(prompts.map((prompt) => ({ prompt, temperature: 0, ...opts })));
    return { tokens: rows.map((r) => r.tokens), logProbs: rows.map((r) => r.logProbs) };
  }

  /** Throws a RangeError naming the row and the rule when a row cannot be generated. */
  check(row: GenerateRow, b = 0, hasDecode = true): void {
    const d = this.model.dims;
    const p = row.prompt;
    if (p.length === 0) throw new RangeError(`prompt ${b} is empty: generation needs at least one token to condition on`);
    if (!Number.isInteger(row.maxNewTokens) || row.maxNewTokens < 0)
      throw new RangeError(`maxNewTokens must be a non-negative integer, got ${row.maxNewTokens}`);
    if (p.length + row.maxNewTokens > d.context)
      throw new RangeError(`prompt ${b} has ${p.length} tokens; with ${row.maxNewTokens} new ones it exceeds the context of ${d.context}`);
    for (const id of p)
      if (!Number.isInteger(id) || id < 0 || id >= d.vocabSize)
        throw new RangeError(`prompt ${b}: token id ${id} is outside the vocabulary of ${d.vocabSize}`);
    checkSampling(row);
    if (row.stop?.length && !hasDecode) throw new RangeError('stop strings need a decode function (a tokenizer)');
  }

  /**
   * Generates for every row in one decode loop; rows stop on their own (EOS, a stop string or token
   * sequence, their max new tokens) and the loop ends when all have.
   */
  async generate(rows: readonly GenerateRow[], opts: GenerateOptions = {}): Promise<GeneratedRow[]> {
    for (const [b, r] of rows.entries()) this.check(r, b, opts.decode !== undefined);
    const out = new Map<GenerateRow, GeneratedRow>();
    const index = new Map(rows.map((r, b) => [r, b]));
    let pending: readonly GenerateRow[] = rows;
    await this.serve(
      () => {
        const taken = pending;
        pending = [];
        return taken;
      },
      (row, result) => out.set(row, result),
      {
        ...opts,
        onStep: opts.onStep && ((emitted) => opts.onStep?.(emitted.map((e) => ({ ...e, row: index.get(e.row) as number })))),
      },
    );
    return rows.map((r) => out.get(r) as GeneratedRow);
  }

  /**
   * The decode loop with rows joining and leaving: before every step `take(room)` may hand over up
   * to `room` new rows (checked by the caller), which are prefilled and join the batch (the shorter
   * side left-padded, so positions still count tokens); a row that stops leaves the batch at once and
   * `done` gets its completion. Returns when no row is left and `take` has none.
   */
  async serve(
    take: (room: number) => readonly GenerateRow[],
    done: (row: GenerateRow, result: GeneratedRow) => void,
    opts: Omit<GenerateOptions, 'onStep'> & {
      maxBatch?: number;
      onStep?: (emitted: { row: GenerateRow; token: number; logProb: number }[]) => void;
    } = {},
  ): Promise<void> {
    const V = this.model.dims.vocabSize;
    const maxBatch = opts.maxBatch ?? Number.POSITIVE_INFINITY;
    let batch: Batch | null = null;
    for (;;) {
      const fresh = take(maxBatch - (batch?.rows.length ?? 0)).filter((r) => {
        if (r.maxNewTokens > 0) return true;
        done(r, { tokens: [], logProbs: [], stopReason: 'max_tokens' });
        return false;
      });
      if (fresh.length > 0) {
        const joined = await this.prefillRows(fresh, opts.cache !== false);
        batch = batch ? mergeBatches(batch, joined) : joined;
      }
      if (!batch) return;
      // Choose every row's next token from its logits.
      const emitted: { row: GenerateRow; token: number; logProb: number }[] = [];
      const stopped: ActiveRow[] = [];
      const keep: number[] = [];
      const next: bigint[] = [];
      for (const [b, a] of batch.rows.entries()) {
        const { row: r, out: o } = a;
        if (r.cancelled?.()) {
          o.stopReason = 'cancelled';
          stopped.push(a);
          continue;
        }
        const logits = batch.logits.subarray(b * V, (b + 1) * V);
        const token = sampleToken(logits, r, a.rng);
        const logProb = logits[token] - logSumExp(logits);
        o.tokens.push(token);
        o.logProbs.push(logProb);
        emitted.push({ row: r, token, logProb });
        if (token === r.eosTokenId) o.stopReason = 'eos';
        else if (r.stopTokens?.some((s) => endsWith(o.tokens, s))) o.stopReason = 'stop';
        else if (r.stop?.length && opts.decode) {
          const text = opts.decode(o.tokens);
          if (r.stop.some((s) => s !== '' && text.includes(s))) o.stopReason = 'stop';
        }
        if (o.stopReason !== 'max_tokens' || o.tokens.length >= r.maxNewTokens) stopped.push(a);
        else {
          keep.push(b);
          next.push(BigInt(token));
        }
      }
      // A row's last token is reported before its completion.
      opts.onStep?.(emitted);
      for (const a of stopped) done(a.row, a.out);
      // Stopped rows leave; then one step for the rest.
      batch = keep.length === 0 ? null : selectRows(batch, keep);
      if (batch) batch = await this.step(batch, next, opts.cache !== false);
    }
  }

  /** Prefill of rows that join: left-padded to their longest prompt. */
  private async prefillRows(rows: readonly GenerateRow[], cache: boolean): Promise<Batch> {
    const B = rows.length;
    const width = Math.max(...rows.map((r) => r.prompt.length));
    // Left padding: every row's last slot is its last token, so one gather serves the batch.
    const ids = new BigInt64Array(B * width);
    const mask = new BigInt64Array(B * width);
    rows.forEach(({ prompt }, b) => {
      const at = b * width + width - prompt.length;
      prompt.forEach((id, i) => {
        ids[at + i] = BigInt(id);
        mask[at + i] = 1n;
      });
    });
    const res = await this.prefill.run({ input_ids: { data: ids, shape: [B, width] }, attention_mask: { data: mask, shape: [B, width] } });
    return {
      rows: rows.map((row) => ({ row, out: { tokens: [], logProbs: [], stopReason: 'max_tokens' }, rng: new Rng(row.seed ?? 0) })),
      width,
      ids,
      mask,
      kv: cache ? this.kvOf(res) : null,
      logits: res.logits.data as Float32Array,
    };
  }

  /** Appends each row's chosen token and runs the decode program (or, without a cache, the prefill over everything). */
  private async step(batch: Batch, next: readonly bigint[], cache: boolean): Promise<Batch> {
    const B = batch.rows.length;
    const w = batch.width;
    const ids = new BigInt64Array(B * (w + 1));
    const mask = new BigInt64Array(B * (w + 1));
    for (let b = 0; b < B; b++) {
      ids.set(batch.ids.subarray(b * w, (b + 1) * w), b * (w + 1));
      mask.set(batch.mask.subarray(b * w, (b + 1) * w), b * (w + 1));
      ids[b * (w + 1) + w] = next[b];
      mask[b * (w + 1) + w] = 1n;
    }
    const attention = { data: mask, shape: [B, w + 1] };
    let res: Record<string, HostTensor>;
    if (!cache || !batch.kv) res = await this.prefill.run({ input_ids: { data: ids, shape: [B, w + 1] }, attention_mask: attention });
    else {
      const feeds: Record<string, HostTensor> = { input_ids: { data: BigInt64Array.from(next), shape: [B, 1] }, attention_mask: attention };
      batch.kv.forEach((t, i) => {
        feeds[kvName(i, 'past')] = t;
      });
      res = await this.decode.run(feeds);
    }
    return { rows: batch.rows, width: w + 1, ids, mask, kv: cache ? this.kvOf(res) : null, logits: res.logits.data as Float32Array };
  }

  /** Every layer's present key then value, in kvName's order. */
  private kvOf(res: Record<string, HostTensor>): HostTensor[] {
    const L = this.model.dims.layers;
    return Array.from({ length: 2 * L }, (_, i) => res[kvName(i, 'present')]);
  }

  async release(): Promise<void> {
    await this.prefill.release();
    await this.decode.release();
  }
}
