import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTextEnv } from '@rlmesh/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

const dir = mkdtempSync(join(tmpdir(), 'rlmesh-data-affine-'));
const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));

afterEach(() => {
  vi.restoreAllMocks();
});

describe('rlmesh data affine', () => {
  it('writes single-turn demonstrations the env scores correct', async () => {
    const io = captureConsole();
    expect(await main(['data', 'affine', '--env', 'AffineSAT', '--out', dir, '--seed', '3', '--n', '5'])).toBe(0);
    expect(io.out.at(-1)).toMatch(/AffineSAT\.jsonl 5 lines from 5 episodes \(seeds 3\.\.7\)/);
    const recs = lines(join(dir, 'AffineSAT.jsonl'));
    expect(recs.map((r) => r.seed)).toEqual([3, 4, 5, 6, 7]);
    const env = makeTextEnv('AffineSAT', {});
    for (const r of recs) {
      expect(env.reset(r.seed)).toBe(r.prompt);
      expect(env.step(r.completion)).toMatchObject({ success: true, reward: { correct: 1, format: 1 } });
    }
    expect(JSON.parse(readFileSync(join(dir, 'AffineSAT.manifest.json'), 'utf8'))).toMatchObject({
      env: 'AffineSAT',
      seed: 3,
      n: 5,
      lines: 5,
    });
  });

  it('writes a multi-turn episode as a conversation whose contents rebuild the env conversation, or as turns', async () => {
    captureConsole();
    expect(await main(['data', 'affine', '--env', 'TextCraft', '--out', dir, '--seed', '0', '--n', '2'])).toBe(0);
    const [ep] = lines(join(dir, 'TextCraft.jsonl'));
    const roles = ep.conversations.map((m: { role: string }) => m.role);
    expect(roles[0]).toBe('user');
    expect(roles.length).toBe(1 + 2 * ep.steps);
    expect(ep.reward.goal).toBe(1);
    const env = makeTextEnv('TextCraft', {});
    let text = env.reset(0);
    for (let i = 1; i < ep.conversations.length - 2; i += 2) {
      text = env.step(ep.conversations[i].content).prompt;
      expect(text).toBe(
        ep.conversations
          .slice(0, i + 2)
          .map((m: { content: string }) => m.content)
          .join(''),
      );
    }
    expect(await main(['data', 'affine', '--env', 'GridGoals', '--out', dir, '--seed', '0', '--n', '1', '--form', 'turns'])).toBe(0);
    const turns = lines(join(dir, 'GridGoals.jsonl'));
    expect(turns.map((t) => t.turn)).toEqual(turns.map((_, i) => i));
    expect(turns[1].prompt.startsWith(turns[0].prompt + turns[0].completion)).toBe(true);
  });

  it('exits 2 with one line on an unknown env or a missing option', async () => {
    const io = captureConsole();
    expect(await main(['data', 'affine', '--env', 'CardRules', '--out', dir, '--seed', '1'])).toBe(2);
    expect(io.err.at(-1)).toMatch(
      /^rlmesh: data affine: --env: must be one of AffineSAT, AffineABD, AffineDED, TextCraft, GridGoals, ShopSearch/,
    );
    expect(await main(['data', 'affine', '--env', 'AffineSAT', '--out', dir])).toBe(2);
    expect(io.err.at(-1)).toBe('rlmesh: data affine: --seed: is required');
  });
});
