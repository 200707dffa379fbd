/**
 * One model definition, two ONNX programs:
 *  - inference: the forward pass with the weights baked in as initializers (what policy serves);
 *  - train step: (params, optimiser state, step, lr, batch) -> (new params, new state, metrics).
 * In the train step all parameters travel as one flat vector, so feeding and fetching them costs one
 * tensor each, and the optimiser runs as a few large element-wise ops.
 */
import { gradients } from './autodiff';
import { type Dim, type DType, Graph, type Value } from './graph';
import type { Module, ParamScope } from './module';
import { cast } from './ops/elementwise';
import { concat, reshape } from './ops/shape';
import { emitUpdate, type OptimizerConfig, optimizerStateNames } from './optim';

export interface InputSpec {
  name: string;
  dtype: DType;
  shape: readonly Dim[];
}

export interface ParamEntry {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/** Where each named parameter lives in the flat parameter vector (state_dict order). */
export class ParamLayout {
  readonly entries: ParamEntry[];
  readonly total: number;

  /** `include` keeps some parameters (a train step's trainable ones, or its frozen ones). */
  constructor(module: Module, include: (name: string) => boolean = () => true) {
    let offset = 0;
    this.entries = module
      .namedParameters()
      .filter((p) => include(p.name))
      .map((p) => {
        const size = p.shape.reduce((a, b) => a * b, 1);
        const e = { name: p.name, shape: p.shape, offset, size };
        offset += size;
        return e;
      });
    this.total = offset;
  }

  pack(values: ReadonlyMap<string, Float32Array>): Float32Array {
    const flat = new Float32Array(this.total);
    for (const e of this.entries) {
      const v = values.get(e.name);
      if (!v) throw new Error(`pack: missing parameter ${e.name}`);
      if (v.length !== e.size) throw new Error(`pack: ${e.name} has ${v.length} values, layout expects ${e.size}`);
      flat.set(v, e.offset);
    }
    return flat;
  }

  /** Copies each parameter out of the flat vector. */
  unpack(flat: Float32Array): Map<string, Float32Array> {
    if (flat.length !== this.total) throw new Error(`unpack: flat vector has ${flat.length} values, layout expects ${this.total}`);
    return new Map(this.entries.map((e) => [e.name, flat.slice(e.offset, e.offset + e.size)]));
  }
}

export type Forward = (inputs: Record<string, Value>, g: Graph) => Record<string, Value>;

export interface InferenceProgramSpec {
  module: Module;
  params: ReadonlyMap<string, Float32Array>;
  inputs: readonly InputSpec[];
  forward: Forward;
  name?: string;
}

/** The forward pass as an ONNX model, parameters as initializers under their PyTorch names. */
export function buildInferenceProgram(spec: InferenceProgramSpec): Uint8Array {
  const g = new Graph(spec.name ?? 'inference');
  const bound = new Map<string, Value>();
  const scope: ParamScope = {
    dtype: 'float32',
    get(name) {
      let v = bound.get(name);
      if (!v) {
        const data = spec.params.get(name);
        const entry = spec.module.namedParameters().find((p) => p.name === name);
        if (!data || !entry) throw new Error(`inference program: no value for parameter ${name}`);
        v = g.initializer(name, { dtype: 'float32', shape: entry.shape, data });
        bound.set(name, v);
      }
      return v;
    },
  };
  spec.module.eval().bind(scope);
  const inputs = Object.fromEntries(spec.inputs.map((i) => [i.name, g.input(i.name, i.dtype, i.shape)]));
  const outputs = spec.forward(inputs, g);
  for (const [name, v] of Object.entries(outputs)) g.output(name, v);
  return g.toOnnx();
}

export interface ForwardProgramSpec extends Omit<InferenceProgramSpec, 'params'> {
  /**
   * Take only the parameters the outputs depend on as `params` (a policy's sampling program then
   * skips a separate critic's weights, which would otherwise be cut out of the flat vector on every
   * call). `pick` takes them out of the module's flat vector.
   */
  usedParametersOnly?: boolean;
}

export interface ForwardProgram {
  onnx: Uint8Array;
  /** The parameters `params` holds: the module's, or with usedParametersOnly those the outputs need. */
  layout: ParamLayout;
  /** The `params` feed from the module's flat vector: the vector itself, a view, or a copy. */
  pick(moduleParams: Float32Array): Float32Array;
}

/**
 * The forward pass with the parameters as a flat `params` input instead of initializers: one
 * compiled session serves every policy version (the learner's current vector is fed in each call).
 */
export function buildForwardProgram(spec: ForwardProgramSpec): ForwardProgram {
  const all = new ParamLayout(spec.module);
  const used = spec.usedParametersOnly ? parametersUsed(spec) : null;
  const layout = used ? new ParamLayout(spec.module, (n) => used.has(n)) : all;
  const g = new Graph(spec.name ?? 'forward');
  const flat = g.input(TRAIN_IO.params, 'float32', [layout.total]);
  // A parameter outside the layout feeds nothing the outputs need: a zero stand-in, pruned on export.
  const absent = (name: string) => {
    const e = all.entries.find((x) => x.name === name);
    if (!e) throw new Error(`${g.name}: unknown parameter ${name}`);
    return g.constant({ dtype: 'float32', shape: e.shape, data: new Float32Array(e.size) });
  };
  spec.module.eval().bind(flatScope(g, flat, layout, 'float32', used ? absent : undefined));
  const inputs = Object.fromEntries(spec.inputs.map((i) => [i.name, g.input(i.name, i.dtype, i.shape)]));
  for (const [name, v] of Object.entries(spec.forward(inputs, g))) g.output(name, v);
  return { onnx: g.toOnnx(), layout, pick: picker(all, layout) };
}

/** The names of the parameters the forward's outputs depend on, from a trial trace. */
function parametersUsed(spec: ForwardProgramSpec): Set<string> {
  const g = new Graph('parameters_used');
  const views = new Map<string, Value>();
  const shapes = new Map(spec.module.namedParameters().map((p) => [p.name, p.shape]));
  spec.module.eval().bind({
    dtype: 'float32',
    get(name) {
      let v = views.get(name);
      if (!v) {
        const shape = shapes.get(name);
        if (!shape) throw new Error(`forward program: unknown parameter ${name}`);
        v = g.input(`parameter:${name}`, 'float32', shape);
        views.set(name, v);
      }
      return v;
    },
  });
  const inputs = Object.fromEntries(spec.inputs.map((i) => [i.name, g.input(i.name, i.dtype, i.shape)]));
  const needed = g.dependencies(Object.values(spec.forward(inputs, g)));
  return new Set([...views].filter(([, v]) => needed.has(v.name)).map(([name]) => name));
}

/** Takes `sub`'s parameters out of a flat vector laid out as `all` (a view when they are contiguous). */
function picker(all: ParamLayout, sub: ParamLayout): (flat: Float32Array) => Float32Array {
  if (sub === all) return (flat) => flat;
  const at = new Map(all.entries.map((e) => [e.name, e.offset]));
  const start = sub.entries.length ? (at.get(sub.entries[0].name) as number) : 0;
  const contiguous = sub.entries.every((e) => at.get(e.name) === start + e.offset);
  if (contiguous) return (flat) => flat.subarray(start, start + sub.total);
  return (flat) => {
    const out = new Float32Array(sub.total);
    for (const e of sub.entries) {
      const from = at.get(e.name) as number;
      out.set(flat.subarray(from, from + e.size), e.offset);
    }
    return out;
  };
}

/**
 * Parameters as views of one flat vector (state_dict order): one Split node cuts out every parameter,
 * then each piece is reshaped. The views are autodiff leaves: gradients are taken with respect to
 * them, never through the Split.
 */
function flatScope(g: Graph, flat: Value, layout: ParamLayout, dtype: 'float32' | 'float64', absent?: (name: string) => Value): ParamScope {
  let views: Map<string, Value> | null = null;
  const cut = () => {
    if (layout.entries.length === 0) return new Map<string, Value>();
    const sizes = layout.entries.map((e) => e.size);
    const pieces = g.node(
      'Split',
      [flat, g.ints(sizes)],
      { axis: 0 },
      sizes.map((n) => ({ dtype, shape: [n] })),
    );
    return new Map(layout.entries.map((e, i) => [e.name, reshape(pieces[i], e.shape)]));
  };
  return {
    dtype,
    get(name) {
      views ??= cut();
      const v = views.get(name);
      if (v) return v;
      if (absent) return absent(name);
      throw new Error(`${g.name}: unknown parameter ${name}`);
    },
  };
}

export interface LossResult {
  loss: Value;
  /** Named scalars to log (each loss term, entropy, ...). `loss` and `grad_norm` are added. */
  metrics?: Record<string, Value>;
}

export interface TrainProgramSpec {
  module: Module;
  batch: readonly InputSpec[];
  loss: (batch: Record<string, Value>, g: Graph) => LossResult;
  optimizer: OptimizerConfig;
  /**
   * Parameters that are inputs of the step but not trained (LoRA's base weights): they come from a
   * second flat input `frozen` (their own state_dict-order layout), get no gradient and no optimiser
   * state, and the step does not output them.
   */
  frozen?: (name: string) => boolean;
  /** float64 for gradient checks; float32 otherwise. */
  dtype?: 'float32' | 'float64';
  name?: string;
}

export interface TrainProgram {
  onnx: Uint8Array;
  /** The trained parameters. */
  layout: ParamLayout;
  /** The frozen parameters fed as `frozen`, when the spec has any. */
  frozenLayout?: ParamLayout;
  stateNames: string[];
  /** The names of the `metrics` output's entries, in order. */
  metricNames: string[];
  dtype: 'float32' | 'float64';
}

/** Input and output names of the train-step program. */
export const TRAIN_IO = {
  params: 'params',
  frozen: 'frozen',
  step: 'step',
  lr: 'lr',
  state: (s: string) => `opt.${s}`,
  next: (s: string) => `${s}.next`,
  /** The scalar metrics as one vector, in TrainProgram.metricNames order. */
  metrics: 'metrics',
};

export function buildTrainProgram(spec: TrainProgramSpec): TrainProgram {
  const dtype = spec.dtype ?? 'float32';
  const isFrozen = spec.frozen ?? (() => false);
  const layout = new ParamLayout(spec.module, (n) => !isFrozen(n));
  if (layout.total === 0) throw new Error('train program: every parameter is frozen; nothing to train');
  const frozenLayout = spec.frozen ? new ParamLayout(spec.module, isFrozen) : undefined;
  const g = new Graph(spec.name ?? 'train_step');
  const flat = g.input(TRAIN_IO.params, dtype, [layout.total]);
  const frozenFlat = frozenLayout ? g.input(TRAIN_IO.frozen, dtype, [frozenLayout.total]) : null;
  const stateNames = optimizerStateNames(spec.optimizer);
  const state = Object.fromEntries(stateNames.map((s) => [s, g.input(TRAIN_IO.state(s), dtype, [layout.total])]));
  const step = g.input(TRAIN_IO.step, dtype, []);
  const lr = g.input(TRAIN_IO.lr, dtype, []);
  const scope = flatScope(g, flat, layout, dtype);
  const frozenScope = frozenLayout && frozenFlat ? flatScope(g, frozenFlat, frozenLayout, dtype) : null;
  spec.module.train(true).bind(frozenScope ? { dtype, get: (n) => (isFrozen(n) ? frozenScope.get(n) : scope.get(n)) } : scope);
  const batch = Object.fromEntries(spec.batch.map((i) => [i.name, g.input(i.name, i.dtype, i.shape)]));
  const { loss, metrics = {} } = spec.loss(batch, g);
  if (loss.rank !== 0) throw new Error(`train program: loss must be a scalar, got ${loss}`);

  // A parameter the loss never touches gets a zero gradient (gradients() fills it in).
  const used = layout.entries.map((e) => scope.get(e.name));
  const grads = gradients(loss, used);
  const flatGrad = concat(
    grads.map((d, i) => reshape(d, [layout.entries[i].size])),
    0,
  );
  const update = emitUpdate(spec.optimizer, { params: flat, grad: flatGrad, state, step, lr });
  g.output(TRAIN_IO.next(TRAIN_IO.params), update.params);
  for (const s of stateNames) g.output(TRAIN_IO.next(TRAIN_IO.state(s)), update.state[s]);
  const allMetrics: Record<string, Value> = { loss, grad_norm: update.gradNorm, ...metrics };
  for (const [m, v] of Object.entries(allMetrics))
    if (v.rank !== 0) throw new Error(`train program: metric ${m} must be a scalar, got ${v}`);
  // One output for all metrics: each output of a run costs a tensor handed back to JS.
  g.output(
    TRAIN_IO.metrics,
    concat(
      Object.values(allMetrics).map((v) => reshape(cast(v, dtype), [1])),
      0,
    ),
  );
  return { onnx: g.toOnnx(), layout, frozenLayout, stateNames, metricNames: Object.keys(allMetrics), dtype };
}
