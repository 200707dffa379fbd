/**
 * The README's example: GPT-2's tokenizer offline, a tokenizer trained from a small corpus, and both
 * saved in Hugging Face's layout and loaded back.
 * Run: npx tsx --conditions=source packages/text/examples/tokenize.ts
 */
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gpt2Tokenizer, loadTokenizer, saveTokenizer, trainBpe } from '@rlmesh/text';

const gpt2 = gpt2Tokenizer();
const ids = gpt2.encode('Hello world<|endoftext|>');
console.log(ids); // [ 15496, 995, 50256 ]
console.log(JSON.stringify(gpt2.decode(ids))); // "Hello world<|endoftext|>"

const dir = mkdtempSync(path.join(os.tmpdir(), 'rlmesh-tokenizer-'));
saveTokenizer(gpt2, path.join(dir, 'gpt2'), { modelMaxLength: 1024 }); // tokenizer.json, vocab.json, merges.txt, ...
console.log(loadTokenizer(path.join(dir, 'gpt2')).encode(' café 日本')); // the same ids as gpt2.encode

const corpus = Array.from(
  { length: 200 },
  (_, i) => `Rule: add red\nCards:\nRED ${i % 9}\nBLUE ${(i * 7) % 9}\nAnswer: ${(i % 9) - ((i * 7) % 9)}`,
);
const small = trainBpe(corpus, { vocab_size: 320, min_frequency: 2 }); // specials <|bos|> <|eos|> <|pad|> are ids 0, 1, 2
saveTokenizer(small, path.join(dir, 'cards'));
const again = loadTokenizer(path.join(dir, 'cards'));
const text = `${corpus[5]}<|eos|>`;
console.log(
  again.encode(text).length,
  'tokens for',
  Buffer.byteLength(text),
  'bytes; round trip exact:',
  again.decode(again.encode(text)) === text,
);
