/**
 * SFT end to end. `rlmesh sft` as a real process (the built bin/rlmesh.js) trains a tiny GPT-2 from
 * scratch, with a BPE tokenizer trained on the data, on a trivially learnable split of card-game
 * prompts (the rule's keyword names the answer's colour; chance is 1/3) and its exact match, judged
 * by the card verifier on greedy completions, ends far above chance; the run directory holds the
 * metrics lines and a Hugging Face checkpoint. A run resumed from a mid-run checkpoint logs what the
 * uninterrupted run logs, metric for metric, and ends with the same weights. Bad configs and data
 * are one line and exit 2.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@rlmesh/core';
import { trainBpe } from '@rlmesh/text';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSftCheckpoint } from '../src/sft/checkpoint';
import { parseSftConfig } from '../src/sft/config';
import { SftDataError, tokenizeRecords } from '../src/sft/data';
import { runSft, type SftLine } from '../src/sft/run';

const BIN = join(__dirname, '..', '..', '..', 'packages', 'cli', 'bin', 'rlmesh.js');
const dir = mkdtempSync(join(tmpdir(), 'rlmesh-sft-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const rlmesh = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });

const COLOURS = ['RED', 'BLUE', 'GREEN'];
const KEYWORD: Record<string, string> = { fire: 'RED', sea: 'BLUE', leaf: 'GREEN' };

/** Card-game prompts whose answer is the colour the rule's keyword names; the cards are noise. */
function keywordSet(n: number, seed: number): string {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const cards = Array.from({ length: 2 + rng.int(3) }, () => `${COLOURS[rng.int(3)]} ${1 + rng.int(9)}\n`).join('');
    const key = Object.keys(KEYWORD)[rng.int(3)];
    const prompt = `Rule: the colour of ${key}.\nCards:\n${cards}\nAnswer:`;
    lines.push(JSON.stringify({ prompt, completion: ` ${KEYWORD[key]}`, answer: KEYWORD[key], family: key }));
  }
  return `${lines.join('\n')}\n`;
}

const data = join(dir, 'data');
mkdirSync(data);
writeFileSync(join(data, 'train.jsonl'), keywordSet(400, 1));
writeFileSync(join(data, 'val.jsonl'), keywordSet(60, 2));

const TINY = {
  run: { name: 'tiny', seed: 0, out_dir: join(dir, 'runs') },
  data: { dir: data, train: 'train.jsonl', eval: 'val.jsonl' },
  tokenizer: { kind: 'bpe', vocab_size: 300 },
  model: { n_positions: 48, n_embd: 32, n_layer: 2, n_head: 2 },
  train: { max_steps: 200, micro_batch_size: 16, lr: 3e-3, warmup_steps: 10, log_every: 25, eval_every: 50, max_new_tokens: 3, threads: 1 },
};

function writeConfig(name: string, cfg: unknown): string {
  const file = join(dir, `${name}.json`);
  // YAML is a superset of JSON: the CLI reads this as it reads configs/*.yaml.
  writeFileSync(file, JSON.stringify(cfg));
  return file;
}

const lines = (runDir: string): SftLine[] =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));

describe('rlmesh sft', () => {
  it('learns a trivially learnable split far above chance and writes metrics and a Hugging Face checkpoint', async () => {
    const r = rlmesh('sft', writeConfig('tiny', TINY));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^rlmesh sft: tiny: GPT-2 from scratch with \d+ parameters/m);
    const runDir = join(dir, 'runs', 'tiny');
    const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'));
    expect(summary.updates).toBe(200);
    expect(summary.eval.val.n).toBe(60);
    expect(summary.eval.val.exact_match).toBeGreaterThanOrEqual(0.9); // chance: 1/3
    expect(Object.keys(summary.eval.val.by_family)).toEqual(['fire', 'leaf', 'sea']);

    const log = lines(runDir);
    const train = log.filter((l) => l.kind === 'train');
    expect(train.map((l) => l.update)).toEqual([25, 50, 75, 100, 125, 150, 175, 200]);
    for (const l of train)
      expect(Object.keys(l.metrics).sort()).toEqual(['completion_nll', 'grad_norm', 'loss', 'lr', 'sequences', 'tokens', 'tokens_per_s']);
    expect(train[train.length - 1].metrics.loss).toBeLessThan(0.25 * train[0].metrics.loss);
    expect(log.filter((l) => l.kind === 'eval').map((l) => l.update)).toEqual([50, 100, 150, 200]);

    const ckpt = join(runDir, 'checkpoints', 'step_200');
    expect(summary.final_checkpoint).toBe(ckpt);
    for (const f of [
      'config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
      'vocab.json',
      'merges.txt',
      'optimizer.safetensors',
      'trainer_state.json',
    ])
      expect(existsSync(join(ckpt, f)), f).toBe(true);
    const loaded = await loadSftCheckpoint(ckpt, true);
    expect(loaded.trainer?.state.step).toBe(200);
    expect(loaded.config.vocab_size).toBe(loaded.tokenizer.vocabSize);
    expect(loaded.config.eos_token_id).toBe(loaded.tokenizer.eosId);
    const text = 'Rule: the colour of sea.\nCards:\nRED 3\n\nAnswer: BLUE';
    expect(loaded.tokenizer.decode(loaded.tokenizer.encode(text))).toBe(text);
  });

  it('a run resumed from a mid-run checkpoint logs what the uninterrupted run logs and ends with the same weights', async () => {
    const base = parseSftConfig({
      ...TINY,
      run: { ...TINY.run, name: 'whole', out_dir: join(dir, 'a') },
      train: { ...TINY.train, max_steps: 30, log_every: 5, eval_every: 10, checkpoint_every: 10, grad_accum: 2, micro_batch_size: 8 },
    });
    const whole = await runSft(base);
    const resumed = await runSft(
      { ...base, run: { ...base.run, out_dir: join(dir, 'b') } },
      { resumeFrom: join(whole.run_dir, 'checkpoints', 'step_20') },
    );
    expect(resumed.updates).toBe(10);
    const strip = (l: SftLine) => {
      if (l.kind === 'eval') return l;
      const { tokens_per_s: _, ...metrics } = l.metrics;
      return { ...l, seconds: 0, metrics };
    };
    const a = lines(whole.run_dir).map(strip);
    const b = lines(resumed.run_dir).map(strip);
    expect(b.length).toBe(a.length);
    expect(b).toEqual(a);
    const wa = await loadSftCheckpoint(whole.final_checkpoint, true);
    const wb = await loadSftCheckpoint(resumed.final_checkpoint, true);
    expect(wb.trainer?.state.params).toEqual(wa.trainer?.state.params);
    expect(wb.trainer?.state.expAvgSq).toEqual(wa.trainer?.state.expAvgSq);
  });

  it('refuses or truncates an example over max_length, as data.overflow says', () => {
    const tok = trainBpe(['Rule: a\nAnswer: RED'], { vocab_size: 270 });
    const rec = { prompt: 'Rule: a\nAnswer:', completion: ' RED', line: 7 };
    const n = tok.encode(rec.prompt).length;
    const full = tokenizeRecords([rec], tok, 'f.jsonl', { maxLength: 100, overflow: 'refuse', eosId: tok.eosId as number })[0];
    expect(full.ids.at(-1)).toBe(tok.eosId);
    expect(full.promptLength).toBe(n);
    const max = full.ids.length - 1;
    expect(() => tokenizeRecords([rec], tok, 'f.jsonl', { maxLength: max, overflow: 'refuse', eosId: 1 })).toThrow(
      /f\.jsonl:7: .* exceed data\.max_length/,
    );
    const cut = tokenizeRecords([rec], tok, 'f.jsonl', { maxLength: max, overflow: 'truncate', eosId: tok.eosId as number })[0];
    expect(cut.ids).toEqual(full.ids.slice(0, max));
    expect(() => tokenizeRecords([rec], tok, 'f.jsonl', { maxLength: n, overflow: 'truncate', eosId: 1 })).toThrow(SftDataError);
  });

  it('bad configs, data and checkpoints are one line on stderr and exit 2', () => {
    const cases: [string, string[], RegExp][] = [
      ['unknown key', [writeConfig('bad-key', { ...TINY, train: { ...TINY.train, lrr: 1 } })], /train\.lrr: unknown key/],
      ['missing data', [writeConfig('no-data', { ...TINY, data: { ...TINY.data, train: 'nope.jsonl' } })], /nope\.jsonl: cannot read/],
      ['too long', [writeConfig('too-long', { ...TINY, data: { ...TINY.data, max_length: 12 } })], /train\.jsonl:1: .*data\.max_length 12/],
      [
        'context',
        [writeConfig('context', { ...TINY, data: { ...TINY.data, max_length: 49 } })],
        /data\.max_length: must be <= the model context/,
      ],
      ['not a checkpoint', [writeConfig('tiny2', TINY), '--resume', data], /--resume: .* not a checkpoint/],
      ['bad init_from', [writeConfig('init', { ...TINY, init_from: data })], /init_from: .*config\.json/],
    ];
    for (const [what, args, want] of cases) {
      const r = rlmesh('sft', ...args);
      expect(r.status, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trimEnd().split('\n'), what).toHaveLength(1);
      expect(r.stderr, what).toMatch(want);
    }
    const bad = join(data, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "x", "completion": ""}\n');
    const r = rlmesh('sft', writeConfig('empty', { ...TINY, data: { ...TINY.data, train: 'bad.jsonl' } }));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad\.jsonl:1: completion: must be a non-empty string/);
  });
});
