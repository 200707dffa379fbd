/**
 * The promotion gate. For every run whose config has an `eval` section with `every` > 0 (read from
 * the run's announcement, KV run.<run>), the gate follows the run's policy pointer, evaluates
 * versions 1, 1 + every, 1 + 2 * every, ... on the run's suite, and moves KV promoted.<run> to a
 * version only when the run's rule holds:
 *   none           every evaluated version is promoted;
 *   not_dominated  promoted unless the currently promoted version's evaluation (or, before any
 *                  promotion, the baseline's) dominates it; with neither, the first evaluated
 *                  version is promoted;
 *   beats_baseline promoted only when it dominates the baseline evaluation.
 * A promoted version's parameters are copied to their own object, because the learner deletes old
 * parameter objects. What the gate decided for a run is kept in KV gate.<run> (GateState).
 */

import { readFileSync } from 'node:fs';
import { type EvaluationResult, parseConfigText } from '@rlmesh/core';
import type { RunConfig } from '@rlmesh/learner';
import {
  type Bus,
  decodeAnnouncement,
  decodeJson,
  encodeJson,
  encodePolicyPointer,
  keys,
  type Logger,
  objects,
  parsePolicyPointer,
  type Subscription,
} from '@rlmesh/mesh';
import { dominates } from './compare';
import { resolvePointer } from './remote-policy';
import type { EvaluatorCore } from './service';
import type { Suite } from './suite';

export type GateRule = RunConfig['eval']['gate'];

export const gateKeys = { state: (run: string) => `gate.${run}` };

/** The gate's record of one run, in KV gate.<run>. */
export interface GateState {
  rule: GateRule;
  /** The last version evaluated, its evaluation, and whether it was promoted (and why). */
  last_version: number;
  last_evaluation: string;
  last_promoted: boolean;
  last_reason: string;
  /** The promoted version and its evaluation (0 and "" before any promotion). */
  promoted_version: number;
  promoted_evaluation: string;
}

interface RunGate {
  cfg: RunConfig['eval'];
  suite: Suite;
  watch: Subscription;
  /** The newest eligible version seen and not yet taken up. */
  pending: number;
  /** The policy watch is in place. */
  ready: boolean;
  busy: Promise<void>;
}

export interface PromotionGateOptions {
  bus: Bus;
  core: EvaluatorCore;
  logger: Logger;
}

export class PromotionGate {
  private readonly runs = new Map<string, RunGate>();
  private runWatch: Subscription | null = null;
  private stopped = false;

  private constructor(private readonly opts: PromotionGateOptions) {}

  static async start(opts: PromotionGateOptions): Promise<PromotionGate> {
    const gate = new PromotionGate(opts);
    gate.runWatch = await opts.bus.kv.watch(`${keys.runs}>`, (key, value) => {
      if (value) gate.onAnnouncement(key.slice(keys.runs.length), value).catch((e) => gate.warn(key, 'run not gated', e));
    });
    return gate;
  }

  /** Whether the gate follows `run` (its announcement had an eval section and its suite parsed). */
  isGating(run: string): boolean {
    return this.runs.get(run)?.ready === true;
  }

  /** Resolves once every evaluation the gate has started has ended (tests and shutdown wait on it). */
  async idle(): Promise<void> {
    await Promise.all([...this.runs.values()].map((r) => r.busy));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.runWatch?.stop();
    for (const r of this.runs.values()) await r.watch.stop();
    await this.idle();
  }

  private warn(run: string, what: string, e: unknown): void {
    this.opts.logger.warn(what, { run, error: (e as Error)?.message ?? String(e) });
  }

  private async onAnnouncement(run: string, value: Uint8Array): Promise<void> {
    if (this.stopped || this.runs.has(run)) return;
    const a = decodeAnnouncement(value);
    if (!a.config) return;
    const cfg = (JSON.parse(a.config) as Partial<RunConfig>).eval;
    if (!cfg || cfg.every < 1) return;
    const suiteRaw =
      Object.keys(cfg.suite_inline).length > 0 ? cfg.suite_inline : parseConfigText(readFileSync(cfg.suite, 'utf8'), 'eval.suite');
    const suite = this.opts.core.parseSuite(suiteRaw);
    const entry: RunGate = { cfg, suite, watch: { stop: async () => undefined }, pending: 0, ready: false, busy: Promise.resolve() };
    this.runs.set(run, entry);
    entry.watch = await this.opts.bus.kv.watch(keys.policy(run), (_k, v) => {
      if (!v || this.stopped) return;
      let version: number;
      try {
        version = parsePolicyPointer(v).version;
      } catch (e) {
        return this.warn(run, 'ignoring malformed policy pointer', e);
      }
      if ((version - 1) % cfg.every !== 0 || version <= entry.pending) return;
      entry.pending = version;
      // One evaluation at a time per run; versions that arrive meanwhile collapse into the newest.
      entry.busy = entry.busy.then(() => this.take(run, entry));
    });
    entry.ready = true;
    this.opts.logger.info('gating run', { run, every: cfg.every, rule: cfg.gate, suite: suite.name });
  }

  private async take(run: string, entry: RunGate): Promise<void> {
    const version = entry.pending;
    if (this.stopped) return;
    const state = await this.state(run, entry.cfg.gate);
    if (version <= state.last_version) return;
    try {
      await this.decide(run, version, entry, state);
    } catch (e) {
      this.warn(run, 'version not evaluated', e);
    }
  }

  private async state(run: string, rule: GateRule): Promise<GateState> {
    const bytes = await this.opts.bus.kv.get(gateKeys.state(run));
    if (bytes) return decodeJson<GateState>(bytes);
    return {
      rule,
      last_version: 0,
      last_evaluation: '',
      last_promoted: false,
      last_reason: '',
      promoted_version: 0,
      promoted_evaluation: '',
    };
  }

  private async decide(run: string, version: number, entry: RunGate, state: GateState): Promise<void> {
    const { core, bus, logger } = this.opts;
    const result = await core.evaluate({ suite: entry.suite, policy: { run_id: run, version, label: `${run} v${version}` } });
    const { promote, reason } = await this.rule(entry.cfg, result, state);
    const next: GateState = { ...state, last_version: version, last_evaluation: result.id, last_promoted: promote, last_reason: reason };
    if (promote) {
      const pointer = await resolvePointer(bus, { run_id: run, version });
      const params = await bus.objects.get(pointer.params);
      if (!params) throw new Error(`object ${pointer.params} vanished before promotion`);
      const kept = objects.promotedParams(run, version);
      await bus.objects.put(kept, params);
      await bus.kv.put(keys.promoted(run), encodePolicyPointer({ ...pointer, params: kept }));
      if (state.promoted_version > 0) await bus.objects.delete(objects.promotedParams(run, state.promoted_version));
      next.promoted_version = version;
      next.promoted_evaluation = result.id;
    }
    await bus.kv.put(gateKeys.state(run), encodeJson(next));
    logger.info(promote ? 'version promoted' : 'version not promoted', {
      run,
      version,
      evaluation: result.id,
      success_rate: result.aggregate.all.success_rate,
      reason,
    });
  }

  private async rule(cfg: RunConfig['eval'], candidate: EvaluationResult, state: GateState): Promise<{ promote: boolean; reason: string }> {
    if (cfg.gate === 'none') return { promote: true, reason: 'gate none promotes every evaluated version' };
    const baseline = cfg.baseline ? await this.baseline(cfg.baseline, candidate.suite) : null;
    if (cfg.gate === 'beats_baseline') {
      if (!baseline)
        return { promote: false, reason: `baseline "${cfg.baseline}" is not a stored evaluation of suite "${candidate.suite}"` };
      return dominates(candidate, baseline)
        ? { promote: true, reason: `dominates baseline ${baseline.id}` }
        : { promote: false, reason: `does not dominate baseline ${baseline.id}` };
    }
    const promoted = state.promoted_evaluation ? await this.opts.core.store.get(state.promoted_evaluation) : null;
    const reference = promoted ?? baseline;
    if (!reference) return { promote: true, reason: 'first evaluated version, no baseline' };
    const which = promoted ? `promoted version ${state.promoted_version} (${reference.id})` : `baseline ${reference.id}`;
    return dominates(reference, candidate)
      ? { promote: false, reason: `dominated by ${which}` }
      : { promote: true, reason: `not dominated by ${which}` };
  }

  /** An evaluation id, or the newest stored evaluation of the suite with that label. */
  private async baseline(idOrLabel: string, suite: string): Promise<EvaluationResult | null> {
    const store = this.opts.core.store;
    const byId = await store.get(idOrLabel);
    if (byId) return byId.suite === suite ? byId : null;
    const labelled = (await store.list({ suite })).filter((s) => s.policy.label === idOrLabel).at(-1);
    return labelled ? store.get(labelled.id) : null;
  }
}
