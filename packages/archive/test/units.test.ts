/** The archive's pure parts: clock windows, the dropout rule, and the ART conversation. */
import { describe, expect, it } from 'vitest';
import {
  applyDropout,
  conversationOf,
  dropoutRate,
  isChoice,
  type StoredLlmCall,
  type StoredTrajectory,
  windowBounds,
  windowId,
} from '../src';

describe('windowId', () => {
  it('names the UTC window that holds an instant, for every length that divides 24 hours', () => {
    const t = new Date('2026-12-02T07:59:59.999Z');
    expect(windowId(t)).toBe('2026-12-02T07:00Z');
    expect(windowId(new Date('2026-12-02T08:00:00Z'))).toBe('2026-12-02T08:00Z');
    expect(windowId(t, 2)).toBe('2026-12-02T06:00Z');
    expect(windowId(t, 6)).toBe('2026-12-02T06:00Z');
    expect(windowId(new Date('2026-12-02T23:30:00+05:00'), 24)).toBe('2026-12-02T00:00Z');
    expect(windowBounds('2026-12-02T06:00Z', 6)).toEqual({
      start: new Date('2026-12-02T06:00:00Z'),
      end: new Date('2026-12-02T12:00:00Z'),
    });
  });

  it('refuses lengths that do not divide a day, invalid dates and misaligned ids', () => {
    expect(() => windowId(new Date(), 5)).toThrow('hours: must divide 24 (one of 1, 2, 3, 4, 6, 8, 12, 24), got 5');
    expect(() => windowId(new Date(Number.NaN))).toThrow('at: must be a valid Date');
    expect(() => windowBounds('2026-12-02T07:00Z', 2)).toThrow(/on a 2-hour boundary/);
    expect(() => windowBounds('2026-12-02 07:00')).toThrow(/expected YYYY-MM-DDTHH:00Z/);
    expect(() => windowBounds('2026-13-02T07:00Z')).toThrow(/expected YYYY-MM-DDTHH:00Z/);
  });
});

describe('dropout', () => {
  it('follows the rule min(cap, 1 - target / available) with the cap at 30%', () => {
    expect(dropoutRate(5000, 1000)).toBe(0.3);
    expect(dropoutRate(1200, 1000)).toBeCloseTo(1 / 6, 12);
    expect(dropoutRate(1000, 1000)).toBe(0);
    expect(dropoutRate(10, 1000)).toBe(0);
    expect(dropoutRate(5000, 1000, 0.5)).toBe(0.5);
    expect(() => dropoutRate(10, 5, 0.9)).toThrow('maxDropout: must be in [0, 0.5], got 0.9');
    expect(() => dropoutRate(10, 0)).toThrow('target: must be a positive integer, got 0');
  });

  it('never drops more than the cap from any window, keeps groups of two, and is seeded', () => {
    const sizes = [2, 3, 4, 7, 10, 33, 100];
    const windows = sizes.map((n, w) => ({ windowId: `w${w}`, members: Array.from({ length: n }, (_, i) => `w${w}-${i}`) }));
    for (let seed = 0; seed < 50; seed++) {
      const out = applyDropout(windows, { target: 1, seed });
      expect(out.rate).toBe(0.3);
      out.windows.forEach((w, i) => {
        const n = sizes[i];
        expect(w.members.length).toBe(n - Math.floor(0.3 * n));
        expect(w.members.length).toBeGreaterThanOrEqual(2);
        expect(new Set(w.members).size).toBe(w.members.length);
        expect(w.members.every((m) => windows[i].members.includes(m))).toBe(true);
      });
      expect(applyDropout(windows, { target: 1, seed })).toEqual(out);
    }
    // 1 - 4/5 is not exactly 0.2 in floating point; one of five must still go.
    const five = applyDropout([{ windowId: 'w', members: [1, 2, 3, 4, 5] }], { target: 4, seed: 0 });
    expect(five.kept).toBe(4);
    const picks = new Set(Array.from({ length: 20 }, (_, seed) => applyDropout(windows, { target: 1, seed }).windows[6].members.join()));
    expect(picks.size).toBe(20);
    // A window's choice depends on the seed and its id, not on which other windows are present.
    const alone = applyDropout([windows[6]], { target: 1, seed: 3 }).windows[0].members;
    expect(applyDropout(windows, { target: 1, seed: 3 }).windows[6].members).toEqual(alone);
  });
});

describe('ART conversation', () => {
  const trajectory: StoredTrajectory = {
    id: 't',
    agentId: 'a',
    windowId: '2026-12-02T07:00Z',
    windowHours: 1,
    scenarioId: '2026-12-02T07:00Z',
    startedAt: new Date(0),
    endedAt: new Date(0),
    steps: [],
    finalPnl: 0,
    metadata: {},
    modelVersion: null,
  };
  const llm = (messages: { role: string; content: string }[], completion: string): StoredLlmCall => ({
    id: completion,
    trajectoryId: 't',
    seq: 0,
    windowId: trajectory.windowId,
    agentId: 'a',
    model: 'm',
    messages,
    completion,
    finishReason: null,
    promptTokens: null,
    completionTokens: null,
    latencyMs: null,
    logprobs: null,
    at: new Date(0),
  });

  it('keeps a fresh prompt whole but does not repeat the same system prompt', () => {
    const sys = { role: 'system', content: 'S' };
    const out = conversationOf(trajectory, [
      llm([sys, { role: 'user', content: 'u1' }], 'c1'),
      llm([sys, { role: 'user', content: 'u2' }], 'c2'),
    ]);
    expect(out.map((m) => (isChoice(m) ? `choice:${m.message.content}` : `${m.role}:${m.content}`))).toEqual([
      'system:S',
      'user:u1',
      'choice:c1',
      'user:u2',
      'choice:c2',
    ]);
  });
});
