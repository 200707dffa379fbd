/**
 * The feature analysis as one self-contained HTML page (packages/report's static page): the
 * information ranking, the strongest feature per label, ID vs OOD density, the matching against
 * another SAE, and a table of the top features with their top examples in context.
 */
import { renderStaticPage, type StaticSection } from '@rlmesh/report';
import type { FeatureExample, FeaturesReport } from './features';

const f3 = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(3)) : String(x));

function exampleText(e: FeatureExample): string {
  if (e.window) return `${e.window.before}[[${e.window.token}]]${e.window.after}`;
  const ctx = e.context;
  const parts = ['action', 'step', 'level'].filter((k) => ctx[k] !== undefined).map((k) => `${k} ${ctx[k]}`);
  if (e.observation) parts.unshift(`obs [${e.observation.map((v) => f3(v)).join(', ')}]`);
  return parts.join(', ');
}

export function featuresPage(report: FeaturesReport, title = `SAE features: ${report.sae.hook}`): string {
  const mi = report.mutual_information;
  const byMi = mi.top.slice(0, 30);
  const sections: StaticSection[] = [
    {
      title: 'The SAE and the rows',
      notes: [
        `${report.sae.architecture} SAE, d_in ${report.sae.d_in}, d_sae ${report.sae.d_sae}, hook ${report.sae.hook}; ` +
          `${report.store.rows_used} of ${report.store.rows} rows (${report.store.positions} positions) from ${report.store.source}.`,
      ],
    },
    {
      title: 'I(z; a | s): information each feature carries about the action given the state',
      notes: [
        `Estimator: ${mi.estimator}. State key ${mi.state} (${mi.states} values), action key ${mi.action} (${mi.actions} values), ` +
          `${mi.cells} (state, action) cells over ${mi.rows} rows. H(A | S) = ${f3(mi.h_action_given_state_bits)} bits bounds every feature.`,
      ],
      charts: [
        {
          title: 'Top features by I(z; a | s), bits',
          config: {
            type: 'bar',
            data: {
              labels: byMi.map((m) => `f${m.feature}`),
              datasets: [{ label: 'I(z; a | s)', data: byMi.map((m) => m.mi_bits), backgroundColor: '#2f6fdf' }],
            },
          },
        },
      ],
    },
    {
      title: 'Labels: the most correlated feature per label',
      notes: ['Pearson r with the activation (point-biserial for an indicator label=value), over all rows carrying the label.'],
      charts: [
        {
          title: 'Largest |r| per label',
          height: Math.max(260, 16 * report.correlations.length),
          config: {
            type: 'bar',
            data: {
              labels: report.correlations.map((c) => `${c.label} (f${c.top[0]?.feature})`),
              datasets: [{ label: 'r', data: report.correlations.map((c) => c.top[0]?.r ?? 0), backgroundColor: '#2a9d5c' }],
            },
            options: { indexAxis: 'y' },
          },
        },
      ],
      tables: [
        {
          columns: ['label', 'kind', 'rows', 'top features (r)'],
          rows: report.correlations.map((c) => [
            c.label,
            c.kind,
            c.rows,
            c.top
              .slice(0, 5)
              .map((t) => `f${t.feature} (${f3(t.r)})`)
              .join(', '),
          ]),
        },
      ],
    },
  ];
  if (report.stability.length > 0)
    sections.push({
      title: 'ID vs OOD: feature density',
      notes: report.stability.map(
        (s) =>
          `${s.name}: ${s.changed} of ${s.considered} features (firing on >= 5 rows of ID + OOD) change density by more than ${s.factor}x ` +
          `(${f3(100 * s.changed_fraction)}%); stable fraction ${f3(s.stable_fraction)}.`,
      ),
      charts: report.stability.map((s) => ({
        title: `${s.name}: frequency on OOD vs ID (log scale), one point per feature`,
        config: {
          type: 'scatter',
          data: {
            datasets: [
              {
                label: 'features',
                data: report.features.flatMap((f) =>
                  f.frequency > 0 && s.frequency_ood[f.feature] > 0 ? [{ x: f.frequency, y: s.frequency_ood[f.feature] }] : [],
                ),
                backgroundColor: 'rgba(224, 88, 43, 0.6)',
              },
            ],
          },
          options: {
            scales: {
              x: { type: 'logarithmic', title: { display: true, text: 'ID' } },
              y: { type: 'logarithmic', title: { display: true, text: s.name } },
            },
          },
        },
      })),
      tables: report.stability.map((s) => ({
        columns: [`${s.name}: feature`, 'frequency ID', 'frequency OOD', 'ratio', 'mean active ID', 'mean active OOD'],
        rows: s.most_changed.map((m) => [
          `f${m.feature}`,
          f3(m.frequency_id),
          f3(m.frequency_ood),
          f3(m.ratio),
          f3(m.mean_id),
          f3(m.mean_ood),
        ]),
      })),
    });
  if (report.matching) {
    const m = report.matching;
    const line = (what: string, s: { above_0_9: number; above_0_7: number; mean_cosine: number }) =>
      `${what}: ${f3(100 * s.above_0_9)}% above cosine 0.9, ${f3(100 * s.above_0_7)}% above 0.7, mean ${f3(s.mean_cosine)}.`;
    sections.push({
      title: `Matching against ${m.other} (decoder cosine)`,
      notes: [
        `${m.features_a} features here, ${m.features_b} there.`,
        line('best match (many-to-one)', m.best),
        m.one_to_one ? line(`one-to-one (${m.one_to_one.method})`, m.one_to_one) : 'one-to-one: skipped (the cosine matrix is too large).',
      ],
    });
  }
  const shown = new Set<number>([
    ...byMi.slice(0, 20).map((m) => m.feature),
    ...report.correlations.flatMap((c) => c.top.slice(0, 1).map((t) => t.feature)),
  ]);
  sections.push({
    title: 'Top features and their top-activating examples',
    notes: ['The features ranked highest by I(z; a | s) and each label’s best feature; text examples mark the token as [[token]].'],
    tables: [
      {
        columns: ['feature', 'frequency', 'mean active', 'I(z; a | s) bits', 'best label (r)', 'top examples (activation: context)'],
        rows: [...shown].map((j) => {
          const f = report.features[j];
          return [
            `f${j}`,
            f3(f.frequency),
            f3(f.mean_active),
            f3(f.mi_bits),
            f.best_label ? `${f.best_label.label} (${f3(f.best_label.r)})` : '',
            f.examples
              .slice(0, 4)
              .map((e) => `${f3(e.value)}: ${exampleText(e)}`)
              .join(' | '),
          ];
        }),
      },
    ],
  });
  return renderStaticPage(title, sections);
}
