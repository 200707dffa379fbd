/**
 * Circuit metrics read the final answer, not the first completion token: on worked completions
 * (" RED 3 = 3 - BLUE 2 = 1, ODD") the answer's tokens are found where the card game's verifier reads
 * the answer, exact match and answer log-prob score only those tokens and EOS (teacher-forced after
 * the work), and patching pairs keep the worked style and compare the two answers after each side's
 * work. Answer-only data keeps its old reading (the answer starts the completion).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCardsDatasets, exampleRecord, formatCompletion, formatWorkedCompletion } from '@rlmesh/envs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyGpt2Dir } from '../../evaluator/test/gpt2-fixture';
import {
  ablatedScore,
  buildPairs,
  CircuitModel,
  normalised,
  patchedLogitDiff,
  readCardRecords,
  type Score,
  scoreRows,
  type TokenizedRecord,
  tokenBatch,
  tokenPairs,
} from '../src/circuits';

function writeCards(path: string, completion: 'answer' | 'worked'): string {
  const examples = buildCardsDatasets({ seed: 5, nTrain: 0, nVal: 0, nTest: 24, completion })[0].examples;
  writeFileSync(path, examples.map((e) => `${JSON.stringify(exampleRecord(e))}\n`).join(''));
  return path;
}

describe('circuit metrics on worked completions', () => {
  let dir: string;
  let model: CircuitModel;
  let worked: string;
  let answerOnly: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-circuits-answer-'));
    await tinyGpt2Dir(join(dir, 'gpt2'));
    worked = writeCards(join(dir, 'worked.jsonl'), 'worked');
    answerOnly = writeCards(join(dir, 'answer.jsonl'), 'answer');
    model = await CircuitModel.open(join(dir, 'gpt2'));
  });
  afterAll(async () => {
    await model.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the answer tokens after the work, and at the start of an answer-only completion', () => {
    const items = model.tokenize(readCardRecords(worked));
    for (const t of items) {
      const r = t.record;
      expect(r.completion).not.toBe(formatCompletion(r.answer));
      expect(t.answerStart).toBeGreaterThan(t.promptLength);
      // What precedes the answer is the work, and the answer's tokens (before EOS) spell the answer.
      const before = model.tokenizer.decode(t.ids.slice(t.promptLength, t.answerStart));
      const answer = model.tokenizer.decode(t.ids.slice(t.answerStart, -1));
      expect(before + answer).toBe(r.completion);
      expect(answer.trim().replace(/^, /, '')).toBe(r.answer);
      expect(r.completion.endsWith(answer)).toBe(true);
    }
    for (const t of model.tokenize(readCardRecords(answerOnly))) expect(t.answerStart).toBe(t.promptLength);
  });

  it('refuses a completion the verifier reads no answer from, naming the line', () => {
    const r = { ...readCardRecords(worked)[0], completion: ' RED 3 = ', line: 7 };
    expect(() => model.tokenize([r])).toThrow(/line 7: completion " RED 3 = " has no answer/);
  });

  it('scores only the answer and EOS: a wrong step in the work does not cost exact match', () => {
    const [t] = model.tokenize(readCardRecords(worked).filter((r) => r.labels.selected.some((s) => s === 1)));
    const width = t.ids.length;
    const vocab = 8;
    // Log-probs where every completion token is the argmax except the first work token.
    const lp = new Float32Array(width * vocab).fill(-5);
    const want = t.ids.map((id) => id % vocab);
    const ids = { ...t, ids: want };
    for (let pos = 0; pos < width - 1; pos++) lp[pos * vocab + want[pos + 1]] = -0.5;
    const firstWork = t.promptLength - 1;
    lp[firstWork * vocab + want[firstWork + 1]] = -6;
    const scores: Score[] = [];
    scoreRows(lp, vocab, width, [ids], scores);
    expect(scores[0].exact_match).toBe(1);
    expect(scores[0].answer_logprob).toBeCloseTo(-0.5 * (width - t.answerStart), 5);
    // A wrong answer token does.
    lp[(t.answerStart - 1) * vocab + want[t.answerStart]] = -6;
    scoreRows(lp, vocab, width, [ids], scores);
    expect(scores[1].exact_match).toBe(0);
  });

  it('ablating nothing gives the answer log-prob the model assigns after the work', async () => {
    const items: TokenizedRecord[] = model.tokenize(readCardRecords(worked).slice(0, 8));
    const none = await ablatedScore(model, items, 'blocks.0.attn.hook_z', new Float32Array(0));
    const program = await model.program({});
    const out = await program.run(model.flat(program), tokenBatch(items.map((t) => t.ids)));
    const width = Math.max(...items.map((t) => t.ids.length));
    let answer = 0;
    let whole = 0;
    for (const [r, t] of items.entries())
      for (let pos = t.promptLength - 1; pos < t.ids.length - 1; pos++) {
        const v = out.logProbs[(r * width + pos) * out.vocab + t.ids[pos + 1]];
        whole += v;
        if (pos >= t.answerStart - 1) answer += v;
      }
    expect(none.answer_logprob).toBeCloseTo(answer / items.length, 3);
    // The whole completion's log-prob (what a first-token reading summed) is far from it.
    expect(Math.abs(whole / items.length - none.answer_logprob)).toBeGreaterThan(1);
  });

  it('pairs keep the worked style and compare the answers after each side its own work', async () => {
    const records = readCardRecords(worked);
    const raw = buildPairs(records, 6, 1);
    for (const p of [...raw.card_value, ...raw.rule_colour]) {
      const t = p.target;
      expect(t.completion).toBe(formatWorkedCompletion(t.rule, t.cards, t.labels));
    }
    const pairs = tokenPairs(model, raw.card_value);
    expect(pairs.length).toBeGreaterThan(2);
    for (const p of pairs)
      for (const [side, answerToken] of [
        [p.source, p.a],
        [p.target, p.b],
      ] as const) {
        const readout = side.slots.get('readout') as number;
        expect(readout).toBe(side.ids.length - 1);
        // The run holds the whole work: everything of the completion before the answer.
        const full = model.tokenize([side.record])[0];
        expect(side.ids.length).toBeGreaterThanOrEqual(full.answerStart);
        expect(side.ids).toEqual(full.ids.slice(0, side.ids.length));
        expect(full.ids[side.ids.length]).toBe(answerToken);
      }
    // Self-patching is exact, and the last residual at the readout slot carries the source's answer.
    const hooks = ['blocks.0.hook_resid_post'];
    const acts = {
      source: await model.captureSlots(
        pairs.map((p) => p.source),
        hooks,
        (t) => t.ids,
      ),
      target: await model.captureSlots(
        pairs.map((p) => p.target),
        hooks,
        (t) => t.ids,
      ),
    };
    const clean = await patchedLogitDiff(model, pairs, { into: 'source' });
    const corrupted = await patchedLogitDiff(model, pairs, { into: 'target' });
    const last = await patchedLogitDiff(model, pairs, { hook: hooks[0], slots: ['readout'], into: 'target', from: 'source' }, acts);
    expect(normalised(last.mean, clean.mean, corrupted.mean)).toBeCloseTo(1, 4);
    const self = await patchedLogitDiff(model, pairs, { hook: hooks[0], slots: ['readout'], into: 'target', from: 'target' }, acts);
    expect(self.perPair).toEqual(corrupted.perPair);
  });

  it('answer-only pairs still read the first differing completion token', () => {
    const pairs = tokenPairs(model, buildPairs(readCardRecords(answerOnly), 6, 1).card_value);
    expect(pairs.length).toBeGreaterThan(2);
    for (const p of pairs) {
      expect(p.source.record.completion).toBe(formatCompletion(p.source.record.answer));
      expect(p.target.record.completion).toBe(formatCompletion(p.target.record.answer));
      const [s, t] = model.tokenize([p.source.record, p.target.record]);
      const [cs, ct] = [s.ids.slice(s.promptLength), t.ids.slice(t.promptLength)];
      let k = 0;
      while (cs[k] === ct[k]) k++;
      expect(p.source.slots.get('readout')).toBe(s.promptLength - 1 + k);
      expect([p.a, p.b]).toEqual([cs[k], ct[k]]);
    }
  });
});
