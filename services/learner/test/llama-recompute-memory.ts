/**
 * Not a test (vitest runs *.test.ts only): a measurement script, kept beside the tests so it is type-checked.
 * Peak memory of a Llama train step with and without activation recomputation per decoder layer.
 * Each variant runs in its own process (peak RSS, VmHWM, is per process):
 *
 *   npx tsx services/learner/test/llama-recompute-memory.ts            # both, a JSON line each (after npx tsc -b)
 *   npx tsx services/learner/test/llama-recompute-memory.ts recompute  # one variant
 *
 * The model: hidden 256, 8 layers, 8 heads / 4 kv heads, MLP 688, vocabulary 1024; a batch of 4
 * sequences of 512 tokens; next-token cross-entropy, Adam. Two steps, the second timed.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { buildTrainProgram, crossEntropy, initParameters, Rng, Trainer } from '@rlmesh/graph';
import { LLAMA_DEFAULTS, LlamaForCausalLM } from '../src/models/llama';

const [B, T] = [4, 512];
const peakRssMb = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;

async function run(checkpointed: boolean) {
  const model = new LlamaForCausalLM({
    ...LLAMA_DEFAULTS,
    vocab_size: 1024,
    hidden_size: 256,
    intermediate_size: 688,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    max_position_embeddings: T,
  });
  model.gradientCheckpointing = checkpointed;
  const program = buildTrainProgram({
    module: model,
    batch: [
      { name: 'ids', dtype: 'int64', shape: ['batch', 'sequence'] },
      { name: 'labels', dtype: 'int64', shape: ['batch', 'sequence'] },
    ],
    optimizer: { kind: 'adam' },
    loss: (b) => ({ loss: crossEntropy(model.forward({ ids: b.ids }).logits, b.labels) }),
  });
  const trainer = await Trainer.create(program, initParameters(model, new Rng(0)), { intraOpThreads: 2 });
  const rng = new Rng(1);
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(1024)));
  const labels = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(1024)));
  const batch = { ids: { data: ids, shape: [B, T] }, labels: { data: labels, shape: [B, T] } };
  const before = peakRssMb();
  const first = await trainer.step(batch, 1e-3);
  const t0 = performance.now();
  await trainer.step(batch, 1e-3);
  const stepS = (performance.now() - t0) / 1000;
  console.log(
    JSON.stringify({
      checkpointed,
      parameters: model.parameterCount(),
      loss: first.loss,
      peak_rss_mb: Math.round(peakRssMb()),
      rss_before_steps_mb: Math.round(before),
      step_s: Number(stepS.toFixed(2)),
    }),
  );
  await trainer.release();
}

const which = process.argv[2];
if (which === 'plain' || which === 'recompute') void run(which === 'recompute');
else
  for (const v of ['plain', 'recompute']) {
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1], v], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    process.stdout.write(r.stdout);
  }
