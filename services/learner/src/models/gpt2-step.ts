/**
 * What every fine-tuning of a causal LM trains with, whatever its loss (SFT's masked NLL, GRPO's
 * clipped surrogate): two ONNX programs and the state between them.
 *
 *   gradient  (params, micro-batch, extra inputs) -> grad of the loss, the loss and its named sums
 *   update    (params, AdamW state, summed grad, step, lr) -> clipped AdamW update
 *
 * An update sums the gradients of its micro-batches, so a loss whose every term carries the
 * normaliser of the whole update (a token count, a row count) gives exactly the gradient of one
 * batch of the accumulated size. The update is torch.optim.AdamW on the clipped summed gradient
 * (clip_grad_norm_ at max_grad_norm), with decoupled weight decay on weight matrices and embeddings
 * only (rank >= 2), not on biases or LayerNorm parameters, as Hugging Face's Trainer and nanoGPT do.
 */
import {
  categoricalLogProb,
  concat,
  emitUpdate,
  Graph,
  gradients,
  type HostTensor,
  type InputSpec,
  mul,
  ParamLayout,
  type ParamScope,
  reshape,
  Session,
  sub,
  TRAIN_IO,
  type Value,
} from '@rlmesh/graph';
import type { CausalLm } from './causal-lm';

/** The batch every token-level loss reads: ids, attention mask and next-token labels [B, T] (sft/data.ts collate builds them). */
export const LM_BATCH_INPUTS = [
  { name: 'input_ids', dtype: 'int64', shape: ['batch', 'sequence'] },
  { name: 'attention_mask', dtype: 'int64', shape: ['batch', 'sequence'] },
  { name: 'labels', dtype: 'int64', shape: ['batch', 'sequence'] },
] as const;

const GRAD = 'grad';

/**
 * log p(labels[t] | ids[..t]) at every position [B, T], the logits [B, T, V] and, with a value head,
 * the value at every position [B, T]: the one place both SFT's NLL and the RL losses take token
 * log-probs from, so they score tokens identically.
 */
export function tokenLogProbs(model: CausalLm, b: Record<string, Value>): { logProbs: Value; logits: Value; value?: Value } {
  const { logits, value } = model.forward({ ids: b.input_ids, attentionMask: b.attention_mask });
  return { logProbs: categoricalLogProb(logits, b.labels), logits, value };
}

/**
 * Parameters as views of one flat input, in ParamLayout's order (the layout packages/graph's train
 * and forward programs use, so flat vectors move between them). The views are the autodiff leaves.
 */
function flatViews(g: Graph, flat: Value, layout: ParamLayout): { scope: ParamScope; views: Value[] } {
  if (layout.total === 0) return { scope: { dtype: 'float32', get: (n) => unknownParameter(n) }, views: [] };
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
      return byName.get(name) ?? unknownParameter(name);
    },
  };
  return { scope, views };
}

function unknownParameter(name: string): never {
  throw new Error(`gradient program: unknown parameter ${name}`);
}

/** A gradient program: its trained parameters' layout, the frozen ones' (an input `frozen`), its named sums. */
export interface GradientProgram {
  onnx: Uint8Array;
  layout: ParamLayout;
  frozenLayout?: ParamLayout;
  sums: string[];
}

/** A traced loss: the scalar differentiated, and named scalars reported beside it (summed over micro-batches). */
export interface TracedLoss {
  loss: Value;
  sums?: Record<string, Value>;
}

/**
 * The gradient program of `lossOf` over the LM batch plus `inputs`: dropout on (train mode); outputs
 * the flat gradient, `loss` and every named sum. Parameters `frozen` names (LoRA's base weights) come
 * from a second flat input `frozen` and get no gradient.
 */
export function buildGradientProgram(
  model: CausalLm,
  name: string,
  inputs: readonly InputSpec[],
  lossOf: (b: Record<string, Value>) => TracedLoss,
  frozen?: (name: string) => boolean,
): GradientProgram {
  const layout = new ParamLayout(model, (n) => !frozen?.(n));
  const frozenLayout = frozen ? new ParamLayout(model, frozen) : undefined;
  const g = new Graph(name);
  const flat = g.input(TRAIN_IO.params, 'float32', [layout.total]);
  const { scope, views } = flatViews(g, flat, layout);
  const fixed = frozenLayout && frozen ? flatViews(g, g.input(TRAIN_IO.frozen, 'float32', [frozenLayout.total]), frozenLayout).scope : null;
  model.train(true).bind(fixed && frozen ? { dtype: 'float32', get: (n) => (frozen(n) ? fixed.get(n) : scope.get(n)) } : scope);
  const b = Object.fromEntries([...LM_BATCH_INPUTS, ...inputs].map((i) => [i.name, g.input(i.name, i.dtype, i.shape)]));
  const { loss, sums = {} } = lossOf(b);
  const grads = gradients(loss, views);
  g.output(
    GRAD,
    concat(
      grads.map((d, i) => reshape(d, [layout.entries[i].size])),
      0,
    ),
  );
  g.output('loss', loss);
  for (const [k, v] of Object.entries(sums)) g.output(k, v);
  return { onnx: g.toOnnx(), layout, frozenLayout, sums: Object.keys(sums) };
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
export function buildAdamWProgram(layout: ParamLayout, c: AdamWConfig): Uint8Array {
  const g = new Graph('adamw_update');
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

/** What a trainer carries between updates (and a checkpoint holds). */
export interface GradientTrainerState {
  params: Float32Array;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  /** Optimizer updates taken. */
  step: number;
}

export interface SummedGradient {
  grad: Float32Array;
  /** `loss` and every named sum of the program, summed over the micro-batches. */
  sums: Record<string, number>;
}

/** Runs a gradient program over micro-batches and AdamW on their summed gradient. */
export class GradientTrainer {
  private constructor(
    readonly layout: ParamLayout,
    private readonly gradSession: Session,
    private readonly updateSession: Session,
    private readonly sumNames: readonly string[],
    private current: GradientTrainerState,
    /** The frozen parameters (by name and flat), fed unchanged to every gradient run. */
    private readonly frozen: { layout: ParamLayout; flat: Float32Array } | null,
  ) {}

  /** `params` holds every parameter by name, the frozen ones included. */
  static async create(
    program: GradientProgram,
    params: ReadonlyMap<string, Float32Array>,
    adamw: AdamWConfig,
    threads = 1,
  ): Promise<GradientTrainer> {
    const opts = { intraOpThreads: threads };
    const gradSession = await Session.create(program.onnx, opts);
    const updateSession = await Session.create(buildAdamWProgram(program.layout, adamw), opts);
    const P = program.layout.total;
    return new GradientTrainer(
      program.layout,
      gradSession,
      updateSession,
      ['loss', ...program.sums],
      {
        params: program.layout.pack(params),
        expAvg: new Float32Array(P),
        expAvgSq: new Float32Array(P),
        step: 0,
      },
      program.frozenLayout ? { layout: program.frozenLayout, flat: program.frozenLayout.pack(params) } : null,
    );
  }

  get stepCount(): number {
    return this.current.step;
  }

  /** The current flat parameters (state_dict order); not a copy. */
  get flatParams(): Float32Array {
    return this.current.params;
  }

  /** Every parameter by name: the trained ones' current values and the frozen ones. */
  parameters(): Map<string, Float32Array> {
    const trained = this.layout.unpack(this.current.params);
    return this.frozen ? new Map([...this.frozen.layout.unpack(this.frozen.flat), ...trained]) : trained;
  }

  snapshot(): GradientTrainerState {
    const c = this.current;
    return { params: c.params.slice(), expAvg: c.expAvg.slice(), expAvgSq: c.expAvgSq.slice(), step: c.step };
  }

  restore(s: GradientTrainerState): void {
    const P = this.layout.total;
    for (const [k, v] of [
      ['params', s.params],
      ['exp_avg', s.expAvg],
      ['exp_avg_sq', s.expAvgSq],
    ] as const)
      if (v.length !== P) throw new Error(`restore: ${k} has ${v.length} values, the model has ${P} parameters`);
    this.current = { params: s.params.slice(), expAvg: s.expAvg.slice(), expAvgSq: s.expAvgSq.slice(), step: s.step };
  }

  /** The summed gradient and sums of the micro-batches at the current parameters. */
  async gradient(micro: readonly Record<string, HostTensor>[]): Promise<SummedGradient> {
    const P = this.layout.total;
    const grad = new Float32Array(P);
    const sums = Object.fromEntries(this.sumNames.map((k) => [k, 0]));
    for (const feeds of micro) {
      const frozen = this.frozen ? { [TRAIN_IO.frozen]: { data: this.frozen.flat, shape: [this.frozen.flat.length] } } : {};
      const out = await this.gradSession.run({ ...feeds, ...frozen, [TRAIN_IO.params]: { data: this.current.params, shape: [P] } }, [
        GRAD,
        ...this.sumNames,
      ]);
      const g = out[GRAD].data as Float32Array;
      for (let i = 0; i < P; i++) grad[i] += g[i];
      for (const k of this.sumNames) sums[k] += Number(out[k].data[0]);
    }
    return { grad, sums };
  }

  /** One AdamW update with `grad` at learning rate `lr`; returns the gradient's norm before clipping. */
  async apply(grad: Float32Array, lr: number): Promise<number> {
    const P = this.layout.total;
    const c = this.current;
    const out = await this.updateSession.run({
      [TRAIN_IO.params]: { data: c.params, shape: [P] },
      [GRAD]: { data: grad, shape: [P] },
      [TRAIN_IO.state('exp_avg')]: { data: c.expAvg, shape: [P] },
      [TRAIN_IO.state('exp_avg_sq')]: { data: c.expAvgSq, shape: [P] },
      [TRAIN_IO.step]: { data: Float32Array.of(c.step + 1), shape: [] },
      [TRAIN_IO.lr]: { data: Float32Array.of(lr), shape: [] },
    });
    this.current = {
      params: out[TRAIN_IO.next(TRAIN_IO.params)].data as Float32Array,
      expAvg: out[TRAIN_IO.next(TRAIN_IO.state('exp_avg'))].data as Float32Array,
      expAvgSq: out[TRAIN_IO.next(TRAIN_IO.state('exp_avg_sq'))].data as Float32Array,
      step: c.step + 1,
    };
    return Number(out.grad_norm.data[0]);
  }

  async release(): Promise<void> {
    await this.gradSession.release();
    await this.updateSession.release();
  }
}
