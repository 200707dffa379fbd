/**
 * What `rlmesh cycle` reports, from what its stages left on disk: per cycle (0 = the SFT model) the
 * verifier's components over the sampled completions of the capture (the same prompts each cycle),
 * the SAE's held-out L0, MSE and explained variance, GRPO's reward from the env's components alone
 * (summary.json's reward_start and reward_end: feature rewards left out) over its first and last
 * updates, and the feature sets picked for the next cycle. results.json, and report.html drawn by
 * @rlmesh/report: a table per cycle and one chart per quantity with the cycle on x.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CurveGroup, renderPage, type Sample } from '@rlmesh/report';
import { type CyclePlan, cycleDirs } from './cycle-config';

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

export interface CycleRow {
  cycle: number;
  checkpoint: string;
  completions: number;
  /** Mean of every verifier component over the capture's completions (valid_json is the valid-JSON rate). */
  verifier: Record<string, number>;
  refused: number;
  sae: { l0: number; mse: number; explained_variance: number; dead_fraction: number };
  rl: { updates: number; reward_start: number; reward_end: number; seconds: number } | null;
  features: { target: string; bonus: { feature: number; r: number }[]; penalty: { feature: number; r: number }[] };
}

export function cycleRows(plan: CyclePlan): CycleRow[] {
  const rows: CycleRow[] = [];
  for (let c = 0; c <= plan.cfg.cycles; c++) {
    const dirs = cycleDirs(plan, c);
    const cap = readJson(join(dirs.capture, 'capture.json'));
    const sae = readJson(join(dirs.sae, 'rlmesh_sae.json')).metrics;
    const analysis = readJson(dirs.analysis);
    const rlSummary = join(dirs.rl, 'summary.json');
    const rl = c > 0 && existsSync(rlSummary) ? readJson(rlSummary) : null;
    rows.push({
      cycle: c,
      checkpoint: cap.checkpoint,
      completions: cap.completions,
      verifier: cap.means,
      refused: cap.refused,
      sae: { l0: sae.l0, mse: sae.mse, explained_variance: sae.explained_variance, dead_fraction: sae.dead_fraction },
      rl: rl && { updates: rl.updates, reward_start: rl.reward_start, reward_end: rl.reward_end, seconds: rl.seconds },
      features: { target: analysis.target, bonus: analysis.bonus, penalty: analysis.penalty },
    });
  }
  return rows;
}

export function writeCycleResults(plan: CyclePlan) {
  const rows = cycleRows(plan);
  const components = Object.keys(rows[0].verifier);
  const first = rows[0].verifier;
  const last = rows[rows.length - 1].verifier;
  const sentence =
    `${plan.cfg.capture.generations} sampled completions of each of the same ${plan.cfg.capture.prompts} prompts: valid JSON ` +
    `${(100 * first.valid_json).toFixed(1)}% -> ${(100 * last.valid_json).toFixed(1)}%, total reward ${first.total.toFixed(3)} -> ${last.total.toFixed(3)} ` +
    `from the SFT model (cycle 0) to cycle ${rows.length - 1}.`;
  const results = { config: plan.cfg, sentence, cycles: rows };
  const resultsFile = join(plan.cfg.out_dir, 'results.json');
  writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);

  const layout: CurveGroup[] = [
    {
      id: 'verifier',
      title: 'verifier components over the sampled completions (x: cycle)',
      series: components.map((c) => ({ key: c, label: c, points: true })),
    },
    { id: 'sae', title: "the cycle's SAE on held-out rows", series: [{ key: 'sae.l0', label: 'L0', points: true }] },
    { id: 'sae_mse', title: "the cycle's SAE: reconstruction MSE", series: [{ key: 'sae.mse', label: 'MSE', points: true }] },
    {
      id: 'rl',
      title: "GRPO: the env's reward (feature rewards left out) over its sampled completions, first and last updates",
      series: [
        { key: 'rl.start', label: 'first updates', points: true },
        { key: 'rl.end', label: 'last updates', points: true },
      ],
    },
  ];
  const samples: Sample[] = rows.map((r) => ({
    x: r.cycle,
    v: {
      ...r.verifier,
      'sae.l0': r.sae.l0,
      'sae.mse': r.sae.mse,
      ...(r.rl ? { 'rl.start': r.rl.reward_start, 'rl.end': r.rl.reward_end } : {}),
    },
  }));
  const f3 = (x: number) => x.toFixed(3);
  const html = renderPage({
    title: 'rlmesh cycle: storyworld SAE <-> RL',
    live: false,
    summary: {
      headline: sentence,
      columns: ['cycle', ...components, 'SAE L0', 'SAE MSE', 'GRPO env reward', 'bonus latents', 'penalty latents'],
      rows: rows.map((r) => [
        String(r.cycle),
        ...components.map((c) => f3(r.verifier[c])),
        r.sae.l0.toFixed(2),
        r.sae.mse.toFixed(4),
        r.rl ? `${f3(r.rl.reward_start)} -> ${f3(r.rl.reward_end)}` : '(SFT)',
        r.features.bonus.map((b) => `${b.feature} (${b.r.toFixed(2)})`).join(', ') || 'none',
        r.features.penalty.map((b) => `${b.feature} (${b.r.toFixed(2)})`).join(', ') || 'none',
      ]),
      notes: [
        `Cycle 0 is the SFT model; cycle c trains GRPO from cycle c-1's policy with cycle c-1's latents as feature rewards (target component ${plan.cfg.features.target}, weight ${plan.cfg.features.weight} per set). Latents are numbered within each cycle's own SAE.`,
      ],
    },
    runs: [{ name: 'cycles', source: 'dir', layout, samples, x_label: 'cycle' }],
    evaluations: null,
    generated_at: new Date().toISOString(),
  });
  const reportFile = join(plan.cfg.out_dir, 'report.html');
  writeFileSync(reportFile, html);
  return { results, resultsFile, reportFile };
}
