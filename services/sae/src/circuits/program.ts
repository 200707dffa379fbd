/**
 * The capture + patch program: a GPT-2's forward over token ids with some hook points read out
 * (capture) and some replaced (patch), the replacement values being extra inputs. For a patched
 * hook h of shape [batch, sequence, ..., d] the program takes
 *   patch:h  [batch, sequence, ..., d]   the values to put in
 *   mask:h   [batch, sequence, ..., 1]   1 where they go in (a position, a head), 0 elsewhere
 * and uses h' = h · (1 − mask) + patch · mask, exact for a 0/1 mask: a mask of zeros leaves the run
 * untouched, a mask of ones puts the given values in bit for bit. One program serves every patch
 * location of its hook set (the mask says where), every source of values (clean, corrupted, a mean,
 * zeros) and every checkpoint of the same architecture (the weights are the `params` input).
 * Outputs `log_probs` [batch, sequence, vocab] (next-token log-softmax) and each captured hook.
 */
import {
  add,
  buildForwardProgram,
  type HookValue,
  logSoftmax,
  mul,
  type ParamLayout,
  recordHooks,
  Session,
  sub,
  unknownHooks,
  type Value,
} from '@rlmesh/graph';
import type { Gpt2LMHeadModel } from '@rlmesh/learner';

export interface TokenBatch {
  /** Right-padded ids [rows, width] and the attention mask (1 at tokens). */
  ids: BigInt64Array;
  mask: BigInt64Array;
  rows: number;
  width: number;
}

/** Values and mask for one patched hook, both laid out as the hook on this batch. */
export interface HookPatch {
  value: Float32Array;
  mask: Float32Array;
}

export class CircuitProgram {
  private constructor(
    readonly patched: readonly string[],
    readonly captured: readonly string[],
    /** Each hook's shape after [batch, sequence]. */
    readonly inner: Record<string, number[]>,
    readonly layout: ParamLayout,
    private readonly session: Session,
  ) {}

  static async build(model: Gpt2LMHeadModel, o: { patch?: readonly string[]; capture?: readonly string[] }): Promise<CircuitProgram> {
    const patch = o.patch ?? [];
    const capture = o.capture ?? [];
    const inner: Record<string, number[]> = {};
    // Hook shapes are needed to declare the patch inputs, so a first trace reads them.
    const hooks = traceHooks(model);
    const missing = [...patch, ...capture].filter((h) => !hooks.has(h));
    if (missing.length > 0) throw unknownHooks(missing, hooks);
    for (const h of [...patch, ...capture]) {
      const shape = hooks.get(h) as (number | string)[];
      if (shape.slice(2).some((d) => typeof d !== 'number'))
        throw new Error(`hook ${h}: shape [${shape}] is not static after [batch, sequence]`);
      inner[h] = shape.slice(2) as number[];
    }
    const { onnx, layout } = buildForwardProgram({
      module: model,
      name: 'circuits',
      inputs: [
        { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
        { name: 'attention_mask', dtype: 'int64', shape: ['batch', 'sequence'] },
        ...patch.flatMap((h) => [
          { name: `patch:${h}`, dtype: 'float32' as const, shape: ['batch', 'sequence', ...inner[h]] },
          { name: `mask:${h}`, dtype: 'float32' as const, shape: ['batch', 'sequence', ...inner[h].slice(0, -1), 1] },
        ]),
      ],
      forward: (i) => {
        const replace = new Map(
          patch.map((h) => [h, (v: Value) => add(mul(v, sub(1, i[`mask:${h}`])), mul(i[`patch:${h}`], i[`mask:${h}`]))]),
        );
        const rec = recordHooks(() => model.forward({ ids: i.input_ids, attentionMask: i.attention_mask }).logits, replace);
        const out: Record<string, Value> = { log_probs: logSoftmax(rec.result, -1) };
        for (const h of capture) out[h] = (rec.hooks.get(h) as HookValue).read();
        return out;
      },
    });
    const session = await Session.create(onnx, { intraOpThreads: 1 });
    return new CircuitProgram(patch, capture, inner, layout, session);
  }

  /** Values per row of hook h: sequence positions times the inner size. */
  rowSize(h: string, width: number): number {
    return width * this.inner[h].reduce((a, b) => a * b, 1);
  }

  /** Runs the batch with `patches` (every patched hook needs one); returns log-probs and the captured hooks. */
  async run(
    flatParams: Float32Array,
    batch: TokenBatch,
    patches: Record<string, HookPatch> = {},
  ): Promise<{ logProbs: Float32Array; vocab: number; hooks: Record<string, Float32Array> }> {
    const { rows, width } = batch;
    const feeds: Record<string, { data: Float32Array | BigInt64Array; shape: number[] }> = {
      params: { data: flatParams, shape: [flatParams.length] },
      input_ids: { data: batch.ids, shape: [rows, width] },
      attention_mask: { data: batch.mask, shape: [rows, width] },
    };
    for (const h of this.patched) {
      const p = patches[h];
      if (!p) throw new Error(`circuits: hook ${h} is patched by this program; give its values and mask`);
      const shape = [rows, width, ...this.inner[h]];
      feeds[`patch:${h}`] = { data: p.value, shape };
      feeds[`mask:${h}`] = { data: p.mask, shape: [...shape.slice(0, -1), 1] };
    }
    const out = await this.session.run(feeds);
    const logProbs = out.log_probs.data as Float32Array;
    const hooks = Object.fromEntries(this.captured.map((h) => [h, out[h].data as Float32Array]));
    return { logProbs, vocab: logProbs.length / (rows * width), hooks };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Every hook of the model with its shape on [batch, sequence] ids. */
export function traceHooks(model: Gpt2LMHeadModel): Map<string, (number | string)[]> {
  let found = new Map<string, (number | string)[]>();
  buildForwardProgram({
    module: model,
    inputs: [
      { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
      { name: 'attention_mask', dtype: 'int64', shape: ['batch', 'sequence'] },
    ],
    forward: (i) => {
      const rec = recordHooks(() => model.forward({ ids: i.input_ids, attentionMask: i.attention_mask }).logits);
      found = new Map([...rec.hooks].map(([n, h]) => [n, [...h.read().shape]]));
      return { logits: rec.result };
    },
  });
  return found;
}

/** Right-pads `seqs` into one batch (pad id 0; the mask keeps padding out of every real position). */
export function tokenBatch(seqs: readonly (readonly number[])[]): TokenBatch {
  const width = Math.max(...seqs.map((s) => s.length));
  const ids = new BigInt64Array(seqs.length * width);
  const mask = new BigInt64Array(seqs.length * width);
  for (const [r, s] of seqs.entries())
    for (const [t, id] of s.entries()) {
      ids[r * width + t] = BigInt(id);
      mask[r * width + t] = 1n;
    }
  return { ids, mask, rows: seqs.length, width };
}
