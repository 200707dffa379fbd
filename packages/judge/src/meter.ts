/**
 * Totals over many judged windows: how many were scored, served from the cache or skipped (and
 * why), and the requests, tokens and money spent. A training loop records every result here.
 */
import type { JudgeResult } from './types';

export class JudgeMeter {
  scored = 0;
  cached = 0;
  skipped = 0;
  requests = 0;
  retries = 0;
  promptTokens = 0;
  completionTokens = 0;
  costUsd = 0;
  /** The latest skip reasons, newest last (at most 20). */
  readonly skipReasons: string[] = [];

  record(r: JudgeResult): JudgeResult {
    if (r.kind === 'skipped') {
      this.skipped++;
      this.skipReasons.push(`${r.windowId}: ${r.reason}`);
      if (this.skipReasons.length > 20) this.skipReasons.shift();
    } else if (r.cached) this.cached++;
    else this.scored++;
    this.requests += r.usage.requests;
    this.retries += Math.max(0, r.attempts - 1);
    this.promptTokens += r.usage.promptTokens;
    this.completionTokens += r.usage.completionTokens;
    this.costUsd += r.usage.costUsd;
    return r;
  }

  toJSON() {
    const { scored, cached, skipped, requests, retries, promptTokens, completionTokens, costUsd } = this;
    return { scored, cached, skipped, requests, retries, promptTokens, completionTokens, costUsd };
  }
}
