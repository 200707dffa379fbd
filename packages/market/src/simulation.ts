/**
 * Agents acting at their own pace. `run` is discrete-event and deterministic: the clock jumps to
 * the next agent due (ties in join order), the agent observes and acts, and its next turn comes a
 * jittered `paceMs` later, so a seed replays exactly whatever the agents' real latency.
 * `runRealtime` is the live form: the clock follows the wall clock times `speed`, every agent runs
 * its own loop, and a slow agent (a language model) acts on prices that moved while it thought.
 */
import { Rng } from '@rlmesh/core';
import type { ActResult, Market } from './market';
import type { Agent, AgentAnswer } from './strategies';
import { actText } from './text';

interface Slot {
  agent: Agent;
  nextMs: number;
  rng: Rng;
}

function gap(slot: Slot): number {
  return Math.max(1, Math.round(slot.agent.paceMs * (0.5 + slot.rng.uniform())));
}

/** Applies an agent's answer: an Action object, text for the parser, or null for no decision. */
export function apply(market: Market, agentId: string, answer: AgentAnswer): ActResult | null {
  if (answer === null) return null;
  return typeof answer === 'string' ? actText(market, agentId, answer) : market.act(agentId, answer);
}

export class Simulation {
  private readonly slots: Slot[] = [];
  private readonly rng: Rng;

  constructor(
    readonly market: Market,
    seed = market.config.seed,
  ) {
    this.rng = new Rng(seed);
  }

  /**
   * Joins the agent to the market (unless it holds an account already: a market restored by
   * replayDecisions); its first turn comes within one pace of now.
   */
  add(agent: Agent): this {
    if (!(agent.paceMs > 0) || !Number.isFinite(agent.paceMs))
      throw new Error(`agent ${agent.id}: paceMs must be a positive finite number, got ${agent.paceMs}`);
    if (this.slots.some((s) => s.agent.id === agent.id)) throw new Error(`agent ${JSON.stringify(agent.id)} is already in this simulation`);
    if (!this.market.agents.includes(agent.id)) this.market.join(agent.id);
    const slot = { agent, nextMs: 0, rng: this.rng.fork() };
    slot.nextMs = this.market.now + gap(slot);
    this.slots.push(slot);
    return this;
  }

  /** Runs every agent for `durationMs` of simulated time; returns the number of decisions. */
  async run(durationMs: number): Promise<number> {
    if (!Number.isFinite(durationMs) || durationMs < 0)
      throw new RangeError(`run: durationMs must be a finite number >= 0, got ${durationMs}`);
    const end = this.market.now + durationMs;
    let count = 0;
    for (;;) {
      let slot: Slot | undefined;
      for (const s of this.slots) if (s.nextMs <= end && (!slot || s.nextMs < slot.nextMs)) slot = s;
      if (!slot) break;
      this.market.advanceTo(slot.nextMs);
      const answer = await slot.agent.act(this.market.observe(slot.agent.id));
      if (apply(this.market, slot.agent.id, answer)) count++;
      slot.nextMs += gap(slot);
    }
    this.market.advanceTo(end);
    return count;
  }

  /**
   * Runs on the wall clock until `durationMs` of simulated time has passed or `signal` aborts.
   * Not reproducible: which prices an agent sees depends on how long it takes.
   */
  async runRealtime(durationMs: number, opts: { speed?: number; signal?: AbortSignal } = {}): Promise<number> {
    const speed = opts.speed ?? this.market.config.speed;
    const t0 = performance.now();
    const start = this.market.now;
    const end = start + durationMs;
    const stopped = () => opts.signal?.aborted === true || this.market.now >= end;
    const sync = () => this.market.advanceTo(Math.max(this.market.now, Math.min(end, start + (performance.now() - t0) * speed)));
    const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(1, ms)));
    const tick = Math.max(5, this.market.config.tick_ms / speed);
    const clock = setInterval(sync, tick);
    let count = 0;
    const loop = async (slot: Slot) => {
      await sleep((slot.nextMs - start) / speed);
      while (!stopped()) {
        sync();
        const answer = await slot.agent.act(this.market.observe(slot.agent.id));
        if (stopped()) break;
        sync();
        if (apply(this.market, slot.agent.id, answer)) count++;
        await sleep(gap(slot) / speed);
      }
    };
    try {
      await Promise.all(this.slots.map(loop));
    } finally {
      clearInterval(clock);
      for (const slot of this.slots) slot.nextMs = this.market.now + gap(slot);
    }
    return count;
  }
}
