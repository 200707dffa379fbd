import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '@rlmesh/core';
import { BYTE_TO_CHAR, loadTokenizer, saveTokenizer, trainBpe } from '@rlmesh/text';
import { afterAll, describe, expect, it } from 'vitest';
import { randomTexts, TRICKY } from './strings';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rlmesh-text-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A card-game-like corpus: the same few words in many combinations, as a from-scratch model sees. */
function corpus(n: number): string[] {
  const colours = ['RED', 'BLUE', 'GREEN', 'YELLOW'];
  const rules = ['add red, subtract blue', 'sum of green', 'BIG if total > 10 else SMALL', 'parity of yellow'];
  const out: string[] = [];
  let s = 12345;
  const rand = (k: number) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % k;
  };
  for (let i = 0; i < n; i++) {
    const cards = Array.from({ length: 2 + rand(5) }, () => `${colours[rand(4)]} ${1 + rand(9)}`);
    out.push(`Rule: ${rules[rand(4)]}\nCards:\n${cards.join('\n')}\nAnswer: ${rand(30) - 10}`);
  }
  return out;
}

describe('BPE trainer', () => {
  const texts = corpus(400);
  const tok = trainBpe(texts, { vocab_size: 400, min_frequency: 2 });

  it('puts special tokens first, then the 256 bytes, then one id per merge, up to vocab_size', () => {
    expect([tok.bosId, tok.eosId, tok.padId]).toEqual([0, 1, 2]);
    expect(tok.idToToken(0)).toBe('<|bos|>');
    expect(tok.vocabSize).toBeLessThanOrEqual(400);
    expect(tok.vocabSize).toBe(259 + tok.model.merges.length);
    expect(tok.model.merges.length).toBeGreaterThan(50);
  });

  it('learns the corpus words: frequent words become single tokens and the corpus compresses', () => {
    for (const w of ['RED', 'BLUE', 'GREEN', 'Cards', 'Answer', 'Rule']) expect(tok.tokenToId(w), w).toBeDefined();
    const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
    const ids = texts.reduce((n, t) => n + tok.encode(t).length, 0);
    // Digits and newlines stay single pieces, so 2.5 bytes per token is about what this corpus allows.
    expect(bytes / ids).toBeGreaterThan(2.5);
  });

  it('round-trips exactly, corpus and unseen text alike (every byte is in the alphabet)', () => {
    for (const s of [...texts.slice(0, 50), ...TRICKY, ...randomTexts(100, 5)]) expect(tok.decode(tok.encode(s))).toBe(s);
    const withSpecials = '<|bos|>Rule: x<|eos|><|pad|><|pad|>';
    const ids = tok.encode(withSpecials);
    expect(ids.slice(0, 1)).toEqual([0]);
    expect(ids.slice(-3)).toEqual([1, 2, 2]);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('Rule: x');
  });

  it('saves tokenizer.json in Hugging Face layout and reloads to the same ids and roles', () => {
    const dir = path.join(tmp, 'tok');
    saveTokenizer(tok, dir, { modelMaxLength: 256 });
    const json = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
    expect(json.model.type).toBe('BPE');
    expect(json.added_tokens.map((t: { content: string; special: boolean }) => [t.content, t.special])).toEqual([
      ['<|bos|>', true],
      ['<|eos|>', true],
      ['<|pad|>', true],
    ]);
    const cfg = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
    expect([cfg.bos_token, cfg.eos_token, cfg.pad_token, cfg.model_max_length]).toEqual(['<|bos|>', '<|eos|>', '<|pad|>', 256]);
    const again = loadTokenizer(dir);
    expect([again.bosId, again.eosId, again.padId, again.vocabSize]).toEqual([0, 1, 2, tok.vocabSize]);
    for (const s of [...texts.slice(0, 50), ...TRICKY]) expect(again.encode(s)).toEqual(tok.encode(s));
  });

  it('merges the most frequent pair first and stops below min_frequency (worked by hand)', () => {
    // Pieces "ab", " ab", " ab", " cd": (a,b) occurs 3 times, then (Ġ,ab) twice; (Ġ,c) and (c,d) once.
    const small = trainBpe(['ab ab ab cd'], { vocab_size: 300, min_frequency: 2, bos_token: '', eos_token: '', pad_token: '' });
    expect(small.model.merges).toEqual([
      ['a', 'b'],
      ['Ġ', 'ab'],
    ]);
    expect(small.vocabSize).toBe(258);
    expect(small.encode('ab ab cd')).toEqual([
      small.tokenToId('ab'),
      small.tokenToId('Ġab'),
      small.tokenToId('Ġ'),
      small.tokenToId('c'),
      small.tokenToId('d'),
    ]);
  });

  it('learns the same merges as a from-scratch recount of every pair at every step', () => {
    // The trainer updates pair counts incrementally; this reference recounts everything each time.
    const sample = corpus(60);
    const trained = trainBpe(sample, { vocab_size: 330, min_frequency: 2, bos_token: '', eos_token: '', pad_token: '' });
    const counts = new Map<string, number>();
    for (const t of sample)
      for (const m of t.matchAll(/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu)) {
        counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
      }
    const id = (t: string) => trained.tokenToId(t) as number;
    let words = [...counts].map(([w, n]) => ({ sym: [...Buffer.from(w, 'utf8')].map((b) => id(BYTE_TO_CHAR[b])), n }));
    const expected: [string, string][] = [];
    for (;;) {
      const pairs = new Map<string, number>();
      for (const { sym, n } of words)
        for (let i = 0; i + 1 < sym.length; i++) pairs.set(`${sym[i]},${sym[i + 1]}`, (pairs.get(`${sym[i]},${sym[i + 1]}`) ?? 0) + n);
      const best = [...pairs]
        .map(([k, n]) => [...k.split(',').map(Number), n])
        .sort((x, y) => y[2] - x[2] || x[0] - y[0] || x[1] - y[1])[0];
      if (best === undefined || best[2] < 2 || 256 + expected.length >= 330) break;
      const [a, b] = best;
      const merged = id((trained.idToToken(a) as string) + trained.idToToken(b));
      expected.push([trained.idToToken(a) as string, trained.idToToken(b) as string]);
      words = words.map(({ sym, n }) => {
        const out: number[] = [];
        for (let i = 0; i < sym.length; i++) {
          if (sym[i] === a && sym[i + 1] === b) {
            out.push(merged);
            i++;
          } else out.push(sym[i]);
        }
        return { sym: out, n };
      });
    }
    expect(expected.length).toBeGreaterThan(30);
    expect(trained.model.merges).toEqual(expected);
  });

  it('is deterministic', () => {
    expect(JSON.stringify(trainBpe(texts, { vocab_size: 400 }).toJSON())).toBe(JSON.stringify(tok.toJSON()));
  });

  it('rejects bad settings naming the key', () => {
    expect(() => trainBpe(texts, { vocab_size: 100 })).toThrow(ConfigError);
    expect(() => trainBpe(texts, { vocab_size: 100 })).toThrow(/^vocab_size: must be >= 259/);
    expect(() => trainBpe(texts, { min_frequency: 0 })).toThrow(/^min_frequency: /);
  });
});
