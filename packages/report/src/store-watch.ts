/**
 * Follows an evaluation store for the dashboard (the mesh's: NATS KV summaries plus one object per
 * result): lists it every few seconds, fetches results it has not seen, and hands the hub the whole
 * set when it changed. The store interface is the evaluator's, so any store it writes can be shown.
 */
import type { EvaluationResult } from '@rlmesh/core';
import type { EvaluationStore } from '@rlmesh/evaluator';
import type { DashboardHub } from './hub';

export class StoreWatcher {
  private readonly results = new Map<string, EvaluationResult>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private failing = false;

  constructor(
    private readonly store: Pick<EvaluationStore, 'list' | 'get'>,
    private readonly hub: DashboardHub,
    private readonly source = 'store',
    private readonly log: (line: string) => void = (l) => console.error(l),
  ) {}

  start(intervalMs = 2000): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One listing; a failure (the bus away) is logged once and retried on the next poll. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const ids = (await this.store.list()).map((s) => s.id);
      let changed = false;
      for (const id of ids) {
        if (this.results.has(id)) continue;
        const r = await this.store.get(id);
        if (r) {
          this.results.set(id, r);
          changed = true;
        }
      }
      for (const id of [...this.results.keys()]) if (!ids.includes(id)) changed = this.results.delete(id) || changed;
      if (changed) this.hub.setEvaluations(this.source, [...this.results.values()]);
      this.failing = false;
    } catch (e) {
      if (!this.failing) this.log(`rlmesh dashboard: cannot list evaluations (${(e as Error).message}); retrying`);
      this.failing = true;
    } finally {
      this.polling = false;
    }
  }
}
