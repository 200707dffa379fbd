/**
 * Evaluation of an SFT model on a dataset split:
 *
 *   loss         mean -log p over the split's completion tokens (EOS included), teacher-forced
 *   exact_match  share of prompts whose greedy completion is right: for records with the card game's
 *                `answer`, the game's verifier decides (its lenient parse of the first line); for
 *                others, the completion text must equal the reference (whitespace at the ends aside)
 *   by_family    exact match per rule family, for records that name their family (the card game's)
 *   format       share of well-formed answers (the card verifier's format component), for records
 *                with the game's rule (its readout kind); NaN (null in JSON) when there are none
 *
 * Completions come from models/text-completion.ts (Gpt2Generator's KV-cache greedy decoding to EOS or
 * max_new_tokens, decoded strictly), which the evaluator's text episodes use too, so a checkpoint
 * scores the same here and under `rlmesh eval`.
 */
import { verifyAnswer } from '@rlmesh/envs';
import { buildForwardProgram, type ParamLayout, Session } from '@rlmesh/graph';
import type { Tokenizer } from '@rlmesh/text';
import type { CausalLm } from '../models/causal-lm';
import type { Gpt2Generator } from '../models/gpt2-generate';
import { complete } from '../models/text-completion';
import { collate, type TokenizedExample } from './data';
import { completionNll, SFT_BATCH_INPUTS } from './step';

export interface SplitMetrics {
  loss: number;
  exact_match: number;
  /** Card records only; NaN when the split has none. */
  format: number;
  n: number;
  tokens: number;
  by_family?: Record<string, number>;
}

/** Teacher-forced completion NLL with the flat parameters as an input: one compiled program for every evaluation. */
export class LossEvaluator {
  private constructor(
    private readonly session: Session,
    readonly layout: ParamLayout,
  ) {}

  static async create(model: CausalLm, threads = 1): Promise<LossEvaluator> {
    const { onnx, layout } = buildForwardProgram({
      module: model,
      name: 'sft_eval_loss',
      inputs: SFT_BATCH_INPUTS,
      forward: (b) => {
        const { nllSum, tokens } = completionNll(model, b);
        return { nll_sum: nllSum, tokens };
      },
    });
    return new LossEvaluator(await Session.create(onnx, { intraOpThreads: threads }), layout);
  }

  /** Summed NLL over the examples' completion tokens and the token count. */
  async nll(
    params: Float32Array,
    examples: readonly TokenizedExample[],
    batchSize: number,
    padId: number,
  ): Promise<{ sum: number; tokens: number }> {
    let sum = 0;
    let tokens = 0;
    for (let i = 0; i < examples.length; i += batchSize) {
      const b = collate(examples.slice(i, i + batchSize), padId);
      const out = await this.session.run({ ...b.feeds, params: { data: params, shape: [params.length] } });
      sum += Number(out.nll_sum.data[0]);
      tokens += Number(out.tokens.data[0]);
    }
    return { sum, tokens };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export interface ExactMatchOptions {
  tokenizer: Tokenizer;
  eosId: number;
  maxNewTokens: number;
  batchSize: number;
}

/** Greedy completions of every prompt, judged as the file comment says; returns per-example verdicts and the decoded text. */
export async function exactMatch(
  gen: Gpt2Generator,
  examples: readonly TokenizedExample[],
  o: ExactMatchOptions,
): Promise<{ correct: boolean[]; format: (number | null)[]; completions: string[] }> {
  const done = await complete(
    gen,
    examples.map((e) => ({ prompt: e.ids.slice(0, e.promptLength) })),
    { tokenizer: o.tokenizer, eosId: o.eosId, maxNewTokens: o.maxNewTokens, batchSize: o.batchSize },
  );
  const correct: boolean[] = [];
  const format: (number | null)[] = [];
  const completions: string[] = [];
  done.forEach((c, k) => {
    const rec = examples[k].record;
    // Bytes that are not UTF-8 are no answer: wrong and ill-formed, as a text env scores them.
    const text = c.text ?? '';
    completions.push(text);
    if (rec.answer !== undefined) {
      // The kind only shapes the format check; correctness is the parsed answer alone.
      const v = verifyAnswer(text, rec.answer, rec.readout ?? 'number');
      correct.push(c.text !== null && v.success);
      format.push(rec.readout ? (c.text === null ? 0 : v.reward.format) : null);
    } else {
      correct.push(c.text !== null && text.trim() === rec.completion.trim());
      format.push(null);
    }
  });
  return { correct, format, completions };
}

/** Loss and exact match of one split: `gen` holds the same parameters as `flat`. */
export async function evaluateSplit(
  gen: Gpt2Generator,
  flat: Float32Array,
  loss: LossEvaluator,
  examples: readonly TokenizedExample[],
  o: ExactMatchOptions & { padId: number },
): Promise<SplitMetrics> {
  const nll = await loss.nll(flat, examples, o.batchSize, o.padId);
  const em = await exactMatch(gen, examples, o);
  const formats = em.format.filter((f): f is number => f !== null);
  const families = new Map<string, { right: number; n: number }>();
  examples.forEach((e, i) => {
    const f = e.record.family;
    if (f === undefined) return;
    const c = families.get(f) ?? { right: 0, n: 0 };
    c.n++;
    if (em.correct[i]) c.right++;
    families.set(f, c);
  });
  return {
    loss: nll.sum / Math.max(1, nll.tokens),
    exact_match: em.correct.filter(Boolean).length / Math.max(1, examples.length),
    format: formats.length ? formats.reduce((a, b) => a + b, 0) / formats.length : Number.NaN,
    n: examples.length,
    tokens: nll.tokens,
    ...(families.size
      ? { by_family: Object.fromEntries([...families].sort(([a], [b]) => a.localeCompare(b)).map(([f, c]) => [f, c.right / c.n])) }
      : {}),
  };
}
