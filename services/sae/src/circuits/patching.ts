/**
 * Activation patching on prompt pairs (pairs.ts). Each side runs teacher-forced on its own record:
 * its prompt, the work of its completion up to the answer (none for an answer-only completion), and
 * the first k answer tokens the two answers share (the answer's tokens and EOS, as examples.ts reads
 * them; often k = 0). At the last of those tokens (the `readout` slot), where the two answers first
 * differ, a in the pair's source (clean) record and b in its target (corrupted) record, the metric is the logit difference
 *   LD = logit(a) − logit(b)          (a log-prob difference: the softmax normaliser cancels)
 * so it is about the final answer, not about the first step of a worked completion. A worked run
 * reads its own work before the answer, so a patch at a prompt slot moves LD only as far as it
 * changes how the answer is read out of that work. A patch's effect, over the pairs that have the patched slot, is
 *   patched = (mean LD_patched − mean LD_target) / (mean LD_source − mean LD_target)
 * 0: the target's behaviour, 1: the source's. Patched are
 *   blocks.<l>.hook_resid_post at one slot (the source's vector at its slot put at the target's
 *   same slot: slots are named, so prompts of different lengths line up), and
 *   blocks.<l>.attn.hook_z of one head at the readout slot (that head's output where the answer is read).
 */
import type { TokenizedRecord } from './examples';
import type { CircuitModel } from './model';
import { BATCH_ROWS } from './model';
import type { PairKind, PromptPair } from './pairs';
import { type TokenBatch, tokenBatch } from './program';

export interface TokenPair {
  /** Each side's run: its prompt, its work and the answer tokens the two share, with a `readout` slot. */
  source: TokenizedRecord;
  target: TokenizedRecord;
  /** The first answer token where the pair's source (a) and target (b) answers differ. */
  a: number;
  b: number;
}

export interface PatchSpec {
  hook: string;
  slots: readonly string[];
  /** Only this head's slice of an attn.hook_z [.., head, d_head]. */
  head?: number;
  /** Whose run is patched and whose activations go in. */
  into: 'source' | 'target';
  from: 'source' | 'target';
}

export interface PatchKindResult {
  kind: PairKind;
  pairs: number;
  /** Mean LD on the source runs and on the target runs, unpatched. */
  source_logit_diff: number;
  target_logit_diff: number;
  resid: { hooks: string[]; slots: string[]; patched: (number | null)[][]; pairs: number[][] };
  heads: { layers: number; heads: number; patched: (number | null)[][] };
}

/** Each pair as the runs patching compares (pairs whose answers never differ are dropped). */
export function tokenPairs(model: CircuitModel, pairs: readonly PromptPair[]): TokenPair[] {
  const out: TokenPair[] = [];
  const src = model.tokenize(pairs.map((p) => p.source));
  const tgt = model.tokenize(pairs.map((p) => p.target));
  for (const [i, s] of src.entries()) {
    const t = tgt[i];
    const [as, at] = [s.ids.slice(s.answerStart), t.ids.slice(t.answerStart)];
    let k = 0;
    while (k < as.length && k < at.length && as[k] === at[k]) k++;
    if (k === as.length || k === at.length) continue;
    const run = (x: TokenizedRecord): TokenizedRecord => ({
      ...x,
      ids: x.ids.slice(0, x.answerStart + k),
      slots: new Map([...x.slots, ['readout', x.answerStart - 1 + k]]),
    });
    out.push({ source: run(s), target: run(t), a: as[k], b: at[k] });
  }
  return out;
}

/** LD at the readout slot of row r of a run's log-probs. */
function logitDiff(lp: Float32Array, vocab: number, width: number, r: number, t: TokenizedRecord, p: TokenPair): number {
  const at = (r * width + (t.slots.get('readout') as number)) * vocab;
  return lp[at + p.a] - lp[at + p.b];
}

/**
 * Mean LD over the pairs the patch applies to (every pair without a patch), and how many those are.
 * `acts` holds each pair's source and target activations of the hook at their slots.
 */
export async function patchedLogitDiff(
  model: CircuitModel,
  pairs: readonly TokenPair[],
  spec: PatchSpec | { into: 'source' | 'target' },
  acts?: { source: Map<string, Map<string, Float32Array>>[]; target: Map<string, Map<string, Float32Array>>[] },
): Promise<{ mean: number; rows: number; perPair: number[] }> {
  const patch = 'hook' in spec ? spec : null;
  const program = await model.program(patch ? { patch: [patch.hook] } : {});
  const flat = model.flat(program);
  const perPair: number[] = [];
  let sum = 0;
  let rows = 0;
  for (let s = 0; s < pairs.length; s += BATCH_ROWS) {
    const chunk = pairs.slice(s, s + BATCH_ROWS);
    const runs = chunk.map((p) => (spec.into === 'source' ? p.source : p.target));
    const batch: TokenBatch = tokenBatch(runs.map((t) => t.ids));
    const applies = chunk.map(() => patch === null);
    const patches: Record<string, { value: Float32Array; mask: Float32Array }> = {};
    if (patch) {
      const inner = program.inner[patch.hook];
      const last = inner[inner.length - 1];
      const per = inner.reduce((x, y) => x * y, 1);
      const value = new Float32Array(batch.rows * batch.width * per);
      const mask = new Float32Array(value.length / last);
      for (let r = 0; r < chunk.length; r++) {
        for (const slot of patch.slots) {
          const pos = runs[r].slots.get(slot);
          const vec = acts?.[patch.from][s + r].get(patch.hook)?.get(slot);
          if (pos === undefined || !vec) continue;
          applies[r] = true;
          const base = (r * batch.width + pos) * per;
          if (patch.head === undefined) {
            value.set(vec, base);
            mask.fill(1, base / last, (base + per) / last);
          } else {
            value.set(vec.subarray(patch.head * last, (patch.head + 1) * last), base + patch.head * last);
            mask[base / last + patch.head] = 1;
          }
        }
      }
      patches[patch.hook] = { value, mask };
    }
    const out = await program.run(flat, batch, patches);
    for (const [r, p] of chunk.entries()) {
      if (!applies[r]) continue;
      const ld = logitDiff(out.logProbs, out.vocab, batch.width, r, runs[r], p);
      perPair.push(ld);
      sum += ld;
      rows++;
    }
  }
  return { mean: rows > 0 ? sum / rows : Number.NaN, rows, perPair };
}

/** (patched − target) / (source − target), or null when the two sides do not differ. */
export function normalised(patched: number, source: number, target: number): number | null {
  const span = source - target;
  return Number.isFinite(patched) && Math.abs(span) > 1e-9 ? (patched - target) / span : null;
}

/** Every resid_post (layer x slot) and hook_z (layer x head) patch of one kind of pair, clean into corrupted. */
export async function patchKind(
  model: CircuitModel,
  kind: PairKind,
  pairs: readonly TokenPair[],
  slots: readonly string[],
): Promise<PatchKindResult> {
  const L = model.layers;
  const H = model.heads;
  const resid = Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_post`);
  const z = Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_z`);
  const acts = {
    source: await model.captureSlots(
      pairs.map((p) => p.source),
      [...resid, ...z],
      (t) => t.ids,
    ),
    target: await model.captureSlots(
      pairs.map((p) => p.target),
      [...resid, ...z],
      (t) => t.ids,
    ),
  };
  const source = (await patchedLogitDiff(model, pairs, { into: 'source' })).perPair;
  const target = (await patchedLogitDiff(model, pairs, { into: 'target' })).perPair;
  const mean = (xs: number[], idx: number[]) => idx.reduce((s, i) => s + xs[i], 0) / idx.length;
  const all = pairs.map((_, i) => i);
  const result: PatchKindResult = {
    kind,
    pairs: pairs.length,
    source_logit_diff: mean(source, all),
    target_logit_diff: mean(target, all),
    resid: { hooks: resid, slots: [...slots], patched: [], pairs: [] },
    heads: { layers: L, heads: H, patched: [] },
  };
  for (const hook of resid) {
    const row: (number | null)[] = [];
    const counts: number[] = [];
    for (const slot of slots) {
      // The baseline means are taken over the same pairs the patch applies to.
      const having = all.filter((i) => pairs[i].source.slots.has(slot) && pairs[i].target.slots.has(slot));
      const r =
        having.length > 0
          ? await patchedLogitDiff(
              model,
              having.map((i) => pairs[i]),
              { hook, slots: [slot], into: 'target', from: 'source' },
              pick(acts, having),
            )
          : null;
      row.push(r ? normalised(r.mean, mean(source, having), mean(target, having)) : null);
      counts.push(having.length);
    }
    result.resid.patched.push(row);
    result.resid.pairs.push(counts);
  }
  for (const hook of z) {
    const row: (number | null)[] = [];
    for (let h = 0; h < H; h++) {
      const r = await patchedLogitDiff(model, pairs, { hook, slots: ['readout'], head: h, into: 'target', from: 'source' }, acts);
      row.push(normalised(r.mean, result.source_logit_diff, result.target_logit_diff));
    }
    result.heads.patched.push(row);
  }
  return result;
}

function pick<T>(acts: { source: T[]; target: T[] }, idx: number[]): { source: T[]; target: T[] } {
  return { source: idx.map((i) => acts.source[i]), target: idx.map((i) => acts.target[i]) };
}
