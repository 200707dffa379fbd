/**
 * Tokenizer directories in Hugging Face's layout: `tokenizer.json` (what the `tokenizers` library
 * and `PreTrainedTokenizerFast` read), plus `vocab.json` / `merges.txt` (what the slow
 * `GPT2Tokenizer` reads), `tokenizer_config.json` (class, special-token roles, context length) and
 * `special_tokens_map.json`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { TokenizerFormatError } from './errors';
import { isObject, type Json, type JsonObject } from './format';
import { type SpecialTokenRoles, Tokenizer } from './tokenizer';

function readJson(file: string, key: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenizerFormatError(key, `cannot read ${file} (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerFormatError(key, `${file} is not JSON (${(e as Error).message})`);
  }
}

/** Loads one `tokenizer.json` file; roles (BOS/EOS/PAD) are not in that file, so pass them if needed. */
export function loadTokenizerFile(file: string, roles: SpecialTokenRoles = {}): Tokenizer {
  return Tokenizer.fromJSON(readJson(file, path.basename(file)), roles);
}

/** A role in tokenizer_config.json / special_tokens_map.json: a string, or an AddedToken object with `content`. */
function roleContent(v: unknown): string | null | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  if (v === null) return null;
  return undefined;
}

/**
 * Loads a tokenizer directory: `tokenizer.json`, or failing that GPT-2's `vocab.json` + `merges.txt`;
 * the special-token roles come from `tokenizer_config.json` (or `special_tokens_map.json`).
 */
export function loadTokenizer(dir: string): Tokenizer {
  const roles: SpecialTokenRoles = {};
  for (const name of ['special_tokens_map.json', 'tokenizer_config.json']) {
    const file = path.join(dir, name);
    if (!existsSync(file)) continue;
    const cfg = readJson(file, name);
    if (!isObject(cfg)) throw new TokenizerFormatError(name, 'must be a JSON object');
    for (const role of ['bos', 'eos', 'pad', 'unk'] as const) {
      const v = roleContent(cfg[`${role}_token`]);
      if (v !== undefined) roles[role] = v;
    }
  }
  const tokenizerJson = path.join(dir, 'tokenizer.json');
  if (existsSync(tokenizerJson)) return loadTokenizerFile(tokenizerJson, roles);
  const vocabFile = path.join(dir, 'vocab.json');
  const mergesFile = path.join(dir, 'merges.txt');
  if (!existsSync(vocabFile) || !existsSync(mergesFile))
    throw new TokenizerFormatError(dir, 'holds neither tokenizer.json nor vocab.json + merges.txt');
  const vocab = readJson(vocabFile, 'vocab.json');
  if (!isObject(vocab)) throw new TokenizerFormatError('vocab.json', 'must be a JSON object of token -> id');
  const merges = readFileSync(mergesFile, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#version'));
  // The slow GPT-2 tokenizer's behaviour, as tokenizer.json sections; its roles become added tokens.
  const specials = [...new Set(Object.values(roles).filter((r): r is string => typeof r === 'string'))];
  const added = specials
    .filter((c) => typeof vocab[c] === 'number')
    .map((c) => ({
      id: vocab[c] as number,
      content: c,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: true,
    }));
  return Tokenizer.fromJSON(
    {
      version: '1.0',
      added_tokens: added,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', vocab, merges },
    },
    roles,
  );
}

export interface SaveTokenizerOptions {
  /** Written as `model_max_length` (the model's context); omitted when not given. */
  modelMaxLength?: number;
}

/** Whether the pre-tokenizer is exactly GPT-2's, so the slow GPT2Tokenizer class reproduces it from vocab.json + merges.txt. */
function isGpt2PreTokenizer(pre: Json): boolean {
  return isObject(pre) && pre.type === 'ByteLevel' && pre.use_regex !== false && pre.add_prefix_space !== true;
}

/** Writes the tokenizer's files into `dir` (created if missing); returns the paths written. */
export function saveTokenizer(tok: Tokenizer, dir: string, opts: SaveTokenizerOptions = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const json = tok.toJSON();
  const written: string[] = [];
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    written.push(file);
  };
  write('tokenizer.json', `${JSON.stringify(json, null, 2)}\n`);
  // vocab.json holds the model's vocabulary in id order, as GPT-2's file does.
  const vocab: JsonObject = {};
  for (const [t, id] of [...tok.model.vocab].sort((a, b) => a[1] - b[1])) vocab[t] = id;
  write('vocab.json', JSON.stringify(vocab));
  write('merges.txt', `#version: 0.2\n${tok.model.merges.map(([a, b]) => `${a} ${b}`).join('\n')}\n`);
  const roles = tok.roles;
  const map: JsonObject = {};
  for (const role of ['bos', 'eos', 'unk', 'pad'] as const) {
    const v = roles[role];
    if (typeof v === 'string') map[`${role}_token`] = v;
  }
  write('special_tokens_map.json', `${JSON.stringify(map, null, 2)}\n`);
  const addedDecoder: JsonObject = {};
  for (const t of tok.addedTokens) {
    addedDecoder[String(t.id)] = {
      content: t.content,
      lstrip: t.lstrip,
      normalized: t.normalized,
      rstrip: t.rstrip,
      single_word: t.single_word,
      special: t.special,
    };
  }
  const gpt2Like = isGpt2PreTokenizer(json.pre_tokenizer);
  const config: JsonObject = {
    add_prefix_space: false,
    added_tokens_decoder: addedDecoder,
    bos_token: roles.bos ?? null,
    clean_up_tokenization_spaces: false,
    eos_token: roles.eos ?? null,
    errors: 'replace',
    ...(opts.modelMaxLength !== undefined ? { model_max_length: opts.modelMaxLength } : {}),
    pad_token: roles.pad ?? null,
    // The slow class rebuilds GPT-2's regex from vocab.json + merges.txt; any other split needs tokenizer.json.
    tokenizer_class: gpt2Like ? 'GPT2Tokenizer' : 'PreTrainedTokenizerFast',
    unk_token: roles.unk ?? null,
  };
  write('tokenizer_config.json', `${JSON.stringify(config, null, 2)}\n`);
  return written;
}
