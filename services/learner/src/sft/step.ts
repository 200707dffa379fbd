/**
 * The SFT train step: models/gpt2-step.ts's gradient and AdamW programs with this loss,
 *
 *   gradient  (params, micro-batch, N) -> grad of  sum_{completion tokens} -log p(token) / N
 *
 * One update sums the gradients of its k micro-batches (gradient accumulation), where N is the
 * number of completion tokens in all k together. So the loss of an update is
 *
 *   loss = (1 / N) * sum over the k micro-batches, over every completion token t of -log p(t)
 *
 * the mean over completion tokens of the whole accumulated batch, and its gradient is exactly the
 * gradient of one batch of k times the size: every token weighs the same however the tokens fall
 * into micro-batches and rows (Hugging Face TRL's per-token normalisation over the accumulated
 * batch, `num_items_in_batch`). Prompt tokens and padding are masked out of the sum; padding is also
 * masked out of attention. The one loss term is `completion_nll`; `loss` is the same number.
 */
import { cast, div, mul, neg, reduceSum, type Value } from '@rlmesh/graph';
import type { CausalLm } from '../models/causal-lm';
import {
  type AdamWConfig,
  buildGradientProgram,
  GradientTrainer,
  type GradientTrainerState,
  LM_BATCH_INPUTS,
  tokenLogProbs,
} from '../models/gpt2-step';
import type { SftBatch } from './data';

/** The batch inputs of the gradient and eval programs (collate() builds them). */
const LOSS_MASK = { name: 'loss_mask', dtype: 'float32', shape: ['batch', 'sequence'] } as const;
export const SFT_BATCH_INPUTS = [...LM_BATCH_INPUTS, LOSS_MASK] as const;

/** Completion tokens the whole update scores (N above), fed to every micro-batch's gradient. */
const TOKEN_COUNT = 'token_count';

/** Summed -log p(label) over the positions the loss mask keeps, and the count of those positions. */
export function completionNll(model: CausalLm, b: Record<string, Value>): { nllSum: Value; tokens: Value } {
  const nll = neg(tokenLogProbs(model, b).logProbs);
  const mask = cast(b.loss_mask, nll.dtype);
  return { nllSum: reduceSum(mul(nll, mask)), tokens: reduceSum(mask) };
}

/** What an SFT trainer carries between updates (and a checkpoint holds). */
export type SftTrainerState = GradientTrainerState;

export interface AccumulatedGradient {
  grad: Float32Array;
  /** The update's loss: summed completion NLL over its N completion tokens. */
  loss: number;
  tokens: number;
  rows: number;
}

/** SFT's gradients of k micro-batches summed, then one AdamW update. */
export class SftTrainer {
  private constructor(private readonly t: GradientTrainer) {}

  static async create(
    model: CausalLm,
    params: ReadonlyMap<string, Float32Array>,
    adamw: AdamWConfig,
    threads = 1,
    /** Parameters that stay as they are (LoRA's base weights); `params` holds them too. */
    frozen?: (name: string) => boolean,
  ): Promise<SftTrainer> {
    const program = buildGradientProgram(
      model,
      'sft_gradient',
      [LOSS_MASK, { name: TOKEN_COUNT, dtype: 'float32', shape: [] }],
      (b) => {
        const { nllSum } = completionNll(model, b);
        return { loss: div(nllSum, b[TOKEN_COUNT]) };
      },
      frozen,
    );
    return new SftTrainer(await GradientTrainer.create(program, params, adamw, threads));
  }

  get layout() {
    return this.t.layout;
  }

  get stepCount(): number {
    return this.t.stepCount;
  }

  parameters(): Map<string, Float32Array> {
    return this.t.parameters();
  }

  snapshot(): SftTrainerState {
    return this.t.snapshot();
  }

  restore(s: SftTrainerState): void {
    this.t.restore(s);
  }

  /** The summed gradient of the micro-batches, each normalised by their total completion tokens. */
  async gradient(micro: readonly SftBatch[]): Promise<AccumulatedGradient> {
    const N = micro.reduce((n, b) => n + b.tokens, 0);
    if (N === 0) throw new Error('sft: an update with no completion tokens');
    const { grad, sums } = await this.t.gradient(
      micro.map((b) => ({ ...b.feeds, [TOKEN_COUNT]: { data: Float32Array.of(N), shape: [] } })),
    );
    return { grad, loss: sums.loss, tokens: N, rows: micro.reduce((n, b) => n + b.rows, 0) };
  }

  /** One update from k micro-batches at learning rate `lr`; returns its logged metrics. */
  async step(micro: readonly SftBatch[], lr: number): Promise<Record<string, number>> {
    const acc = await this.gradient(micro);
    const gradNorm = await this.t.apply(acc.grad, lr);
    return {
      loss: acc.loss,
      completion_nll: acc.loss,
      grad_norm: gradNorm,
      lr,
      tokens: acc.tokens,
      sequences: acc.rows,
    };
  }

  async release(): Promise<void> {
    await this.t.release();
  }
}
