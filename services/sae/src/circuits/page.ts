/**
 * The circuits page: probe scores by layer, patching heatmaps (layer x slot, layer x head) and
 * ablation drops, per checkpoint, as one self-contained HTML page (@rlmesh/report's static page).
 * Heatmaps are Chart.js scatter charts of square points on category axes, one dataset per cell so
 * that a cell's tooltip names its value (chart configs are plain JSON: no callbacks).
 */
import { renderStaticPage, type StaticSection } from '@rlmesh/report';
import type { AblationResult } from './ablation';
import type { PatchKindResult } from './patching';
import type { ProbeResult } from './probes';

export interface CheckpointAnalysis {
  checkpoint: string;
  probes: ProbeResult[];
  patching: PatchKindResult[];
  ablation: AblationResult;
  seconds: { probes: number; patching: number; ablation: number };
}

export interface CircuitsResult {
  data: string;
  examples: number;
  seed: number;
  checkpoints: CheckpointAnalysis[];
  /** With two checkpoints: Jaccard overlap of their component sets. */
  compare?: { important_heads: number | null; top_heads: number | null; important_mlps: number | null };
}

const fmt = (v: number | null | undefined, digits = 3) =>
  v === null || v === undefined || !Number.isFinite(v) ? '' : Number(v.toFixed(digits));
const shortHook = (h: string) => (h === 'hook_embed' ? 'embed' : h.replace(/^blocks\.(\d+)\..*$/, 'L$1'));

/** Red for positive, blue for negative, strength |v| / scale (clipped at 1). */
function cellColour(v: number | null, scale: number): string {
  if (v === null || !Number.isFinite(v)) return 'rgba(200,200,200,0.4)';
  const a = Math.min(1, Math.abs(v) / scale);
  return v >= 0 ? `rgba(214,39,40,${a.toFixed(3)})` : `rgba(31,119,180,${a.toFixed(3)})`;
}

export function heatmap(
  xLabels: string[],
  yLabels: string[],
  values: (number | null)[][],
  scale: number,
  radius = 16,
): Record<string, unknown> {
  const datasets = yLabels.flatMap((y, i) =>
    xLabels.map((x, j) => {
      const v = values[i][j];
      return {
        label: `${y} ${x}: ${v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(3)}`,
        data: [{ x, y }],
        backgroundColor: cellColour(v, scale),
        borderColor: 'rgba(0,0,0,0.08)',
        pointStyle: 'rect',
        // A 'rect' point's side is radius * sqrt(2): 23 px at the default, the rows being 32 px apart.
        pointRadius: radius,
        pointHoverRadius: radius + 1,
      };
    }),
  );
  return {
    type: 'scatter',
    data: { datasets },
    options: {
      plugins: { legend: { display: false } },
      scales: {
        x: { type: 'category', labels: xLabels, offset: true, grid: { display: false }, ticks: { autoSkip: false, maxRotation: 60 } },
        y: { type: 'category', labels: yLabels, offset: true, grid: { display: false } },
      },
    },
  };
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

function probeSection(c: CheckpointAnalysis, tag: string): StaticSection {
  const hooks = [...new Set(c.probes.map((p) => p.hook))];
  const targets = [...new Set(c.probes.map((p) => `${p.target}@${p.position}`))];
  const score = (p: ProbeResult) => p.regression?.r2 ?? p.classification?.accuracy ?? null;
  const base = (p: ProbeResult) => p.regression?.baseline_r2 ?? p.classification?.baseline_accuracy ?? null;
  const find = (h: string, t: string) => c.probes.find((p) => p.hook === h && `${p.target}@${p.position}` === t);
  const datasets = targets.flatMap((t, i) => [
    { label: t, data: hooks.map((h) => fmt(score(find(h, t) as ProbeResult))), borderColor: PALETTE[i % PALETTE.length], fill: false },
    {
      label: `${t} baseline`,
      data: hooks.map((h) => fmt(base(find(h, t) as ProbeResult))),
      borderColor: PALETTE[i % PALETTE.length],
      borderDash: [4, 4],
      pointRadius: 0,
      fill: false,
    },
  ]);
  return {
    title: `Probes ${tag}`,
    notes: [
      'Validation score by layer: R² for total and colour sums (ridge), accuracy for the answer label and for whether each card is selected (logistic). Dashed: the baseline (training mean, majority class).',
    ],
    charts: [
      {
        title: 'probe score on held-out examples',
        config: { type: 'line', data: { labels: hooks.map(shortHook), datasets }, options: { scales: { y: { min: -0.2, max: 1 } } } },
        height: 320,
      },
    ],
    tables: [
      {
        columns: ['target @ position', ...hooks.map(shortHook), 'baseline (last layer)'],
        rows: targets.map((t) => [
          t,
          ...hooks.map((h) => fmt(score(find(h, t) as ProbeResult))),
          fmt(base(find(hooks[hooks.length - 1], t) as ProbeResult)),
        ]),
      },
    ],
  };
}

/** Below this gap (nats) between the source record's and the target record's mean logit difference (pairs.ts), normalising divides noise by noise. */
export const MIN_SEPARATION = 0.1;

export const separated = (k: PatchKindResult) => Math.abs(k.source_logit_diff - k.target_logit_diff) >= MIN_SEPARATION;

function patchSection(c: CheckpointAnalysis, tag: string): StaticSection {
  return {
    title: `Activation patching ${tag}`,
    notes: [
      "Source activations patched into the target run (for clean/corrupted kinds: clean into corrupted). 1 = the patched run gives the source's logit difference between the two final answers' first differing tokens (each run teacher-forced on its own work up to the answer; the readout slot is the token before that answer token), 0 = the target's. Grey: no pair has that slot.",
      ...c.patching.map(
        (k) =>
          `${k.kind}: ${k.pairs} pairs, logit difference source ${fmt(k.source_logit_diff)} / target ${fmt(k.target_logit_diff)}${separated(k) ? '' : ` (within ${MIN_SEPARATION}: the model hardly tells the two prompts apart, so the normalised values are noise)`}`,
      ),
    ],
    charts: c.patching.flatMap((k) => [
      {
        title: `${k.kind}: hook_resid_post, layer x slot`,
        config: heatmap(k.resid.slots, k.resid.hooks.map(shortHook), k.resid.patched, 1),
        height: 60 + 32 * k.resid.hooks.length,
      },
      {
        title: `${k.kind}: attn.hook_z at the readout slot, layer x head`,
        config: heatmap(
          Array.from({ length: k.heads.heads }, (_, h) => `H${h}`),
          Array.from({ length: k.heads.layers }, (_, l) => `L${l}`),
          k.heads.patched,
          1,
        ),
        height: 60 + 32 * k.heads.layers,
      },
    ]),
  };
}

function ablationSection(c: CheckpointAnalysis, tag: string): StaticSection {
  const a = c.ablation;
  const comps = [...a.heads, ...a.mlps];
  return {
    title: `Ablation ${tag}`,
    notes: [
      `${a.ablation} ablation of each head (attn.hook_z slice) and MLP (mlp.hook_post) at every position, over ${a.examples} examples, scored on the final answer's tokens and EOS teacher-forced after the completion's work; clean exact match ${fmt(a.clean.exact_match)}, answer log-prob ${fmt(a.clean.answer_logprob)}.`,
      `Important (exact match drops by more than ${a.threshold * 100}% of clean): ${a.important_heads.join(', ') || 'no head'}; ${a.important_mlps.join(', ') || 'no MLP'}. Top ${a.top_k} heads by log-prob drop: ${a.top_heads.join(', ')}.`,
    ],
    charts: [
      {
        title: 'drop in exact match (clean − ablated)',
        config: {
          type: 'bar',
          data: {
            labels: comps.map((x) => x.name),
            datasets: [{ label: 'exact match drop', data: comps.map((x) => fmt(x.drop_exact_match)), backgroundColor: '#d62728' }],
          },
        },
      },
      {
        title: 'drop in answer log-prob by rule family (nats), component x family',
        config: heatmap(
          a.by_family.families.map((f, i) => `${f} (${a.by_family.examples[i]})`),
          a.by_family.components,
          a.by_family.drop_logprob,
          Math.max(1e-6, ...a.by_family.drop_logprob.flat().map(Math.abs)),
          9,
        ),
        height: 60 + 18 * a.by_family.components.length,
      },
      {
        title: 'drop in answer log-prob (nats)',
        config: {
          type: 'bar',
          data: {
            labels: comps.map((x) => x.name),
            datasets: [{ label: 'log-prob drop', data: comps.map((x) => fmt(x.drop_logprob)), backgroundColor: '#1f77b4' }],
          },
        },
      },
    ],
  };
}

export function circuitsPage(r: CircuitsResult): string {
  const many = r.checkpoints.length > 1;
  const sections: StaticSection[] = [
    {
      title: 'Run',
      notes: [`data ${r.data}: ${r.examples} examples, seed ${r.seed}`],
      tables: [
        {
          columns: ['checkpoint', 'clean exact match', 'answer log-prob', 'probes s', 'patching s', 'ablation s'],
          rows: r.checkpoints.map((c) => [
            c.checkpoint,
            fmt(c.ablation.clean.exact_match),
            fmt(c.ablation.clean.answer_logprob),
            fmt(c.seconds.probes, 1),
            fmt(c.seconds.patching, 1),
            fmt(c.seconds.ablation, 1),
          ]),
        },
        ...(r.compare
          ? [
              {
                columns: ['Jaccard overlap (first vs second checkpoint)', 'value'],
                rows: [
                  ['important heads', fmt(r.compare.important_heads)],
                  ['top heads by log-prob drop', fmt(r.compare.top_heads)],
                  ['important MLPs', fmt(r.compare.important_mlps)],
                ] as (string | number)[][],
              },
            ]
          : []),
      ],
    },
  ];
  for (const [i, c] of r.checkpoints.entries()) {
    const tag = many ? `(${i === 0 ? 'A' : 'B'}: ${c.checkpoint})` : '';
    sections.push(probeSection(c, tag), patchSection(c, tag), ablationSection(c, tag));
  }
  return renderStaticPage('rlmesh circuits', sections);
}
