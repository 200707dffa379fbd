/**
 * A policy service's open runs by key (inference runs for Act, decode loops for Generate): each is
 * opened by its first request and shared by the ones that follow; a failed open is not kept, so the
 * next request tries again (the learner may publish meanwhile); and a run that no request has used
 * for `idleCloseMs` is closed, because runs end and start all the time and each open one holds a
 * worker thread and its weights. The next request opens it again.
 */
import { unavailable } from '@rlmesh/mesh';

export interface Closable {
  close(reason: Error): Promise<void>;
}

export class OpenRuns<R extends Closable> {
  private readonly runs = new Map<string, Promise<R>>();
  /** Per open run: requests in progress, and when the last one ended. */
  private readonly use = new Map<string, { active: number; last: number }>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    /** What a run is, for the reason an idle one is closed with ("policy", "generator"). */
    private readonly what: string,
    private readonly idleCloseMs: number,
  ) {
    this.sweeper = setInterval(() => this.closeIdle(), Math.max(20, idleCloseMs / 2)).unref();
  }

  /** The run under `key` if it is open or opening; never opens one. */
  peek(key: string): Promise<R> | undefined {
    return this.runs.get(key);
  }

  /** Runs `fn` on the key's run, opening it with `open` first if needed; meanwhile it counts as in use. */
  async with<T>(key: string, open: () => Promise<R>, fn: (run: R) => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable('policy service is closing');
    this.mark(key, +1);
    try {
      let opening = this.runs.get(key);
      if (!opening) {
        const p = open();
        opening = p;
        this.runs.set(key, p);
        p.catch(() => this.runs.get(key) === p && this.runs.delete(key));
      }
      return await fn(await opening);
    } finally {
      this.mark(key, -1);
    }
  }

  /** Closes the key's run with `reason` (when it is still `only`, if given); the next request opens it again. */
  discard(key: string, reason: Error, only?: Promise<R>): void {
    const opening = this.runs.get(key);
    if (!opening || (only && opening !== only)) return;
    this.runs.delete(key);
    void opening.then((r) => r.close(reason)).catch(() => undefined);
  }

  /** Closes every run; requests in flight and new ones fail with UNAVAILABLE. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    const runs = [...this.runs.values()];
    this.runs.clear();
    const reason = unavailable('policy service is closing');
    await Promise.all(runs.map((p) => p.then((r) => r.close(reason)).catch(() => undefined)));
  }

  private mark(key: string, delta: 1 | -1): void {
    const u = this.use.get(key) ?? { active: 0, last: 0 };
    u.active += delta;
    u.last = Date.now();
    this.use.set(key, u);
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const key of this.runs.keys()) {
      const u = this.use.get(key);
      if (!u) {
        // Opened without a request (none yet): its idle time starts now.
        this.use.set(key, { active: 0, last: now });
        continue;
      }
      if (u.active > 0 || now - u.last < this.idleCloseMs) continue;
      this.use.delete(key);
      this.discard(key, unavailable(`the run was idle and its ${this.what} was closed`));
    }
  }
}
