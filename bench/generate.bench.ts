/**
 * GPT-2 generation (services/learner's Gpt2Generator, the loop the policy service's Generate runs):
 * new tokens per second at batch 1 and batch 16, with the KV cache (prefill, then one decode step
 * per token) and without it (the prefill program over the whole sequence at every step), timed
 * interleaved in the same run; and batch 1 against the memory-bandwidth bound: at batch 1 every
 * decode step reads every weight once, so tokens/s cannot exceed (memory bandwidth) / (weight bytes
 * + KV bytes read per token), with the bandwidth measured here by a large memcpy.
 *
 * Random weights (the cost does not depend on their values); greedy decoding, so both paths emit
 * the same tokens, which is checked. The size is GPT-2 124M unless BENCH_GPT2_LAYERS /
 * BENCH_GPT2_EMBD / BENCH_GPT2_HEADS say otherwise; BENCH_GPT2_NEW sets the new tokens per row
 * (default 16) and BENCH_GPT2_PROMPT the prompt length (default 8).
 */
import { Rng } from '@rlmesh/core';
import { initParameters } from '@rlmesh/graph';
import { GPT2_124M, type Gpt2Config, Gpt2Generator, Gpt2LMHeadModel } from '@rlmesh/learner';
import { type BenchResult, type BenchSettings, median } from './harness';

function log(msg: string): void {
  process.stderr.write(`[bench:generate] ${msg}\n`);
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be an integer >= 1, got ${JSON.stringify(raw)}`);
  return n;
}

/** Copy bandwidth in bytes/s (bytes read + bytes written per second) of a buffer far larger than the caches. */
function memcpyBandwidth(): number {
  const bytes = 256 * 1024 * 1024;
  const src = new Uint8Array(bytes).fill(1);
  const dst = new Uint8Array(bytes);
  dst.set(src); // fault the pages in before timing
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    dst.set(src);
    times.push((performance.now() - t0) / 1000);
  }
  return (2 * bytes) / median(times);
}

export async function runGenerateBenchmarks(s: BenchSettings): Promise<BenchResult[]> {
  const config: Gpt2Config = {
    ...GPT2_124M,
    n_layer: envInt('BENCH_GPT2_LAYERS', GPT2_124M.n_layer),
    n_embd: envInt('BENCH_GPT2_EMBD', GPT2_124M.n_embd),
    n_head: envInt('BENCH_GPT2_HEADS', GPT2_124M.n_head),
    embd_pdrop: 0,
    attn_pdrop: 0,
    resid_pdrop: 0,
  };
  const newTokens = envInt('BENCH_GPT2_NEW', 16);
  const promptLen = envInt('BENCH_GPT2_PROMPT', 8);
  const model = new Gpt2LMHeadModel(config);
  const numParams = model.parameterCount();
  const size = `GPT-2 n_layer ${config.n_layer}, n_embd ${config.n_embd}, n_head ${config.n_head}, vocab ${config.vocab_size} (${(numParams / 1e6).toFixed(1)}M parameters, float32)`;
  log(`${size}: drawing weights and building the prefill and decode programs`);
  const t0 = performance.now();
  const generator = await Gpt2Generator.create(model, initParameters(model, new Rng(1)), { threads: s.threads });
  log(`built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const results: BenchResult[] = [];
  const shape = `prompt ${promptLen} tokens, ${newTokens} new tokens per row, greedy`;
  const perBatch = new Map<number, number>();
  try {
    for (const batch of [1, 16]) {
      const rng = new Rng(batch);
      const rows = Array.from({ length: batch }, () => ({
        prompt: Array.from({ length: promptLen }, () => rng.int(config.vocab_size)),
        maxNewTokens: newTokens,
        temperature: 0,
      }));
      const timed = async (cache: boolean) => {
        const t = performance.now();
        const out = await generator.generate(rows, { cache });
        return { s: (performance.now() - t) / 1000, tokens: out.map((r) => r.tokens) };
      };
      // Warm-up of both paths, and the check that they emit the same tokens.
      const [a, b] = [await timed(true), await timed(false)];
      if (JSON.stringify(a.tokens) !== JSON.stringify(b.tokens)) throw new Error(`batch ${batch}: cached and recomputed tokens differ`);
      const cached: number[] = [];
      const recomputed: number[] = [];
      const repeats = Math.max(1, Math.min(s.repeats, 3));
      for (let r = 0; r < repeats; r++) {
        cached.push((await timed(true)).s);
        recomputed.push((await timed(false)).s);
        log(`batch ${batch} repeat ${r + 1}: cache ${cached[r].toFixed(2)} s, no cache ${recomputed[r].toFixed(2)} s`);
      }
      const tok = batch * newTokens;
      const withCache = tok / median(cached);
      const without = tok / median(recomputed);
      perBatch.set(batch, withCache);
      results.push({
        name: `gpt2 generate, batch ${batch}, KV cache`,
        metric: 'throughput',
        value: withCache,
        unit: 'tokens/s',
        baseline: { name: 'no KV cache (whole sequence recomputed each step)', value: without },
        ratio: withCache / without,
        notes: `${size}; ${shape}; new tokens / wall time of Gpt2Generator.generate (prefill included), median of ${repeats} runs interleaved with the baseline; ${s.threads} ORT threads. Both paths emitted the same tokens.`,
      });
    }
    const bandwidth = memcpyBandwidth();
    const c = config;
    // Batch 1 reads every weight once per token (the tied wte once, as the LM head; of wpe one row),
    // and the cached keys and values of every layer (at the mean context length of the run).
    const weightBytes = 4 * (numParams - c.n_positions * c.n_embd + c.n_embd);
    const kvBytes = 4 * 2 * c.n_layer * c.n_embd * (promptLen + newTokens / 2);
    const bound = bandwidth / (weightBytes + kvBytes);
    const measured = perBatch.get(1) ?? 0;
    results.push({
      name: 'gpt2 generate, batch 1, KV cache vs the memory-bandwidth bound',
      metric: 'throughput',
      value: measured,
      unit: 'tokens/s',
      baseline: { name: 'bandwidth bound: memcpy bandwidth / bytes read per token', value: bound },
      ratio: measured / bound,
      notes: `${size}; bytes read per token ${(weightBytes / 1e6).toFixed(0)} MB of weights + ${(kvBytes / 1e6).toFixed(2)} MB of KV cache; memcpy bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s (256 MiB copy, read + written bytes, median of 7). The bound ignores compute and counts the prefill as free, so the ratio is the fraction of memory bandwidth the decode loop turns into tokens.`,
    });
    results.push({
      name: 'memcpy bandwidth (the bound above)',
      metric: 'bandwidth',
      value: bandwidth / 1e9,
      unit: 'GB/s',
      notes: '256 MiB Uint8Array.set, bytes read + bytes written per second, median of 7 after one untimed copy.',
    });
  } finally {
    await generator.release();
  }
  return results;
}
