/**
 * The SFT train step, as two ONNX programs and a little TypeScript between them:
 *
 *   gradient  (params, micro-batch, N) -> grad of  sum_{completion tokens} -log p(token) / N
 *   update    (params, Adam state, summed grad, step, lr) -> clipped AdamW update
 *
 * One update sums the gradients of its k micro-batches (gradient accumulation), where N is the
 * number of completion tokens in all k together. So the loss of an update is
 *
 *   loss = (1 / N) * sum over the k micro-batches, over every completion token t of -log p(t)
 *
 * the mean over completion tokens of the whole accumulated batch, and its gradient is exactly the
 * gradient of one batch of k times the size: every token weighs the same however the tokens fall
 * into micro-batches and rows (Hugging Face TRL's per-token normalisation over the accumulated
 * batch, `num_items_in_batch`). Prompt tokens and padding are masked out of the sum; padding is also
 * masked out of attention. The one loss term is `completion_nll`; `loss` is the same number.
 *
 * The update is torch.optim.AdamW (packages/graph's emitUpdate) on the clipped accumulated gradient
 * (clip_grad_norm_ at max_grad_norm), with decoupled weight decay applied to weight matrices and
 * embeddings only (rank >= 2), not to biases or LayerNorm parameters, as Hugging Face's Trainer and
 * nanoGPT do for GPT-2.
 */
import {
  cast,
  categoricalLogProb,
  concat,
  div,
  emitUpdate,
  Graph,
  gradients,
  type HostTensor,
  mul,
  neg,
  ParamLayout,
  type ParamScope,
  reduceSum,
  reshape,
  Session,
  sub,
  TRAIN_IO,
  type Value,
} from '@rlmesh/graph';
import type { Gpt2LMHeadModel } from '../models/gpt2';
import type { SftBatch } from './data';

/** The batch inputs of the gradient and eval programs (collate() builds them). */
export const SFT_BATCH_INPUTS = [
  { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
  { name: 'attention_mask', dtype: 'int64', shape: ['batch', 'sequence'] },
  { name: 'labels', dtype: 'int64', shape: ['batch', 'sequence'] },
  { name: 'loss_mask', dtype: 'float32', shape: ['batch', 'sequence'] },
] as const;

/** Completion tokens the whole update scores (N above), fed to every micro-batch's gradient. */
const TOKEN_COUNT = 'token_count';
const GRAD = 'grad';

/** Summed -log p(label) over the positions the loss mask keeps, and the count of those positions. */
export function completionNll(model: Gpt2LMHeadModel, b: Record<string, Value>): { nllSum: Value; tokens: Value } {
  const { logits } = model.forward({ ids: b.input_ids, attentionMask: b.attention_mask });
  const nll = neg(categoricalLogProb(logits, b.labels));
  const mask = cast(b.loss_mask, nll.dtype);
  return { nllSum: reduceSum(mul(nll, mask)), tokens: reduceSum(mask) };
}

/**
 * Parameters as views of one flat input, in ParamLayout's order (the same layout packages/graph's
 * train and forward programs use, so flat vectors move between them). The views are the autodiff
 * leaves.
 */
function flatViews(g: Graph, flat: Value, layout: ParamLayout): { scope: ParamScope; views: Value[] } {
  const sizes = layout.entries.map((e) => e.size);
  const pieces = g.node(
    'Split',
    [flat, g.ints(sizes)],
    { axis: 0 },
    sizes.map((n) => ({ dtype: 'float32', shape: [n] })),
  );
  const views = layout.entries.map((e, i) => reshape(pieces[i], e.shape));
  const byName = new Map(layout.entries.map((e, i) => [e.name, views[i]]));
  const scope: ParamScope = {
    dtype: 'float32',
    get(name) {
      const v = byName.get(name);
      if (!v) throw new Error(`sft: unknown parameter ${name}`);
      return v;
    },
  };
  return { scope, views };
}

/** The gradient program: dropout on (train mode), outputs the flat gradient and this micro-batch's share of the loss. */
export function buildSftGradProgram(model: Gpt2LMHeadModel): { onnx: Uint8Array; layout: ParamLayout } {
  const layout = new ParamLayout(model);
  const g = new Graph('sft_gradient');
  const flat = g.input(TRAIN_IO.params, 'float32', [layout.total]);
  const { scope, views } = flatViews(g, flat, layout);
  model.train(true).bind(scope);
  const b = Object.fromEntries(SFT_BATCH_INPUTS.map((i) => [i.name, g.input(i.name, i.dtype, i.shape)]));
  const n = g.input(TOKEN_COUNT, 'float32', []);
  const { nllSum, tokens } = completionNll(model, b);
  const loss = div(nllSum, n);
  const grads = gradients(loss, views);
  g.output(
    GRAD,
    concat(
      grads.map((d, i) => reshape(d, [layout.entries[i].size])),
      0,
    ),
  );
  g.output('loss', loss);
  g.output('nll_sum', nllSum);
  g.output('tokens', tokens);
  return { onnx: g.toOnnx(), layout };
}

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 0: no clipping. */
  maxGradNorm: number;
}

/** 1 for the parameters weight decay applies to (rank >= 2: matrices and embeddings), 0 for the rest. */
export function decayMask(layout: ParamLayout): Float32Array {
  const mask = new Float32Array(layout.total);
  for (const e of layout.entries) if (e.shape.length >= 2) mask.fill(1, e.offset, e.offset + e.size);
  return mask;
}

/** The update program: AdamW with the decay masked as above, on the clipped summed gradient. */
export function buildSftUpdateProgram(layout: ParamLayout, c: AdamWConfig): Uint8Array {
  const g = new Graph('sft_update');
  const P = layout.total;
  const params = g.input(TRAIN_IO.params, 'float32', [P]);
  const grad = g.input(GRAD, 'float32', [P]);
  const state = {
    exp_avg: g.input(TRAIN_IO.state('exp_avg'), 'float32', [P]),
    exp_avg_sq: g.input(TRAIN_IO.state('exp_avg_sq'), 'float32', [P]),
  };
  const step = g.input(TRAIN_IO.step, 'float32', []);
  const lr = g.input(TRAIN_IO.lr, 'float32', []);
  // torch's AdamW decays first (p *= 1 - lr * wd), then takes the Adam step; here only where the mask is 1.
  const decayed =
    c.weightDecay > 0
      ? mul(params, sub(1, mul(mul(lr, c.weightDecay), g.constant({ dtype: 'float32', shape: [P], data: decayMask(layout) }))))
      : params;
  const out = emitUpdate(
    {
      kind: 'adamw',
      beta1: c.beta1,
      beta2: c.beta2,
      eps: c.eps,
      weightDecay: 0,
      maxGradNorm: c.maxGradNorm > 0 ? c.maxGradNorm : undefined,
    },
    { params: decayed, grad, state, step, lr },
  );
  g.output(TRAIN_IO.next(TRAIN_IO.params), out.params);
  g.output(TRAIN_IO.next(TRAIN_IO.state('exp_avg')), out.state.exp_avg);
  g.output(TRAIN_IO.next(TRAIN_IO.state('exp_avg_sq')), out.state.exp_avg_sq);
  g.output('grad_norm', out.gradNorm);
  return g.toOnnx();
}

/** What an SFT trainer carries between updates (and a checkpoint holds). */
export interface SftTrainerState {
  params: Float32Array;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** Updates taken. */
  step: number;
}

export interface AccumulatedGradient {
  grad: Float32Array;
  /** The update's loss: summed completion NLL over its N completion tokens. */
  loss: number;
  tokens: number;
  rows: number;
}

/** Runs the two programs: gradients of k micro-batches summed, then one AdamW update. */
export class SftTrainer {
  private constructor(
    readonly layout: ParamLayout,
    private readonly gradSession: Session,
    private readonly updateSession: Session,
    private current: SftTrainerState,
  ) {}

  static async create(
    model: Gpt2LMHeadModel,
    params: ReadonlyMap<string, Float32Array>,
    adamw: AdamWConfig,
    threads = 1,
  ): Promise<SftTrainer> {
    const { onnx, layout } = buildSftGradProgram(model);
    const opts = { intraOpThreads: threads };
    const gradSession = await Session.create(onnx, opts);
    const updateSession = await Session.create(buildSftUpdateProgram(layout, adamw), opts);
    const P = layout.total;
    return new SftTrainer(layout, gradSession, updateSession, {
      params: layout.pack(params),
      expAvg: new Float32Array(P),
      expAvgSq: new Float32Array(P),
      step: 0,
    });
  }

  get stepCount(): number {
    return this.current.step;
  }

  parameters(): Map<string, Float32Array> {
    return this.layout.unpack(this.current.params);
  }

  snapshot(): SftTrainerState {
    const c = this.current;
    return { params: c.params.slice(), expAvg: c.expAvg.slice(), expAvgSq: c.expAvgSq.slice(), step: c.step };
  }

  restore(s: SftTrainerState): void {
    const P = this.layout.total;
    for (const [k, v] of [
      ['params', s.params],
      ['exp_avg', s.expAvg],
      ['exp_avg_sq', s.expAvgSq],
    ] as const)
      if (v.length !== P) throw new Error(`sft restore: ${k} has ${v.length} values, the model has ${P} parameters`);
    this.current = { params: s.params.slice(), expAvg: s.expAvg.slice(), expAvgSq: s.expAvgSq.slice(), step: s.step };
  }

  /** The summed gradient of the micro-batches, each normalised by their total completion tokens. */
  async gradient(micro: readonly SftBatch[]): Promise<AccumulatedGradient> {
    const N = micro.reduce((n, b) => n + b.tokens, 0);
    if (N === 0) throw new Error('sft: an update with no completion tokens');
    const P = this.layout.total;
    const grad = new Float32Array(P);
    let loss = 0;
    for (const b of micro) {
      const out = await this.gradSession.run(
        {
          ...b.feeds,
          [TRAIN_IO.params]: { data: this.current.params, shape: [P] },
          [TOKEN_COUNT]: { data: Float32Array.of(N), shape: [] },
        },
        [GRAD, 'loss'],
      );
      const g = out[GRAD].data as Float32Array;
      for (let i = 0; i < P; i++) grad[i] += g[i];
      loss += Number(out.loss.data[0]);
    }
    return { grad, loss, tokens: N, rows: micro.reduce((n, b) => n + b.rows, 0) };
  }

  /** One update from k micro-batches at learning rate `lr`; returns its logged metrics. */
  async step(micro: readonly SftBatch[], lr: number): Promise<Record<string, number>> {
    const acc = await this.gradient(micro);
    const P = this.layout.total;
    const c = this.current;
    const feeds: Record<string, HostTensor> = {
      [TRAIN_IO.params]: { data: c.params, shape: [P] },
      [GRAD]: { data: acc.grad, shape: [P] },
      [TRAIN_IO.state('exp_avg')]: { data: c.expAvg, shape: [P] },
      [TRAIN_IO.state('exp_avg_sq')]: { data: c.expAvgSq, shape: [P] },
      [TRAIN_IO.step]: { data: Float32Array.of(c.step + 1), shape: [] },
      [TRAIN_IO.lr]: { data: Float32Array.of(lr), shape: [] },
    };
    const out = await this.updateSession.run(feeds);
    this.current = {
      params: out[TRAIN_IO.next(TRAIN_IO.params)].data as Float32Array,
      expAvg: out[TRAIN_IO.next(TRAIN_IO.state('exp_avg'))].data as Float32Array,
      expAvgSq: out[TRAIN_IO.next(TRAIN_IO.state('exp_avg_sq'))].data as Float32Array,
      step: c.step + 1,
    };
    return {
      loss: acc.loss,
      completion_nll: acc.loss,
      grad_norm: Number(out.grad_norm.data[0]),
      lr,
      tokens: acc.tokens,
      sequences: acc.rows,
    };
  }

  async release(): Promise<void> {
    await this.gradSession.release();
    await this.updateSession.release();
  }
}
