/**
 * Policies whose quality is known in advance, for the evaluator tests: the learner's own
 * mlp_actor_critic model for PatternEcho (observation: the one-hot symbol t; correct action: t),
 * built and exported exactly as a run builds it, with its actor set by hand so that symbol t maps to
 * action perm[t]. The identity permutation is perfect (success 1), a shift never succeeds (success 0),
 * and a mix succeeds on the symbols it maps to themselves. Published under the standard object names
 * (as the learner publishes), or saved as a model.safetensors file (as a finished run writes it).
 */
import { saveWeights } from '@rlmesh/graph';
import { buildActProgram, buildModel, envShape, parseRunConfig, type RunConfig } from '@rlmesh/learner';
import { type Bus, publishPolicy, spaceToProto } from '@rlmesh/mesh';

export const SYMBOLS = 4;
export const identity = (n = SYMBOLS) => Array.from({ length: n }, (_, i) => i);
export const shift = (n = SYMBOLS) => Array.from({ length: n }, (_, i) => (i + 1) % n);
/** Right on the first half of the symbols, wrong on the rest. */
export const half = (n = SYMBOLS) => Array.from({ length: n }, (_, i) => (i < n / 2 ? i : (i + 1) % n));

export function echoConfig(symbols = SYMBOLS, extra: Record<string, unknown> = {}): RunConfig {
  return parseRunConfig({
    run: { name: 'echo' },
    env: { id: 'PatternEcho', options: { num_symbols: symbols } },
    model: { id: 'mlp_actor_critic', hidden_dim: symbols, num_layers: 1 },
    algo: { name: 'ppo' },
    ...extra,
  });
}

export function echoModel(symbols = SYMBOLS) {
  const cfg = echoConfig(symbols);
  const shape = envShape(cfg);
  const model = buildModel(cfg, shape);
  const act = buildActProgram(model);
  /** Parameters by name: hidden layer the identity (tanh keeps the one-hot's argmax), output layer 10 * permutation. */
  const named = (perm: number[]): Map<string, Float32Array> => {
    const out = new Map<string, Float32Array>();
    for (const p of model.module.namedParameters()) {
      const data = new Float32Array(p.shape.reduce((a, b) => a * b, 1));
      if (p.name === 'actor.0.weight') for (let i = 0; i < symbols; i++) data[i * symbols + i] = 1;
      // Row = action, column = hidden unit (the symbol shown): action perm[t] gets the logit of symbol t.
      if (p.name === 'actor.2.weight') for (let t = 0; t < symbols; t++) data[perm[t] * symbols + t] = 10;
      out.set(p.name, data);
    }
    if (!out.has('actor.0.weight') || !out.has('actor.2.weight')) throw new Error('mlp_actor_critic changed its parameter names');
    return out;
  };
  const flat = (perm: number[]): Float32Array => {
    const params = named(perm);
    const v = new Float32Array(act.layout.total);
    for (const e of act.layout.entries) v.set(params.get(e.name) as Float32Array, e.offset);
    return v;
  };
  const spec = {
    observationSpace: spaceToProto(shape.observationSpace),
    actionSpace: spaceToProto(shape.actionSpace),
    model: model.name,
    numParameters: model.module.parameterCount(),
  };
  return {
    cfg,
    program: act.onnx,
    flat,
    /** Publishes version `version` of `run` with this permutation, as the learner would. */
    publish: (bus: Bus, run: string, version: number, perm: number[]) =>
      publishPolicy(bus, run, { version, params: flat(perm), program: act.onnx, spec, distribution: shape.distribution.kind }),
    /** Writes a model.safetensors with the run config in its metadata, as a finished run does. */
    save: (path: string, perm: number[]) =>
      saveWeights(path, model.module, named(perm), { config: JSON.stringify(cfg), model: model.name }),
  };
}

/** A PatternEcho suite as YAML text. */
export function echoSuite(opts: { name?: string; symbols?: number; episodes?: number; env?: string } = {}): string {
  return [
    `name: ${opts.name ?? 'echo-suite'}`,
    'mode: greedy',
    'entries:',
    '  - name: echo',
    `    env: { id: ${opts.env ?? 'PatternEcho'}, options: { num_symbols: ${opts.symbols ?? SYMBOLS} } }`,
    `    episodes: ${opts.episodes ?? 40}`,
    '    seed: 100',
    '    split: ID',
  ].join('\n');
}
