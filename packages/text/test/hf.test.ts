import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BYTE_TO_CHAR,
  gpt2Tokenizer,
  gpt2TokenizerJson,
  LLAMA3_PATTERN,
  loadTokenizer,
  loadTokenizerFile,
  saveTokenizer,
  type TiktokenRanks,
  Tokenizer,
  TokenizerFormatError,
  tokenizerJsonFromTiktoken,
} from '@rlmesh/text';
import { Tiktoken } from 'js-tiktoken';
import cl100k from 'js-tiktoken/ranks/cl100k_base';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { afterAll, describe, expect, it } from 'vitest';
import { randomTexts, TRICKY } from './strings';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rlmesh-text-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const gpt2Ref = new Tiktoken(gpt2Ranks);

describe('a GPT-2 tokenizer directory', () => {
  const tok = gpt2Tokenizer();
  const dir = path.join(tmp, 'gpt2');
  saveTokenizer(tok, dir, { modelMaxLength: 1024 });
  const read = (name: string) => JSON.parse(readFileSync(path.join(dir, name), 'utf8'));

  it('holds the files transformers reads, with the keys and values of the gpt2 checkpoint', () => {
    const json = read('tokenizer.json');
    expect(Object.keys(json)).toEqual([
      'version',
      'truncation',
      'padding',
      'added_tokens',
      'normalizer',
      'pre_tokenizer',
      'post_processor',
      'decoder',
      'model',
    ]);
    expect(json.added_tokens).toEqual([
      { id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ]);
    expect(json.pre_tokenizer).toEqual({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
    expect(json.decoder.type).toBe('ByteLevel');
    expect(Object.keys(json.model)).toEqual([
      'type',
      'dropout',
      'unk_token',
      'continuing_subword_prefix',
      'end_of_word_suffix',
      'fuse_unk',
      'byte_fallback',
      'vocab',
      'merges',
    ]);
    expect(Object.keys(json.model.vocab).length).toBe(50257);
    expect(json.model.merges[0]).toBe('Ġ t');

    const vocab = read('vocab.json');
    expect(Object.keys(vocab).length).toBe(50257);
    expect([vocab.Ġworld, vocab.Hello, vocab['<|endoftext|>']]).toEqual([995, 15496, 50256]);
    const merges = readFileSync(path.join(dir, 'merges.txt'), 'utf8').split('\n');
    expect(merges[0]).toBe('#version: 0.2');
    expect(merges.length).toBe(50002); // header, 50,000 merges, and the empty string after the final newline
    expect(merges[50001]).toBe('');

    expect(read('special_tokens_map.json')).toEqual({ bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>' });
    const cfg = read('tokenizer_config.json');
    expect(cfg.tokenizer_class).toBe('GPT2Tokenizer');
    expect(cfg.model_max_length).toBe(1024);
    expect([cfg.bos_token, cfg.eos_token, cfg.unk_token, cfg.pad_token]).toEqual(['<|endoftext|>', '<|endoftext|>', '<|endoftext|>', null]);
    expect(cfg.added_tokens_decoder['50256'].content).toBe('<|endoftext|>');
  });

  it('reloads from tokenizer.json, and from vocab.json + merges.txt alone, giving the same ids and roles', () => {
    const texts = [...TRICKY, 'x<|endoftext|>y', ...randomTexts(50, 3)];
    const fromJson = loadTokenizer(dir);
    const slowDir = path.join(tmp, 'gpt2-slow');
    saveTokenizer(tok, slowDir);
    rmSync(path.join(slowDir, 'tokenizer.json'));
    const fromSlow = loadTokenizer(slowDir);
    for (const t of [fromJson, fromSlow]) {
      expect([t.bosId, t.eosId, t.vocabSize]).toEqual([50256, 50256, 50257]);
      for (const s of texts) expect(t.encode(s)).toEqual(tok.encode(s));
    }
  });
});

describe('tokenizer.json of other byte-level BPE checkpoints', () => {
  it('runs a Llama-3-style file (Split with its own regex, ByteLevel without, ignore_merges, BOS template) as tiktoken runs cl100k', () => {
    const json = tokenizerJsonFromTiktoken(cl100k as TiktokenRanks, { split: LLAMA3_PATTERN });
    json.post_processor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [100257], tokens: ['<|endoftext|>'] } },
    };
    const tok = Tokenizer.fromJSON(json);
    const ref = new Tiktoken(cl100k);
    // Includes the case-insensitive contractions and 1-3 digit number groups that differ from GPT-2's split.
    const texts = [...TRICKY, "IT'S THEY'RE WE'D", 'Tel: 1234567 and 12,345.678', ...randomTexts(200, 11)];
    for (const s of texts) {
      const ids = tok.encode(s, { addSpecialTokens: false });
      expect(ids, JSON.stringify(s)).toEqual(ref.encode(s, 'all'));
      expect(tok.encode(s)).toEqual([100257, ...ids]);
      expect(tok.decode(ids)).toBe(s);
    }
    const saved = path.join(tmp, 'cl100k-dir');
    saveTokenizer(tok, saved);
    expect(JSON.parse(readFileSync(path.join(saved, 'tokenizer_config.json'), 'utf8')).tokenizer_class).toBe('PreTrainedTokenizerFast');
    const again = loadTokenizer(saved);
    for (const s of texts.slice(0, 40)) expect(again.encode(s)).toEqual(tok.encode(s));
  });

  it('runs a RoBERTa-style file (prefix space, <s> ... </s> around each sequence)', () => {
    const json = gpt2TokenizerJson();
    const tok = Tokenizer.fromJSON(
      {
        ...json,
        added_tokens: [
          ...json.added_tokens,
          { id: 50257, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
          { id: 50258, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
          { id: 50259, content: '<mask>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: true },
        ],
        pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
        post_processor: {
          type: 'RobertaProcessing',
          sep: ['</s>', 50258],
          cls: ['<s>', 50257],
          trim_offsets: true,
          add_prefix_space: true,
        },
      },
      { bos: '<s>', eos: '</s>' },
    );
    expect(tok.encode('Hello world')).toEqual([50257, ...gpt2Ref.encode(' Hello world'), 50258]);
    expect(tok.decode(tok.encode('Hello world'), { skipSpecialTokens: true })).toBe(' Hello world');
    // lstrip: the mask token takes the space before it, so no lone space token is left behind.
    expect(tok.encode('Hello <mask>!', { addSpecialTokens: false })).toEqual([...gpt2Ref.encode(' Hello'), 50259, ...gpt2Ref.encode(' !')]);
    expect([tok.bosId, tok.eosId, tok.vocabSize]).toEqual([50257, 50258, 50260]);
  });
});

describe('unsupported tokenizer files', () => {
  // A tiny valid byte-level file: 256 byte characters and one merge.
  const vocab: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, i) => {
    vocab[c] = i;
  });
  vocab.he = 256;
  const good = {
    version: '1.0',
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', vocab, merges: ['h e'] },
  };

  it('the tiny file itself works', () => {
    const tok = Tokenizer.fromJSON(good);
    // Pieces "hehe" and " h": the merge applies twice in the first, and the space is its own byte token.
    expect(tok.encode('hehe h')).toEqual([256, 256, vocab.Ġ, vocab.h]);
  });

  const cases: [string, Record<string, unknown>, string][] = [
    ['a Unigram model', { model: { type: 'Unigram', vocab: [] } }, 'model.type: Unigram is not supported'],
    ['a WordPiece model', { model: { type: 'WordPiece', vocab: {} } }, 'model.type: WordPiece is not supported'],
    ['a Lowercase normalizer', { normalizer: { type: 'Lowercase' } }, 'normalizer.type: Lowercase is not supported'],
    [
      'a Metaspace pre-tokenizer',
      { pre_tokenizer: { type: 'Metaspace', replacement: '▁' } },
      'pre_tokenizer.type: Metaspace is not supported',
    ],
    [
      'no ByteLevel step',
      { pre_tokenizer: { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Isolated', invert: false } },
      'pre_tokenizer: must include a ByteLevel step',
    ],
    [
      'an unsupported split behaviour',
      {
        pre_tokenizer: {
          type: 'Sequence',
          pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'MergedWithPrevious' }, { type: 'ByteLevel' }],
        },
      },
      'pre_tokenizer.pretokenizers[0].behavior: "MergedWithPrevious" is not supported',
    ],
    ['a WordPiece decoder', { decoder: { type: 'WordPiece', prefix: '##' } }, 'decoder.type: WordPiece is not supported'],
    ['an unknown post-processor', { post_processor: { type: 'Frobnicate' } }, 'post_processor.type: Frobnicate is not supported'],
    ['BPE dropout', { model: { type: 'BPE', vocab, merges: ['h e'], dropout: 0.1 } }, 'model.dropout: BPE dropout (0.1) is not supported'],
    [
      'a subword prefix',
      { model: { type: 'BPE', vocab, merges: ['h e'], continuing_subword_prefix: '##' } },
      'model.continuing_subword_prefix',
    ],
    ['a malformed merge', { model: { type: 'BPE', vocab, merges: ['h e', 'abc'] } }, 'model.merges[1]: must be two tokens'],
    [
      'a merge of unknown tokens',
      { model: { type: 'BPE', vocab, merges: ['h e', 'he llo'] } },
      'model.merges[1]: "llo" is not in model.vocab',
    ],
    ['an added token without content', { added_tokens: [{ id: 3 }] }, 'added_tokens[0].content: must be a string'],
    ['a model that is not an object', { model: 'BPE' }, 'model: must be an object'],
  ];
  for (const [what, patch, message] of cases) {
    it(`rejects ${what}, naming the key`, () => {
      let err: unknown;
      try {
        Tokenizer.fromJSON({ ...good, ...patch });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TokenizerFormatError);
      expect((err as Error).message).toContain(message);
    });
  }

  it('rejects a file that is not JSON and a directory without tokenizer files', () => {
    const bad = path.join(tmp, 'bad.json');
    writeFileSync(bad, '{"model": ');
    expect(() => loadTokenizerFile(bad)).toThrow(/bad\.json: .* is not JSON/);
    const empty = path.join(tmp, 'empty');
    saveTokenizer(Tokenizer.fromJSON(good), empty);
    for (const f of ['tokenizer.json', 'vocab.json']) rmSync(path.join(empty, f));
    expect(existsSync(path.join(empty, 'merges.txt'))).toBe(true);
    expect(() => loadTokenizer(empty)).toThrow(/holds neither tokenizer.json nor vocab.json \+ merges.txt/);
  });
});
