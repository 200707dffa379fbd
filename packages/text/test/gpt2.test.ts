import { GPT2_EOS_ID, gpt2Tokenizer, gpt2TokenizerJson, Tokenizer } from '@rlmesh/text';
import { Tiktoken } from 'js-tiktoken';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { describe, expect, it } from 'vitest';
import { randomTexts, TRICKY } from './strings';

// js-tiktoken's own encoder over the same ranks is the independent reference: different algorithm
// (rank lookups on byte strings, no merges list), different code.
const reference = new Tiktoken(gpt2Ranks);
const ref = (s: string) => reference.encode(s, 'all');

describe('GPT-2 tokenizer', () => {
  const tok = gpt2Tokenizer();

  it('gives the ids GPT-2 gives for published examples', () => {
    expect(tok.encode('Hello world')).toEqual([15496, 995]);
    expect(tok.encode('Hello, world!')).toEqual([15496, 11, 995, 0]);
    expect(tok.encode('hello world')).toEqual([31373, 995]);
    expect(tok.encode('The')).toEqual([464]);
    expect(tok.encode(' the')).toEqual([262]);
    expect(tok.encode('\n')).toEqual([198]);
    expect(tok.encode(' ')).toEqual([220]);
    expect(tok.encode('<|endoftext|>')).toEqual([GPT2_EOS_ID]);
    expect(GPT2_EOS_ID).toBe(50256);
  });

  it('has GPT-2 sizes: 50,257 ids, 50,000 merges in GPT-2 order, one special token in every role but PAD', () => {
    expect(tok.vocabSize).toBe(50257);
    expect(tok.model.merges.length).toBe(50000);
    // The start of GPT-2's merges.txt.
    expect(tok.model.merges.slice(0, 7).map(([a, b]) => `${a} ${b}`)).toEqual(['Ġ t', 'Ġ a', 'h e', 'i n', 'r e', 'o n', 'Ġt he']);
    expect(tok.model.merges.every(([a, b], i) => tok.tokenToId(a + b) === 256 + i)).toBe(true);
    expect([tok.bosId, tok.eosId, tok.unkId, tok.padId]).toEqual([50256, 50256, 50256, null]);
    expect(tok.idToToken(995)).toBe('Ġworld');
  });

  it('matches js-tiktoken on tricky and random texts and decodes them back exactly', () => {
    const texts = [...TRICKY, ...randomTexts(300, 7)];
    for (const s of texts) {
      const ids = tok.encode(s);
      expect(ids, JSON.stringify(s)).toEqual(ref(s));
      expect(tok.decode(ids)).toBe(s);
    }
  });

  it('matches js-tiktoken on a long whitespace run and takes no quadratic time on a huge one', () => {
    const run = `${' '.repeat(3000)}x`;
    expect(tok.encode(run)).toEqual(ref(run));
    const huge = 'a'.repeat(200_000);
    const t0 = performance.now();
    const ids = tok.encode(huge);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(tok.decode(ids)).toBe(huge);
  });

  it('matches special tokens before BPE and never splits them; splitSpecialTokens encodes them as text', () => {
    const s = 'a<|endoftext|>b <|endoftext|><|endoftext|>';
    const ids = tok.encode(s);
    expect(ids).toEqual(ref(s));
    expect(ids.filter((i) => i === GPT2_EOS_ID).length).toBe(3);
    expect(tok.decode(ids)).toBe(s);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('ab ');
    const asText = tok.encode(s, { splitSpecialTokens: true });
    expect(asText).not.toContain(GPT2_EOS_ID);
    expect(asText).toEqual(reference.encode(s, [], []));
    expect(tok.decode(asText)).toBe(s);
  });

  it('takes PAD = EOS for batching without rebuilding the vocabulary; an unknown role token is an error naming the role', () => {
    const padded = tok.withRoles({ pad: '<|endoftext|>' });
    expect([padded.padId, padded.eosId, tok.padId]).toEqual([50256, 50256, null]);
    expect(padded.model).toBe(tok.model);
    expect(() => tok.withRoles({ pad: '<pad>' })).toThrow(/^pad_token: "<pad>" is not a token of this tokenizer/);
  });

  it('the comparison with js-tiktoken catches a tokenizer missing one merge', () => {
    const json = gpt2TokenizerJson();
    // Without "h e" (GPT-2's third merge) every word built through "he" ends in other tokens.
    const merges = (json.model.merges as string[]).filter((m) => m !== 'h e');
    const broken = Tokenizer.fromJSON({ ...json, model: { ...json.model, merges } });
    const texts = [...TRICKY, ...randomTexts(300, 7)];
    const differ = texts.filter((s) => JSON.stringify(broken.encode(s)) !== JSON.stringify(ref(s)));
    expect(differ.length).toBeGreaterThan(0);
  });
});
