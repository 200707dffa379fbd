/**
 * Ablation importance. Each attention head (its slice of blocks.<l>.attn.hook_z) and each MLP
 * (blocks.<l>.mlp.hook_post) is ablated at every position, by its mean over the dataset's token
 * positions (mean ablation) or by zeros, and the final answer is scored teacher-forced on prompt +
 * completion + EOS (the answer's tokens as examples.ts reads them: the whole completion when it is
 * the answer alone, the tokens after the work of a worked one; then EOS):
 *   exact match   every answer token (and EOS) is the argmax at its position: greedy decoding would
 *                 write this answer after this work
 *   answer log-prob  Σ log p(token) over the answer's tokens and EOS, averaged over examples
 * The work is context only, so a model that slips on a running total but reads the answer out of the
 * work it is given still scores.
 * A component is important when ablating it lowers exact match by more than `threshold` (a fraction)
 * of the clean exact match, and by at least two examples (exact match moves in steps of one). The
 * top-k by log-prob drop is kept too.
 */
import type { TokenizedRecord } from './examples';
import type { CircuitModel } from './model';
import { BATCH_ROWS } from './model';
import { type HookPatch, tokenBatch } from './program';

export type AblationKind = 'mean' | 'zero';

export interface Score {
  exact_match: number;
  answer_logprob: number;
}

export interface ComponentScore extends Score {
  name: string;
  drop_exact_match: number;
  drop_logprob: number;
}

export interface AblationResult {
  ablation: AblationKind;
  examples: number;
  clean: Score;
  threshold: number;
  heads: ComponentScore[];
  mlps: ComponentScore[];
  important_heads: string[];
  important_mlps: string[];
  top_k: number;
  top_heads: string[];
  /** Per rule family (the record's `family`): its examples, clean scores, and each component's log-prob drop. */
  by_family: { families: string[]; examples: number[]; clean: Score[]; components: string[]; drop_logprob: number[][] };
}

export const headName = (l: number, h: number) => `L${l}H${h}`;

/** Exact match and answer log-prob of every row of a run (log-probs [rows, width, vocab]), appended to `into`. */
export function scoreRows(lp: Float32Array, vocab: number, width: number, rows: readonly TokenizedRecord[], into: Score[]): void {
  for (const [r, t] of rows.entries()) {
    let exact = true;
    let logprob = 0;
    for (let pos = t.answerStart - 1; pos < t.ids.length - 1; pos++) {
      const at = (r * width + pos) * vocab;
      const want = t.ids[pos + 1];
      logprob += lp[at + want];
      for (let v = 0; v < vocab && exact; v++) if (lp[at + v] > lp[at + want]) exact = false;
    }
    into.push({ exact_match: exact ? 1 : 0, answer_logprob: logprob });
  }
}

const mean = (xs: Score[]): Score => ({
  exact_match: xs.reduce((s, x) => s + x.exact_match, 0) / xs.length,
  answer_logprob: xs.reduce((s, x) => s + x.answer_logprob, 0) / xs.length,
});

/** The clean scores and, per hook, its mean over every token position of the dataset. */
async function cleanRun(model: CircuitModel, items: readonly TokenizedRecord[], hooks: readonly string[]) {
  const program = await model.program({ capture: hooks });
  const sums = Object.fromEntries(hooks.map((h) => [h, new Float64Array(program.rowSize(h, 1))]));
  let positions = 0;
  const scores: Score[] = [];
  for (let s = 0; s < items.length; s += BATCH_ROWS) {
    const chunk = items.slice(s, s + BATCH_ROWS);
    const batch = tokenBatch(chunk.map((t) => t.ids));
    const out = await program.run(model.flat(program), batch);
    scoreRows(out.logProbs, out.vocab, batch.width, chunk, scores);
    for (const [r, t] of chunk.entries())
      for (let pos = 0; pos < t.ids.length; pos++) {
        for (const h of hooks) {
          const sum = sums[h];
          const at = (r * batch.width + pos) * sum.length;
          for (let j = 0; j < sum.length; j++) sum[j] += out.hooks[h][at + j];
        }
        positions++;
      }
  }
  const means = Object.fromEntries(Object.entries(sums).map(([h, s]) => [h, Float32Array.from(s, (v) => v / positions)]));
  return { clean: mean(scores), cleanRows: scores, means };
}

/** Mean scores with `hook` replaced by `fill` on the slice [offset, offset + fill.length) of its last axes at every position. */
export async function ablatedScore(
  model: CircuitModel,
  items: readonly TokenizedRecord[],
  hook: string,
  fill: Float32Array,
  offset = 0,
): Promise<Score> {
  return mean(await ablatedRows(model, items, hook, fill, offset));
}

/** Each example's scores under the ablation ablatedScore describes. */
async function ablatedRows(
  model: CircuitModel,
  items: readonly TokenizedRecord[],
  hook: string,
  fill: Float32Array,
  offset: number,
): Promise<Score[]> {
  const program = await model.program({ patch: [hook] });
  const per = program.rowSize(hook, 1);
  const inner = program.inner[hook];
  const last = inner[inner.length - 1];
  const scores: Score[] = [];
  for (let s = 0; s < items.length; s += BATCH_ROWS) {
    const chunk = items.slice(s, s + BATCH_ROWS);
    const batch = tokenBatch(chunk.map((t) => t.ids));
    const cells = batch.rows * batch.width;
    const patch: HookPatch = { value: new Float32Array(cells * per), mask: new Float32Array((cells * per) / last) };
    for (let c = 0; c < cells; c++) {
      patch.value.set(fill, c * per + offset);
      patch.mask.fill(1, (c * per + offset) / last, (c * per + offset + fill.length) / last);
    }
    const out = await program.run(model.flat(program), batch, { [hook]: patch });
    scoreRows(out.logProbs, out.vocab, batch.width, chunk, scores);
  }
  return scores;
}

export async function ablationImportance(
  model: CircuitModel,
  items: readonly TokenizedRecord[],
  o: { ablation: AblationKind; threshold: number; topK: number },
): Promise<AblationResult> {
  const L = model.layers;
  const H = model.heads;
  const z = Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_z`);
  const mlp = Array.from({ length: L }, (_, l) => `blocks.${l}.mlp.hook_post`);
  const { clean, cleanRows, means } = await cleanRun(model, items, [...z, ...mlp]);
  const families = [...new Set(items.map((t) => t.record.family))].sort();
  const inFamily = families.map((f) => items.flatMap((t, i) => (t.record.family === f ? [i] : [])));
  const byFamily = (rows: Score[]) => inFamily.map((idx) => mean(idx.map((i) => rows[i])));
  const cleanByFamily = byFamily(cleanRows);
  const familyDrops = new Map<string, number[]>();
  const drop = (name: string, rows: Score[]): ComponentScore => {
    const s = mean(rows);
    familyDrops.set(
      name,
      byFamily(rows).map((f, i) => cleanByFamily[i].answer_logprob - f.answer_logprob),
    );
    return { name, ...s, drop_exact_match: clean.exact_match - s.exact_match, drop_logprob: clean.answer_logprob - s.answer_logprob };
  };
  const heads: ComponentScore[] = [];
  const mlps: ComponentScore[] = [];
  for (let l = 0; l < L; l++) {
    const d = means[z[l]].length / H;
    for (let h = 0; h < H; h++) {
      const fill = o.ablation === 'mean' ? means[z[l]].slice(h * d, (h + 1) * d) : new Float32Array(d);
      heads.push(drop(headName(l, h), await ablatedRows(model, items, z[l], fill, h * d)));
    }
    const fill = o.ablation === 'mean' ? means[mlp[l]] : new Float32Array(means[mlp[l]].length);
    mlps.push(drop(`L${l}MLP`, await ablatedRows(model, items, mlp[l], fill, 0)));
  }
  const important = (xs: ComponentScore[]) => importantComponents(xs, clean.exact_match, o.threshold, items.length);
  const topK = Math.min(o.topK, heads.length);
  return {
    ablation: o.ablation,
    examples: items.length,
    clean,
    threshold: o.threshold,
    heads,
    mlps,
    important_heads: important(heads),
    important_mlps: important(mlps),
    top_k: topK,
    by_family: {
      families,
      examples: inFamily.map((idx) => idx.length),
      clean: cleanByFamily,
      components: [...heads, ...mlps].map((x) => x.name),
      drop_logprob: [...heads, ...mlps].map((x) => familyDrops.get(x.name) as number[]),
    },
    top_heads: [...heads]
      .sort((a, b) => b.drop_logprob - a.drop_logprob)
      .slice(0, topK)
      .map((x) => x.name),
  };
}

/** Components whose ablation lowers exact match by more than `threshold` of `clean` and by two or more of `examples`. */
export function importantComponents(xs: readonly ComponentScore[], clean: number, threshold: number, examples: number): string[] {
  // A one-example change is noise whatever the threshold.
  const minDrop = Math.max(threshold * clean, 1.5 / examples);
  return xs.filter((x) => x.drop_exact_match > minDrop).map((x) => x.name);
}

/** |A ∩ B| / |A ∪ B|; null when both are empty (nothing to compare). */
export function jaccard(a: readonly string[], b: readonly string[]): number | null {
  const A = new Set(a);
  const B = new Set(b);
  const union = new Set([...A, ...B]).size;
  if (union === 0) return null;
  return [...A].filter((x) => B.has(x)).length / union;
}
