/**
 * Resuming `rlmesh babylon`: a re-run with the same config and a persistent archive continues after
 * the last iteration that finished, instead of starting over. The archive says which: each
 * iteration's GRPO records a trained model whose metrics carry `babylon_iteration` and whose path is
 * the learner's checkpoint under out_dir/grpo. From there the run takes
 *
 *   archive   everything the interrupted run recorded after that iteration discarded
 *             (Archive.discardFrom), so those windows are recorded again, once
 *   learner   that checkpoint (weights, optimizer state, update count, hence the policy version)
 *   market    the loop's seed with the archived decisions replayed up to the iteration's end
 *             (replayDecisions: accounts, ledgers and last results as they were)
 *   SFT       out_dir/sft.json: the initial model, not trained again
 *   metrics   out_dir/iterations.jsonl, one line per finished iteration
 *
 * What the archive does not hold starts afresh at the cut: the agents' turns are drawn again, and a
 * scripted strategy's own memory restarts (buy-and-hold's first turns buy with the cash it has left).
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { Archive } from '@rlmesh/archive';
import { ConfigError } from '@rlmesh/core';
import { type Market, type RecordedDecision, replayDecisions, windowIdOf } from '@rlmesh/market';
import type { BabylonConfig } from './babylon-config';
import type { BabylonResults, IterationMetrics } from './babylon-report';

const HOUR = 3_600_000;

/** The trained_models metric naming the loop iteration a model finished. */
export const ITERATION_METRIC = 'babylon_iteration';

export type SftOutcome = BabylonResults['sft'];

const configText = (cfg: BabylonConfig) => `${JSON.stringify(cfg, null, 2)}\n`;

/**
 * Whether out_dir holds an earlier run of this very config; with `resumable` (a persistent archive)
 * an out_dir holding another config's run is refused.
 */
export function earlierRun(out: string, cfg: BabylonConfig, resumable: boolean): boolean {
  const path = join(out, 'config.json');
  const earlier = existsSync(path) ? readFileSync(path, 'utf8') : null;
  if (resumable && earlier !== null && earlier !== configText(cfg))
    throw new ConfigError(
      'out_dir',
      `${path} holds another config's run; a run resumes only with the same config (give another out_dir and archive)`,
    );
  return earlier === configText(cfg);
}

/** Marks out_dir as this config's run (once its archive is known to be this loop's). */
export function recordConfig(out: string, cfg: BabylonConfig): void {
  writeFileSync(join(out, 'config.json'), configText(cfg));
}

export function readSft(out: string): SftOutcome | null {
  const path = join(out, 'sft.json');
  if (!existsSync(path)) return null;
  const sft = JSON.parse(readFileSync(path, 'utf8')) as SftOutcome;
  return existsSync(join(sft.final_checkpoint, 'config.json')) ? sft : null;
}

export function writeSft(out: string, sft: SftOutcome): void {
  writeFileSync(join(out, 'sft.json'), `${JSON.stringify(sft, null, 2)}\n`);
}

/** The last iteration the archive says finished, with its checkpoint; null when none did. */
export async function lastFinished(archive: Archive, out: string): Promise<{ iteration: number; checkpoint: string } | null> {
  const grpo = resolve(out, 'grpo') + sep;
  let best: { iteration: number; checkpoint: string } | null = null;
  for (const m of await archive.trainedModels()) {
    const iteration = m.metrics[ITERATION_METRIC];
    if (typeof iteration !== 'number' || !resolve(m.path).startsWith(grpo) || !existsSync(m.path)) continue;
    if (!best || iteration > best.iteration) best = { iteration, checkpoint: m.path };
  }
  return best;
}

/**
 * Joins `agentIds` (in the loop's order) to a fresh `market` of the loop's seed and replays every
 * archived decision before `untilMs`.
 */
export async function restoreMarket(archive: Archive, market: Market, agentIds: readonly string[], untilMs: number): Promise<number> {
  for (const id of agentIds) market.join(id);
  const origin = market.timeOf(0).getTime();
  const decisions: RecordedDecision[] = [];
  for (let w = 0; w < untilMs; w += HOUR)
    for (const t of await archive.trajectoriesOf(windowIdOf(market, w)))
      for (const [i, s] of t.steps.entries()) {
        if (typeof s.action !== 'string') throw new Error(`archive: trajectory ${t.id} step ${i} holds no action line to replay`);
        decisions.push({ agentId: t.agentId, atMs: Date.parse(s.at) - origin, action: s.action });
      }
  return replayDecisions(market, decisions, untilMs);
}

/** The metrics of iterations 1..upTo that out_dir/iterations.jsonl holds; later lines are dropped from the file. */
export function keepIterations(out: string, upTo: number): IterationMetrics[] {
  const path = join(out, 'iterations.jsonl');
  const kept = existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as IterationMetrics)
        .filter((m) => m.iteration <= upTo)
    : [];
  writeFileSync(path, kept.map((m) => `${JSON.stringify(m)}\n`).join(''));
  return kept;
}

export function appendIteration(out: string, m: IterationMetrics): void {
  appendFileSync(join(out, 'iterations.jsonl'), `${JSON.stringify(m)}\n`);
}
