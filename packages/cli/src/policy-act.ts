/**
 * `rlmesh policy act`: loads a trained BabyModel from its safetensors (the run config travels in the
 * file's metadata) and prints action probabilities, value and the world model's predicted next state.
 */
import { buildInferenceProgram, loadSafetensors, loadWeights, Session, softmax } from '@rlmesh/graph';
import { BabyModel, parseWmilConfig } from '@rlmesh/learner';
import { parseArgs, UsageError } from './args';

export async function policyAct(argv: readonly string[]): Promise<number> {
  const { options } = parseArgs(argv);
  if (!options.checkpoint) throw new UsageError('policy act needs --checkpoint <file>');
  if (!options.obs) throw new UsageError('policy act needs --obs <json>');
  let meta: Record<string, string>;
  try {
    meta = (await loadSafetensors(options.checkpoint)).metadata;
  } catch (e) {
    throw new UsageError(`cannot read checkpoint ${options.checkpoint}: ${(e as Error).message}`);
  }
  if (!meta.config) throw new UsageError(`${options.checkpoint} carries no run config in its metadata`);
  const cfg = parseWmilConfig(JSON.parse(meta.config));
  const obsRows = parseObs(options.obs);
  const model = new BabyModel({
    stateDim: obsRows[0].length,
    numActions: Number(meta.num_actions ?? cfg.env.num_symbols),
    hiddenDim: cfg.model.hidden_dim,
    numLayers: cfg.model.num_layers,
    numHeads: cfg.model.num_heads,
    ffDim: cfg.model.ff_dim,
    dropout: cfg.model.dropout,
  });
  let params: Map<string, Float32Array>;
  try {
    params = (await loadWeights(options.checkpoint, model)).params;
  } catch (e) {
    throw new UsageError(`--obs does not fit the checkpoint: ${(e as Error).message}`);
  }
  const S = model.config.stateDim;
  const onnx = buildInferenceProgram({
    module: model,
    params,
    inputs: [
      { name: 'obs', dtype: 'float32', shape: ['batch', S] },
      { name: 'action', dtype: 'int64', shape: ['batch'] },
    ],
    forward: (i) => {
      const { logits, value, hidden } = model.forward(i.obs);
      return { probs: softmax(logits, -1), value, next_state: model.predictNext(hidden, i.action) };
    },
  });
  const session = await Session.create(onnx);
  const n = obsRows.length;
  const probsOnly = await session.run({
    obs: { data: Float32Array.from(obsRows.flat()), shape: [n, S] },
    action: { data: new BigInt64Array(n), shape: [n] },
  });
  const probs = probsOnly.probs.data as Float32Array;
  const A = model.config.numActions;
  const chosen = obsRows.map((_, r) => {
    if (options.action !== undefined) {
      const a = Number(options.action);
      if (!Number.isInteger(a) || a < 0 || a >= A)
        throw new UsageError(`--action must be an integer in [0, ${A - 1}], got ${options.action}`);
      return a;
    }
    const row = Array.from(probs.subarray(r * A, (r + 1) * A));
    return row.indexOf(Math.max(...row));
  });
  const out = await session.run({
    obs: { data: Float32Array.from(obsRows.flat()), shape: [n, S] },
    action: { data: BigInt64Array.from(chosen.map(BigInt)), shape: [n] },
  });
  const rows = obsRows.map((_, r) => ({
    action_probs: Array.from(probs.subarray(r * A, (r + 1) * A)).map((p) => Number(p.toFixed(4))),
    value: Number((out.value.data as Float32Array)[r].toFixed(4)),
    action: chosen[r],
    predicted_next_state: Array.from((out.next_state.data as Float32Array).subarray(r * S, (r + 1) * S)).map((x) => Number(x.toFixed(4))),
  }));
  console.log(JSON.stringify(rows, null, 2));
  await session.release();
  return 0;
}

function parseObs(text: string): number[][] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UsageError('--obs must be JSON: a list of numbers or a list of such lists');
  }
  const rows = Array.isArray(v) && v.every((x) => typeof x === 'number') ? [v as number[]] : v;
  if (
    !Array.isArray(rows) ||
    rows.length === 0 ||
    !rows.every((r) => Array.isArray(r) && r.length > 0 && r.every((x) => typeof x === 'number'))
  ) {
    throw new UsageError('--obs must be JSON: a list of numbers or a non-empty list of such lists');
  }
  const width = (rows[0] as number[]).length;
  if (!rows.every((r) => (r as number[]).length === width)) throw new UsageError('--obs rows must all have the same length');
  return rows as number[][];
}
