/**
 * `rlmesh policy act`: loads a trained policy from its model.safetensors (the run config travels in
 * the file's metadata), rebuilds the registered model for the run's environment, and prints for
 * each observation row the distribution's outputs, the value, and the chosen action (the mode with
 * --greedy, else a sample).
 */
import { actRng, sampleActions } from '@rlmesh/core';
import { buildInferenceProgram, loadSafetensors, loadWeights, Session } from '@rlmesh/graph';
import { actOutputs, buildModel, envShape, parseRunConfig } from '@rlmesh/learner';
import { parseArgs, UsageError } from './args';

export async function policyAct(argv: readonly string[]): Promise<number> {
  const { options } = parseArgs(argv, ['greedy']);
  if (!options.checkpoint) throw new UsageError('policy act needs --checkpoint <file>');
  if (!options.obs) throw new UsageError('policy act needs --obs <json>');
  let meta: Record<string, string>;
  try {
    meta = (await loadSafetensors(options.checkpoint)).metadata;
  } catch (e) {
    throw new UsageError(`cannot read checkpoint ${options.checkpoint}: ${(e as Error).message}`);
  }
  if (!meta.config) throw new UsageError(`${options.checkpoint} carries no run config in its metadata`);
  const cfg = parseRunConfig(JSON.parse(meta.config));
  const shape = envShape(cfg);
  const model = buildModel(cfg, shape);
  const rows = parseObs(options.obs);
  const S = model.obsDim;
  if (rows.some((r) => r.length !== S)) throw new UsageError(`--obs: every row needs ${S} values for ${cfg.env.id}`);
  let params: Map<string, Float32Array>;
  try {
    params = (await loadWeights(options.checkpoint, model.module)).params;
  } catch (e) {
    throw new UsageError(`--checkpoint does not fit its config: ${(e as Error).message}`);
  }
  const onnx = buildInferenceProgram({
    module: model.module,
    params,
    inputs: [{ name: 'obs', dtype: 'float32', shape: ['batch', S] }],
    forward: (i) => actOutputs(model, i.obs),
  });
  const session = await Session.create(onnx);
  const out = await session.run({ obs: { data: Float32Array.from(rows.flat()), shape: [rows.length, S] } });
  await session.release();
  const outputs = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  const { actions, logProbs } = sampleActions(
    shape.distribution,
    outputs,
    0,
    rows.length,
    options.greedy === 'true',
    actRng(Date.now() % 2 ** 31),
  );
  const width = actions.length / rows.length;
  rows.forEach((_, r) => {
    const row: Record<string, unknown> = { action: width === 1 ? actions[r] : Array.from(actions.subarray(r * width, (r + 1) * width)) };
    row.log_prob = logProbs[r];
    for (const [k, v] of Object.entries(outputs)) {
      if (k === 'value') {
        row.value = v[r];
        continue;
      }
      const w = v.length / rows.length;
      row[k === 'log_probs' ? 'probs' : k] = Array.from(v.subarray(r * w, (r + 1) * w), (x) => (k === 'log_probs' ? Math.exp(x) : x));
    }
    console.log(JSON.stringify(row));
  });
  return 0;
}

function parseObs(text: string): number[][] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UsageError('--obs must be JSON: a list of rows, e.g. [[0,1,0]]');
  }
  const rows = Array.isArray(v) && !Array.isArray(v[0]) ? [v] : v;
  if (
    !Array.isArray(rows) ||
    rows.length === 0 ||
    !rows.every((r) => Array.isArray(r) && r.every((x) => typeof x === 'number' && Number.isFinite(x)))
  )
    throw new UsageError('--obs must be a non-empty list of rows of finite numbers');
  return rows as number[][];
}
