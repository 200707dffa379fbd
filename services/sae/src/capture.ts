/**
 * Offline activation capture: a trained policy's capture program (its act program plus one hook as
 * an extra output) run over env episodes or over a file of observations, writing an activation
 * store an SAE trains from:
 *   DIR/activations.safetensors  `activations` F32 [rows, d] (metadata: hook, model, checkpoint, source),
 *                                and `observations` F32 [rows, obs_dim], each row's observation (its
 *                                whole sequence for a token position)
 *   DIR/context.jsonl            one line per row: where it came from (env, episode, step, action,
 *                                position for token sequences, and the labels a data line carries)
 * A hook read as [batch, ...rest] gives one row per observation of width prod(rest); on a token
 * sequence policy a hook read as [batch, positions, ...rest] gives one row per token position up to
 * the sequence's last token (padding after it is not captured). The policy is an rlmesh policy file,
 * or a GPT-2 directory in Hugging Face's layout with text data lines (capture-text.ts).
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { makeEnv, Rng, resetEnv, stepEnv } from '@rlmesh/core';
import { Session } from '@rlmesh/graph';
import { buildCaptureProgram, loadPolicyFile, type PolicyFile, type PolicyModel } from '@rlmesh/learner';
import { writeActivationStore } from './activation-store';
import { readTextData } from './capture-text';

export interface RowContext {
  [key: string]: unknown;
}

export interface CaptureSource {
  /** Play `episodes` episodes of the policy's own env (or `env`), actions sampled from the policy. */
  env?: { id?: string; options?: Record<string, unknown>; episodes: number; seed?: number; maxSteps?: number; level?: number };
  /** JSONL: {"obs": [...], "labels": {...}?} per line, obs as the policy's observation (token ids for text). */
  data?: string;
}

export interface CaptureResult {
  dir: string;
  hook: string;
  rows: number;
  d: number;
}

/** What capture needs of a policy, whether from an rlmesh policy file or a GPT-2 directory. */
export interface CapturedPolicy {
  model: PolicyModel;
  params: Map<string, Float32Array>;
  /** The pad id of a token-sequence policy (rows are then token positions); null otherwise. */
  padId: number | null;
  /** The env the policy was trained on, for episodes. */
  env?: { id: string; options: Record<string, unknown> };
}

export function policyFromFile(file: PolicyFile): CapturedPolicy {
  const space = file.shape.observationSpace as unknown as { kind: string; padId?: number };
  return {
    model: file.model,
    params: file.params,
    padId: space.kind === 'token_sequence' ? (space.padId as number) : null,
    env: { id: file.cfg.env.id, options: file.cfg.env.options as Record<string, unknown> },
  };
}

/** Runs one policy's capture program on batches of observations, returning the hook's rows. */
export class Capturer {
  private constructor(
    readonly file: CapturedPolicy,
    readonly hook: string,
    private readonly session: Session,
    private readonly flat: Float32Array,
    /** Hook shape after the batch axis. */
    private readonly rest: (number | string)[],
  ) {}

  static async open(file: CapturedPolicy, hook: string): Promise<Capturer> {
    const program = buildCaptureProgram(file.model, [hook]);
    const rest = program.shapes[hook].slice(1);
    if (rest.some((d) => typeof d !== 'number'))
      throw new Error(`hook ${hook}: shape [${program.shapes[hook]}] is not static after the batch axis`);
    const session = await Session.create(program.onnx, { intraOpThreads: 1 });
    return new Capturer(file, hook, session, program.layout.pack(file.params), rest);
  }

  /** True when rows are token positions: a token-sequence policy and a hook with a position axis. */
  get perPosition(): boolean {
    return this.file.padId !== null && this.rest[0] === this.file.model.obsDim;
  }

  get width(): number {
    return (this.rest as number[]).slice(this.perPosition ? 1 : 0).reduce((a, b) => a * b, 1);
  }

  async run(obs: Float32Array, rows: number): Promise<{ hook: Float32Array; logProbs: Float32Array | null }> {
    const out = await this.session.run({
      params: { data: this.flat, shape: [this.flat.length] },
      obs: { data: obs, shape: [rows, this.file.model.obsDim] },
    });
    return { hook: out[this.hook].data as Float32Array, logProbs: (out.log_probs?.data as Float32Array) ?? null };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Collects rows and their context; written once at the end. */
export class RowSink {
  private readonly chunks: Float32Array[] = [];
  private readonly obs: Float32Array[] = [];
  readonly context: RowContext[] = [];
  constructor(readonly d: number) {}

  add(row: Float32Array, ctx: RowContext, obs?: Float32Array): void {
    for (let i = 0; i < row.length; i++)
      if (!Number.isFinite(row[i])) throw new Error(`capture: row ${this.context.length} has ${row[i]} at ${i} (${JSON.stringify(ctx)})`);
    this.chunks.push(row.slice());
    if (obs) this.obs.push(obs.slice());
    this.context.push(ctx);
  }

  /** Each row's observation (for token positions, the whole sequence the position is in). */
  observations(): { data: Float32Array; d: number } | undefined {
    if (this.obs.length !== this.rows || this.rows === 0) return undefined;
    const d = this.obs[0].length;
    const data = new Float32Array(this.rows * d);
    for (const [i, o] of this.obs.entries()) data.set(o, i * d);
    return { data, d };
  }

  get rows(): number {
    return this.context.length;
  }

  data(): Float32Array {
    const out = new Float32Array(this.rows * this.d);
    for (const [i, c] of this.chunks.entries()) out.set(c, i * this.d);
    return out;
  }
}

/**
 * The rows one observation gives: itself, or each token position up to the last token (`length`
 * tokens when known, otherwise up to the last non-pad id).
 */
export function emitRows(
  c: Capturer,
  sink: RowSink,
  hook: Float32Array,
  r: number,
  obs: Float32Array,
  ctx: RowContext,
  length?: number,
): void {
  const per = c.width * (c.perPosition ? c.file.model.obsDim : 1);
  const block = hook.subarray(r * per, (r + 1) * per);
  if (!c.perPosition) {
    sink.add(block, ctx, obs.subarray(r * c.file.model.obsDim, (r + 1) * c.file.model.obsDim));
    return;
  }
  const S = c.file.model.obsDim;
  let last = S - 1;
  if (length !== undefined) last = length - 1;
  else while (last > 0 && obs[r * S + last] === c.file.padId) last--;
  const sequence = obs.subarray(r * S, (r + 1) * S);
  for (let t = 0; t <= last; t++)
    sink.add(block.subarray(t * c.width, (t + 1) * c.width), { ...ctx, position: t, token: obs[r * S + t], last: t === last }, sequence);
}

async function captureEpisodes(c: Capturer, sink: RowSink, src: NonNullable<CaptureSource['env']>): Promise<void> {
  if (!src.id && !c.file.env) throw new Error('capture --env: this policy names no env to play; give one');
  const id = src.id ?? (c.file.env?.id as string);
  const options = src.options ?? (src.id ? {} : c.file.env?.options);
  const dist = c.file.model.distribution;
  if (dist.kind !== 'categorical')
    throw new Error(`capture --env: only policies with a Discrete action space can play episodes here, this one is ${dist.kind}`);
  const rng = new Rng(src.seed ?? 0);
  const maxSteps = src.maxSteps ?? 10_000;
  for (let e = 0; e < src.episodes; e++) {
    const env = makeEnv(id, options);
    if (env.obsDim !== c.file.model.obsDim)
      throw new Error(`capture --env ${id}: observations have ${env.obsDim} values, the policy reads ${c.file.model.obsDim}`);
    let obs = resetEnv(env, (src.seed ?? 0) + e, { difficulty: src.level ?? 0 });
    if ((src.level ?? 0) >= env.numLevels) throw new Error(`capture --level: ${id} has levels 0..${env.numLevels - 1}, got ${src.level}`);
    for (let step = 0; step < maxSteps; step++) {
      const { hook, logProbs } = await c.run(obs, 1);
      const action = rng.categorical(Array.from(logProbs as Float32Array, Math.exp));
      emitRows(c, sink, hook, 0, obs, { env: id, level: src.level ?? 0, episode: e, step, action });
      const s = stepEnv(env, action);
      if (s.terminated || s.truncated) break;
      obs = s.obs;
    }
  }
}

async function captureData(c: Capturer, sink: RowSink, path: string): Promise<void> {
  const S = c.file.model.obsDim;
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === '') continue;
    let rec: { obs?: unknown; labels?: unknown };
    try {
      rec = JSON.parse(line);
    } catch {
      throw new Error(`${path}:${n}: not JSON`);
    }
    if (!Array.isArray(rec.obs) || rec.obs.length !== S || !rec.obs.every((v) => typeof v === 'number' && Number.isFinite(v)))
      throw new Error(`${path}:${n}: obs must be an array of ${S} finite numbers (the policy's observation)`);
    const obs = Float32Array.from(rec.obs as number[]);
    const { hook } = await c.run(obs, 1);
    emitRows(c, sink, hook, 0, obs, { source: path, line: n, ...(rec.labels !== undefined ? { labels: rec.labels } : {}) });
  }
}

/** Captures `hook` of the policy in `checkpoint` over `source` into `dir`. */
export async function captureActivations(checkpoint: string, hook: string, source: CaptureSource, dir: string): Promise<CaptureResult> {
  if (!source.env === !source.data) throw new Error('capture: give either env episodes or a data file');
  // A directory is a GPT-2 checkpoint in Hugging Face's layout: its data lines are text.
  const text = existsSync(checkpoint) && statSync(checkpoint).isDirectory();
  if (text && !source.data)
    throw new Error(`capture: ${checkpoint} is a GPT-2 directory, which captures over a data file (--data), not env episodes`);
  const lines = text ? await readTextData(checkpoint, source.data as string) : null;
  const file = lines ? lines.policy : policyFromFile(await loadPolicyFile(checkpoint));
  const c = await Capturer.open(file, hook);
  const sink = new RowSink(c.width);
  try {
    if (lines) for (const l of lines.rows) emitRows(c, sink, (await c.run(l.obs, 1)).hook, 0, l.obs, l.context, l.length);
    else if (source.env) await captureEpisodes(c, sink, source.env);
    else await captureData(c, sink, source.data as string);
  } finally {
    await c.release();
  }
  if (sink.rows === 0) throw new Error('capture: no rows were captured');
  const from = source.env ? `env:${source.env.id ?? file.env?.id}` : `data:${source.data}`;
  await writeActivationStore(
    dir,
    { data: sink.data(), rows: sink.rows, d: sink.d },
    { hook, model: file.model.name, checkpoint, source: from },
    sink.context,
    sink.observations(),
  );
  return { dir, hook, rows: sink.rows, d: sink.d };
}
