/**
 * Probes for the card game's intermediate labels, per layer (hook_embed and every block's
 * hook_resid_post) and position:
 *   at the answer slot (the last prompt token): total (ridge, R²), each colour's sum (ridge, R²),
 *   the answer label (logistic, accuracy), and as a control the number of cards (ridge, R²);
 *   at each card's value token: whether the rule selects that card (logistic, accuracy).
 * One seeded train/val split of the examples serves every probe.
 */
import type { TokenizedRecord } from './examples';
import { type ClassificationScore, logisticProbe, type ProbeRows, type RegressionScore, ridgeProbe, valGroups } from './linear-probe';
import type { CircuitModel } from './model';

export interface ProbeResult {
  hook: string;
  /** `answer` or `card_value`. */
  position: string;
  /** `total`, `colour_sum.RED`, `label`, `n_cards`, `selected`. */
  target: string;
  regression?: RegressionScore;
  classification?: ClassificationScore;
}

export function probeHooks(layers: number): string[] {
  return ['hook_embed', ...Array.from({ length: layers }, (_, l) => `blocks.${l}.hook_resid_post`)];
}

function rows(vectors: Float32Array[], group: number[]): ProbeRows {
  const d = vectors[0].length;
  const x = new Float32Array(vectors.length * d);
  for (const [i, v] of vectors.entries()) x.set(v, i * d);
  return { x, d, group };
}

export async function runProbes(
  model: CircuitModel,
  items: readonly TokenizedRecord[],
  o: { valFraction: number; seed: number; hooks?: readonly string[] },
): Promise<ProbeResult[]> {
  const hooks = o.hooks ?? probeHooks(model.layers);
  const acts = await model.captureSlots(items, hooks);
  const isVal = valGroups(items.length, o.valFraction, o.seed);
  const colours = [...new Set(items.flatMap((t) => Object.keys(t.record.labels.colour_sums)))].sort();
  const out: ProbeResult[] = [];
  for (const hook of hooks) {
    const at = rows(
      acts.map((a) => a.get(hook)?.get('answer') as Float32Array),
      items.map((_, i) => i),
    );
    out.push({
      hook,
      position: 'answer',
      target: 'total',
      regression: ridgeProbe(
        at,
        items.map((t) => t.record.labels.total),
        isVal,
      ),
    });
    for (const c of colours)
      out.push({
        hook,
        position: 'answer',
        target: `colour_sum.${c}`,
        regression: ridgeProbe(
          at,
          items.map((t) => t.record.labels.colour_sums[c] ?? 0),
          isVal,
        ),
      });
    out.push({
      hook,
      position: 'answer',
      target: 'label',
      classification: logisticProbe(
        at,
        items.map((t) => t.record.labels.label),
        isVal,
      ),
    });
    // A control: the card count is visible without reading any card, and the total grows with it.
    out.push({
      hook,
      position: 'answer',
      target: 'n_cards',
      regression: ridgeProbe(
        at,
        items.map((t) => t.record.cards.length),
        isVal,
      ),
    });
    const cards: Float32Array[] = [];
    const group: number[] = [];
    const selected: string[] = [];
    for (const [i, t] of items.entries())
      for (const [j, s] of t.record.labels.selected.entries()) {
        const v = acts[i].get(hook)?.get(`card${j + 1}.value`);
        if (!v) continue;
        cards.push(v);
        group.push(i);
        selected.push(String(s));
      }
    if (cards.length > 0)
      out.push({ hook, position: 'card_value', target: 'selected', classification: logisticProbe(rows(cards, group), selected, isVal) });
  }
  return out;
}
