/**
 * Circuit analysis on a tiny random GPT-2 (the evaluator's card fixture): the patch program puts in
 * exactly what it is given and nothing where the mask is 0 (a run patched with its own activations
 * is unchanged: 1 for clean, 0 for corrupted; the last layer's clean residual at the answer slot
 * carries the whole clean answer), ablating nothing leaves the scores as they are while ablating a
 * head moves them, slots point at the tokens they name, and bad input is refused by name.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCardsDatasets, exampleRecord } from '@rlmesh/envs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyGpt2Dir } from '../../evaluator/test/gpt2-fixture';
import {
  ablatedScore,
  ablationImportance,
  analyzeCircuits,
  buildPairs,
  CircuitModel,
  normalised,
  patchedLogitDiff,
  readCardRecords,
  type TokenPair,
  tokenPairs,
} from '../src/circuits';

describe('circuits on a tiny GPT-2', () => {
  let dir: string;
  let model: CircuitModel;
  let pairs: TokenPair[];
  let data: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-circuits-'));
    await tinyGpt2Dir(join(dir, 'gpt2'));
    const examples = buildCardsDatasets({ seed: 5, nTrain: 0, nVal: 0, nTest: 24 })[0].examples;
    data = join(dir, 'cards.jsonl');
    writeFileSync(data, examples.map((e) => `${JSON.stringify(exampleRecord(e))}\n`).join(''));
    model = await CircuitModel.open(join(dir, 'gpt2'));
    pairs = tokenPairs(model, buildPairs(readCardRecords(data), 6, 1).card_value);
  });
  afterAll(async () => {
    await model.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds each slot at the token that ends its text', () => {
    const [t] = model.tokenize(readCardRecords(data).slice(0, 1));
    const text = (pos: number) => model.tokenizer.decode(t.ids.slice(0, pos + 1));
    expect(text(t.slots.get('answer') as number)).toBe(t.record.prompt);
    for (const [i, c] of t.record.cards.entries()) {
      expect(text(t.slots.get(`card${i + 1}.value`) as number).endsWith(`${c.colour} ${c.value}`)).toBe(true);
      expect(text(t.slots.get(`card${i + 1}.colour`) as number).endsWith(c.colour)).toBe(true);
    }
  });

  it('builds pairs that differ in one card value and in the answer', () => {
    expect(pairs.length).toBeGreaterThan(2);
    for (const p of pairs) {
      const [s, t] = [p.source.record, p.target.record];
      expect(t.answer).not.toBe(s.answer);
      expect(t.cards.filter((c, i) => c.value !== s.cards[i].value)).toHaveLength(1);
      expect(t.rule.text).toBe(s.rule.text);
    }
  });

  it('patching a run with its own activations changes nothing: 1 for clean, 0 for corrupted', async () => {
    const L = model.layers;
    const hooks = [`blocks.${L - 1}.hook_resid_post`, 'blocks.0.hook_resid_post'];
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
    const slots = ['rule.colour', 'card1.colour', 'card1.value', 'card2.value', 'card3.value', 'answer'];
    const self = await patchedLogitDiff(model, pairs, { hook: hooks[1], slots, into: 'source', from: 'source' }, acts);
    expect(self.perPair).toEqual(clean.perPair);
    expect(normalised(self.mean, clean.mean, corrupted.mean)).toBe(1);
    const selfCorrupted = await patchedLogitDiff(model, pairs, { hook: hooks[1], slots, into: 'target', from: 'target' }, acts);
    expect(selfCorrupted.perPair).toEqual(corrupted.perPair);
    expect(normalised(selfCorrupted.mean, clean.mean, corrupted.mean)).toBe(0);
    // The last residual at the readout slot is all the head reads there: the clean answer entire.
    const last = await patchedLogitDiff(model, pairs, { hook: hooks[0], slots: ['readout'], into: 'target', from: 'source' }, acts);
    expect(normalised(last.mean, clean.mean, corrupted.mean)).toBeCloseTo(1, 4);
    // Clean activations at an early card's value, before the changed card is seen or not, move the run by less.
    const early = await patchedLogitDiff(model, pairs, { hook: hooks[1], slots: ['card1.colour'], into: 'target', from: 'source' }, acts);
    expect(Math.abs((normalised(early.mean, clean.mean, corrupted.mean) as number) - 1)).toBeGreaterThan(0.01);
  });

  it('ablating nothing leaves the scores as they are; zeroing a head moves them', async () => {
    const items = model.tokenize(readCardRecords(data).slice(0, 8));
    const none = await ablatedScore(model, items, 'blocks.0.attn.hook_z', new Float32Array(0));
    const result = await ablationImportance(model, items, { ablation: 'zero', threshold: 0.05, topK: 1 });
    expect(none).toEqual(result.clean);
    expect(result.heads.map((h) => h.name)).toEqual(['L0H0', 'L0H1']);
    expect(result.heads.every((h) => h.answer_logprob !== result.clean.answer_logprob)).toBe(true);
    expect(result.mlps[0].drop_logprob).not.toBe(0);
    expect(result.top_heads).toHaveLength(1);
    // Per family, weighted by its examples, the drops add up to the overall drop.
    const f = result.by_family;
    expect(f.components).toEqual([...result.heads, ...result.mlps].map((x) => x.name));
    for (const [c, x] of [...result.heads, ...result.mlps].entries()) {
      const weighted = f.drop_logprob[c].reduce((s, d, i) => s + (d * f.examples[i]) / items.length, 0);
      expect(weighted).toBeCloseTo(x.drop_logprob, 9);
    }
  });

  it('writes circuits.json and a page, and refuses a missing checkpoint, unlabelled data and an unknown hook', async () => {
    const out = join(dir, 'out');
    const r = await analyzeCircuits({ checkpoint: join(dir, 'gpt2'), data, out, examples: 16, pairs: 4 });
    const json = JSON.parse(readFileSync(join(out, 'circuits.json'), 'utf8'));
    expect(json.checkpoints[0].probes.map((p: { hook: string }) => p.hook)).toContain('blocks.0.hook_resid_post');
    expect(r.checkpoints[0].patching.map((k) => k.kind)).toContain('card_value');
    const html = readFileSync(join(out, 'circuits.html'), 'utf8');
    expect(html).toContain('Activation patching');
    expect(html).toContain('layer x head');

    await expect(analyzeCircuits({ checkpoint: join(dir, 'nope'), data, out })).rejects.toThrow(
      /--checkpoint .*nope: no such checkpoint directory/,
    );
    const bare = join(dir, 'bare.jsonl');
    writeFileSync(bare, `${JSON.stringify({ ...JSON.parse(readFileSync(data, 'utf8').split('\n')[0]), labels: undefined })}\n`);
    await expect(analyzeCircuits({ checkpoint: join(dir, 'gpt2'), data: bare, out })).rejects.toThrow(/bare\.jsonl:1: no "labels"/);
    await expect(analyzeCircuits({ checkpoint: join(dir, 'gpt2'), data, out, probeHooks: ['blocks.7.hook_resid_post'] })).rejects.toThrow(
      /no hook "blocks\.7\.hook_resid_post" \(this model's: hook_embed/,
    );
  });
});
