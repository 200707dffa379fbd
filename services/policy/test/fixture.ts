/**
 * A small real policy for the tests: an MLP trunk with a log-softmax action head and a value head,
 * compiled by @rlmesh/graph into the forward program the learner publishes, plus helpers to publish
 * it on a bus and to run it in-process with onnxruntime as the reference.
 */
import { Box, Discrete, Rng } from '@rlmesh/core';
import { buildForwardProgram, initParameters, Linear, logSoftmax, MLP, Module, Session, squeeze, type Value } from '@rlmesh/graph';
import type { Bus } from '@rlmesh/mesh';
import { publishPolicy, spaceToProto } from '@rlmesh/mesh';
import type { PolicySpec } from '@rlmesh/proto';

export class TinyPolicy extends Module {
  private readonly trunk: MLP;
  private readonly pi: Linear;
  private readonly v: Linear;

  constructor(
    readonly obsDim: number,
    readonly numActions: number,
    hidden: number[] = [32],
  ) {
    super();
    this.trunk = this.child('trunk', new MLP([obsDim, ...hidden]));
    this.pi = this.child('pi', new Linear(hidden[hidden.length - 1], numActions));
    this.v = this.child('v', new Linear(hidden[hidden.length - 1], 1));
  }

  forward(obs: Value): { log_probs: Value; value: Value } {
    const h = this.trunk.forward(obs);
    return { log_probs: logSoftmax(this.pi.forward(h)), value: squeeze(this.v.forward(h), [1]) };
  }
}

export interface Compiled {
  onnx: Uint8Array;
  /** Flat parameters drawn with `seed`. */
  params: (seed: number) => Float32Array;
  obsDim: number;
  numActions: number;
  numParameters: number;
}

export function compile(obsDim = 6, numActions = 5, hidden: number[] = [32]): Compiled {
  const model = new TinyPolicy(obsDim, numActions, hidden);
  const { onnx, layout } = buildForwardProgram({
    module: model,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', obsDim] }],
    forward: (i) => model.forward(i.obs),
  });
  return {
    onnx,
    params: (seed) => layout.pack(initParameters(model, new Rng(seed))),
    obsDim,
    numActions,
    numParameters: layout.total,
  };
}

/** The PolicySpec of `c`: a Box observation of obsDim, a Discrete action space of numActions. */
export function specOf(c: Pick<Compiled, 'obsDim' | 'numActions'>, numParameters = 0): PolicySpec {
  return {
    observationSpace: spaceToProto(new Box(-1, 1, [c.obsDim])),
    actionSpace: spaceToProto(new Discrete(c.numActions)),
    model: 'TinyPolicy',
    numParameters,
  };
}

/** Publishes version `version` of `c` for `run`, the program only with the first version. */
export function publish(bus: Bus, run: string, c: Compiled, version: number, params: Float32Array) {
  return publishPolicy(bus, run, {
    version,
    params,
    program: version === 1 ? c.onnx : undefined,
    spec: specOf(c, c.numParameters),
    distribution: 'categorical',
  });
}

/** The reference: the same program run directly, in this thread. */
export async function reference(c: Compiled, params: Float32Array, obs: Float32Array, rows: number) {
  const s = await Session.create(c.onnx, { intraOpThreads: 1 });
  try {
    const out = await s.run({ params: { data: params, shape: [params.length] }, obs: { data: obs, shape: [rows, c.obsDim] } });
    return { logProbs: out.log_probs.data as Float32Array, value: out.value.data as Float32Array };
  } finally {
    await s.release();
  }
}

/** Deterministic observations in [-1, 1). */
export function observations(rows: number, dim: number, seed = 7): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * dim }, () => rng.uniformRange(-1, 1));
}

export const quietLogger = { debug() {}, info() {}, warn() {}, error() {} };
