/**
 * Greedy decoding of a batch of prompts of different lengths with GPT-2's KV cache: one prefill
 * over the left-padded prompts, then one decode step per new token that feeds back the cache. Each
 * row's output is what the unpadded prompt alone gives (positions count tokens; padding is masked).
 * Returns each chosen token's log-probability under the model, which a learner needs as the
 * behaviour log-prob. Sampling (temperature, top-k, top-p), stop strings and the policy service's
 * Generate RPC build on this loop and are not here.
 */
import { type HostTensor, Session } from '@rlmesh/graph';
import { buildKvProgram, type Gpt2LMHeadModel, KV_IO } from './gpt2';

export interface GreedyOptions {
  maxNewTokens: number;
  /** A row stops after emitting this token (it is included in the output). */
  eosTokenId?: number;
}

export interface Generated {
  /** New tokens per prompt, at most maxNewTokens, ending at EOS when one was emitted. */
  tokens: number[][];
  /** log pi(token | prefix) of each new token. */
  logProbs: number[][];
}

export class Gpt2Generator {
  private constructor(
    private readonly prefill: Session,
    private readonly decode: Session,
    readonly model: Gpt2LMHeadModel,
  ) {}

  static async create(
    model: Gpt2LMHeadModel,
    params: ReadonlyMap<string, Float32Array>,
    opts: { threads?: number } = {},
  ): Promise<Gpt2Generator> {
    const options = { intraOpThreads: opts.threads ?? 1 };
    const prefill = await Session.create(buildKvProgram(model, params, { past: false }), options);
    const decode = await Session.create(buildKvProgram(model, params, { past: true }), options);
    return new Gpt2Generator(prefill, decode, model);
  }

  async greedy(prompts: readonly (readonly number[])[], opts: GreedyOptions): Promise<Generated> {
    const c = this.model.config;
    const B = prompts.length;
    if (B === 0) return { tokens: [], logProbs: [] };
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 0)
      throw new Error(`maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
    const longest = Math.max(...prompts.map((p) => p.length));
    prompts.forEach((p, b) => {
      if (p.length === 0) throw new Error(`prompt ${b} is empty: generation needs at least one token to condition on`);
      if (p.length + opts.maxNewTokens > c.n_positions)
        throw new Error(
          `prompt ${b} has ${p.length} tokens; with ${opts.maxNewTokens} new ones it exceeds the context of ${c.n_positions}`,
        );
      for (const id of p)
        if (!Number.isInteger(id) || id < 0 || id >= c.vocab_size)
          throw new Error(`prompt ${b}: token id ${id} is outside the vocabulary of ${c.vocab_size}`);
    });
    const tokens: number[][] = prompts.map(() => []);
    const logProbs: number[][] = prompts.map(() => []);
    if (opts.maxNewTokens === 0) return { tokens, logProbs };

    // Left padding: every row's last slot is its last token, so one gather serves the batch.
    const ids = new BigInt64Array(B * longest);
    let mask = new BigInt64Array(B * longest);
    prompts.forEach((p, b) => {
      const at = b * longest + longest - p.length;
      p.forEach((id, i) => {
        ids[at + i] = BigInt(id);
        mask[at + i] = 1n;
      });
    });
    let width = longest;
    let out = await this.prefill.run({
      input_ids: { data: ids, shape: [B, longest] },
      attention_mask: { data: mask, shape: [B, longest] },
    });
    const done = new Array<boolean>(B).fill(false);
    for (let step = 0; ; step++) {
      const logits = out.logits.data as Float32Array;
      const next = new BigInt64Array(B);
      for (let b = 0; b < B; b++) {
        const row = logits.subarray(b * c.vocab_size, (b + 1) * c.vocab_size);
        let best = 0;
        for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
        next[b] = BigInt(best);
        if (done[b]) continue;
        tokens[b].push(best);
        logProbs[b].push(row[best] - logSumExp(row));
        if (best === opts.eosTokenId) done[b] = true;
      }
      if (step + 1 >= opts.maxNewTokens || done.every(Boolean)) break;
      // Finished rows keep stepping (their tokens are dropped) so the batch stays rectangular.
      const grown = new BigInt64Array(B * (width + 1));
      for (let b = 0; b < B; b++) {
        grown.set(mask.subarray(b * width, (b + 1) * width), b * (width + 1));
        grown[b * (width + 1) + width] = 1n;
      }
      mask = grown;
      width += 1;
      const feeds: Record<string, HostTensor> = {
        input_ids: { data: next, shape: [B, 1] },
        attention_mask: { data: mask, shape: [B, width] },
      };
      for (let l = 0; l < c.n_layer; l++) {
        feeds[KV_IO.pastKey(l)] = out[KV_IO.presentKey(l)];
        feeds[KV_IO.pastValue(l)] = out[KV_IO.presentValue(l)];
      }
      out = await this.decode.run(feeds);
    }
    return { tokens, logProbs };
  }

  async release(): Promise<void> {
    await this.prefill.release();
    await this.decode.release();
  }
}

function logSumExp(row: Float32Array): number {
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return m + Math.log(s);
}
