/**
 * `rlmesh babylon`'s results (results.json) and their page (report.html).
 */
import type { WindowGrpoResult } from '@rlmesh/learner';
import { renderStaticPage } from '@rlmesh/report';
import type { BabylonConfig } from './babylon-config';

export interface IterationMetrics {
  iteration: number;
  version: number;
  windows: number;
  /** Mean over windows of the judge's (max - min) score within a window. */
  judge_spread: number;
  lm_pnl_mean: number;
  lm_score_mean: number;
  scripted_pnl_mean: number;
  lm_refused_frac: number;
  lm_decisions: number;
  prompt_tokens: number;
  completion_tokens: number;
  grpo: Omit<WindowGrpoResult, 'updates'> & { loss: number; kl: number; ratio_mean: number; reward_std: number };
  seconds: number;
}

export interface PnlInterval {
  mean: number;
  lo: number;
  hi: number;
  n: number;
}

export interface BabylonResults {
  config: BabylonConfig;
  sft: { examples: number; final_checkpoint: string; seconds: number };
  /** Iterations an earlier, interrupted run of this config finished (0 for a run from the start). */
  resumed_after: number;
  iterations: IterationMetrics[];
  eval: {
    seeds: number[];
    interval: string;
    initial: PnlInterval & { refused_frac: number };
    trained: PnlInterval & { refused_frac: number };
    difference: PnlInterval;
  };
  seconds: number;
}

export function reportPage(r: BabylonResults): string {
  const its = r.iterations;
  const line = (label: string, data: number[]) => ({ label, data, tension: 0 });
  const chart = (title: string, datasets: ReturnType<typeof line>[]) => ({
    title,
    config: { type: 'line', data: { labels: its.map((m) => m.iteration), datasets } },
  });
  const e = r.eval;
  const row = (name: string, x: PnlInterval, refused?: number) => [
    name,
    Number(x.mean.toFixed(3)),
    Number(x.lo.toFixed(3)),
    Number(x.hi.toFixed(3)),
    x.n,
    refused === undefined ? '' : `${(100 * refused).toFixed(1)}%`,
  ];
  return renderStaticPage("rlmesh babylon: Babylon's loop", [
    {
      title: 'Iterations',
      notes: [
        `${its.length} iterations of ${r.config.loop.hours} simulated hours; ${r.config.agents.lm} LM traders and ${r.config.agents.scripted} scripted; judge ${r.config.loop.judge}; ${r.seconds.toFixed(0)} s in all.`,
        ...(r.resumed_after > 0
          ? [
              `Resumed after iteration ${r.resumed_after}, which an earlier, interrupted run of this config finished (its seconds are that run's).`,
            ]
          : []),
      ],
      charts: [
        chart("LM traders' P&L per hour", [
          line(
            'LM',
            its.map((m) => m.lm_pnl_mean),
          ),
          line(
            'scripted',
            its.map((m) => m.scripted_pnl_mean),
          ),
        ]),
        chart('judge', [
          line(
            'LM score mean',
            its.map((m) => m.lm_score_mean),
          ),
          line(
            'spread in a window',
            its.map((m) => m.judge_spread),
          ),
        ]),
        chart('LM refused (invalid) actions', [
          line(
            'fraction',
            its.map((m) => m.lm_refused_frac),
          ),
        ]),
        chart('GRPO', [
          line(
            'loss',
            its.map((m) => m.grpo.loss),
          ),
          line(
            'reward std',
            its.map((m) => m.grpo.reward_std),
          ),
        ]),
        chart('tokens', [
          line(
            'completion',
            its.map((m) => m.completion_tokens),
          ),
          line(
            'prompt / 100',
            its.map((m) => m.prompt_tokens / 100),
          ),
        ]),
      ],
      tables: [
        {
          columns: ['iteration', 'version', 'LM P&L', 'LM score', 'refused', 'spread', 'GRPO windows', 'rows', 'loss', 'seconds'],
          rows: its.map((m) => [
            m.iteration,
            m.version,
            Number(m.lm_pnl_mean.toFixed(2)),
            Number(m.lm_score_mean.toFixed(3)),
            Number(m.lm_refused_frac.toFixed(3)),
            Number(m.judge_spread.toFixed(3)),
            m.grpo.trainedWindows,
            m.grpo.rows,
            Number(m.grpo.loss.toFixed(4)),
            Number(m.seconds.toFixed(1)),
          ]),
        },
      ],
    },
    {
      title: 'Held-out markets',
      notes: [`seeds ${e.seeds.join(', ')}; ${e.interval}.`],
      tables: [
        {
          columns: ['model', 'mean P&L per trader-hour', '2.5%', '97.5%', 'n', 'refused'],
          rows: [
            row('initial (SFT)', e.initial, e.initial.refused_frac),
            row('trained', e.trained, e.trained.refused_frac),
            row('trained - initial', e.difference),
          ],
        },
      ],
    },
  ]);
}
