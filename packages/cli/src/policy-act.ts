/**
 * `rlmesh policy act`: loads a trained policy from its model.safetensors (the run config travels in
 * the file's metadata), rebuilds the registered model for the run's environment, and prints for
 * each observation row the distribution's outputs, the value, and the chosen action (the mode with
 * --greedy, else a sample).
 */
import { actRng, ConfigError, sampleActions } from '@rlmesh/core';
import { buildActProgram, loadPolicyFile, type PolicyFile } from '@rlmesh/learner';
import { ActProgram } from '@rlmesh/mesh';
import { parseArgs, UsageError } from './args';

export async function policyAct(argv: readonly string[]): Promise<number> {
  const { options } = parseArgs(argv, ['greedy']);
  if (!options.checkpoint) throw new UsageError('policy act needs --checkpoint <file>');
  if (!options.obs) throw new UsageError('policy act needs --obs <json>');
  let file: PolicyFile;
  try {
    file = await loadPolicyFile(options.checkpoint);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new UsageError(`--checkpoint: ${(e as Error).message}`);
  }
  const { cfg, shape, model, params } = file;
  const rows = parseObs(options.obs);
  const S = model.obsDim;
  if (rows.some((r) => r.length !== S)) throw new UsageError(`--obs: every row needs ${S} values for ${cfg.env.id}`);
  const act = buildActProgram(model);
  const program = await ActProgram.create(act.onnx, shape.distribution);
  const outputs = await program.outputs(act.layout.pack(params), Float32Array.from(rows.flat()), rows.length);
  await program.release();
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
