/**
 * The dashboard's state, without transport: runs (rows as they arrive) and evaluations (by the
 * source that holds them), and the subscribers that receive every change as an event. The watchers
 * (run directories, the learner's WatchRun) feed it; the HTTP adapter turns events into SSE.
 */
import type { EvaluationResult } from '@rlmesh/core';
import type { MetricRow, RunData } from './data';
import { curveGroups } from './layout';
import { type EvaluationsView, evaluationsView, type RunView, runView, samplesOf } from './view';

/** `run`: a run whole (new, reset or with new curves); `samples`: rows appended; `evaluations`: all of them. */
export type HubEvent =
  | { type: 'run'; data: RunView }
  | { type: 'samples'; data: { name: string; samples: RunView['samples']; state?: string } }
  | { type: 'evaluations'; data: EvaluationsView };

export type Subscriber = (e: HubEvent) => void;

export class DashboardHub {
  private readonly runs = new Map<string, { data: RunData; view: RunView; keys: Set<string> }>();
  private readonly evaluationsBySource = new Map<string, EvaluationResult[]>();
  private evaluations: EvaluationsView = evaluationsView([]);
  private readonly subscribers = new Set<Subscriber>();

  /** Sends the current state to a new subscriber, then every change; returns the unsubscribe call. */
  subscribe(s: Subscriber): () => void {
    for (const r of this.runs.values()) s({ type: 'run', data: r.view });
    s({ type: 'evaluations', data: this.evaluations });
    this.subscribers.add(s);
    return () => this.subscribers.delete(s);
  }

  /** Adds or replaces a run with all its rows. */
  setRun(run: RunData): void {
    const view = runView(run);
    this.runs.set(run.name, { data: { ...run, rows: [...run.rows] }, view, keys: keysOf(view) });
    this.emit({ type: 'run', data: view });
  }

  /** Appends rows (and a new state) to a run; a row with a curve the run had not logged re-lays it out. */
  appendRows(name: string, rows: readonly MetricRow[], state?: string): void {
    const r = this.runs.get(name);
    if (!r) {
      this.setRun({ name, source: 'dir', rows: [...rows], state });
      return;
    }
    r.data.rows.push(...rows);
    if (state !== undefined) r.data.state = r.view.state = state;
    const fresh = curveGroups(rows).some((g) => g.series.some((s) => !r.keys.has(s.key)));
    if (fresh) {
      this.setRun(r.data);
      return;
    }
    const samples = samplesOf(rows, r.view.layout);
    r.view.samples.push(...samples);
    this.emit({ type: 'samples', data: { name, samples, state } });
  }

  /** Replaces the evaluations one source (a run directory, the learner) holds. */
  setEvaluations(source: string, results: readonly EvaluationResult[]): void {
    this.evaluationsBySource.set(source, [...results]);
    const byId = new Map<string, EvaluationResult>();
    for (const list of this.evaluationsBySource.values()) for (const e of list) byId.set(e.id, e);
    this.evaluations = evaluationsView([...byId.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : 1)));
    this.emit({ type: 'evaluations', data: this.evaluations });
  }

  snapshot(): { runs: RunView[]; evaluations: EvaluationsView } {
    return { runs: [...this.runs.values()].map((r) => r.view), evaluations: this.evaluations };
  }

  private emit(e: HubEvent): void {
    for (const s of this.subscribers) s(e);
  }
}

function keysOf(view: RunView): Set<string> {
  return new Set(view.layout.flatMap((g) => g.series.map((s) => s.key)));
}
