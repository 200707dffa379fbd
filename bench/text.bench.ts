/**
 * Benchmarks of packages/text: GPT-2 encode throughput of our byte-level BPE engine against
 * js-tiktoken's own encoder over the same ranks (the npm package whose data we load), on two texts:
 * this repository's English documentation (words repeat, as in most prose) and seeded random
 * multilingual text (pieces rarely repeat, so per-piece caches help little). Both encoders must give
 * identical ids on each text before anything is timed.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Tiktoken } from 'js-tiktoken';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { gpt2Tokenizer } from '../packages/text/src';
import { type BenchResult, type BenchSettings, describeTiming, timePair } from './harness';

function log(msg: string): void {
  process.stderr.write(`[bench:text] ${msg}\n`);
}

const ROOT = path.join(__dirname, '..');
const DOCS = [
  'README.md',
  'packages/core/README.md',
  'packages/graph/README.md',
  'packages/mesh/README.md',
  'services/learner/README.md',
  'services/env/README.md',
  'services/policy/README.md',
];

function englishText(): string {
  return DOCS.map((f) => readFileSync(path.join(ROOT, f), 'utf8')).join('\n\n');
}

/** Seeded text mixing ASCII words, Latin-1, Cyrillic, CJK, Hangul, emoji and whitespace. */
function multilingualText(chars: number, seed: number): string {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const ranges: [number, number][] = [
    [0x61, 0x7a],
    [0x61, 0x7a],
    [0x61, 0x7a],
    [0x20, 0x20],
    [0x20, 0x20],
    [0x30, 0x39],
    [0xe0, 0xff],
    [0x430, 0x44f],
    [0x4e00, 0x4fff],
    [0xac00, 0xacff],
    [0x1f300, 0x1f64f],
    [0x0a, 0x0a],
  ];
  let out = '';
  while (out.length < chars) {
    const [lo, hi] = ranges[Math.floor(rand() * ranges.length)];
    out += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
  }
  return out;
}

export async function runTextBenchmarks(settings: BenchSettings): Promise<BenchResult[]> {
  const t0 = performance.now();
  const tok = gpt2Tokenizer();
  log(`GPT-2 tokenizer built from js-tiktoken's ranks in ${(performance.now() - t0).toFixed(0)} ms`);
  const reference = new Tiktoken(gpt2Ranks);
  const results: BenchResult[] = [];
  const texts: [string, string][] = [
    ['English (repository docs)', englishText()],
    ['multilingual random', multilingualText(40_000, 1)],
  ];
  for (const [name, text] of texts) {
    const ours = tok.encode(text);
    const theirs = reference.encode(text, 'all');
    if (JSON.stringify(ours) !== JSON.stringify(theirs)) throw new Error(`${name}: the two encoders disagree`);
    const bytes = Buffer.byteLength(text);
    const { subject, baseline } = await timePair(
      async () => tok.encode(text),
      async () => reference.encode(text, 'all'),
      settings,
    );
    const mbs = (t: { medianNs: number }) => bytes / (t.medianNs / 1e9) / 1e6;
    results.push({
      name: `GPT-2 encode, ${name}`,
      metric: 'throughput',
      value: mbs(subject),
      unit: 'MB/s',
      baseline: { name: 'js-tiktoken 1.0.21 encode', value: mbs(baseline) },
      ratio: mbs(subject) / mbs(baseline),
      notes: `${(bytes / 1e3).toFixed(0)} kB, ${ours.length} tokens, identical ids from both; our piece cache is warm after the first call, as in a long-running service. ${describeTiming('ours', subject)}; ${describeTiming('js-tiktoken', baseline)}`,
    });
    log(`${name}: ${mbs(subject).toFixed(2)} MB/s vs ${mbs(baseline).toFixed(2)} MB/s`);
  }
  const dec = tok.encode(texts[0][1]);
  const { subject: d, baseline: dRef } = await timePair(
    async () => tok.decode(dec),
    async () => reference.decode(dec),
    settings,
  );
  const decMbs = (t: { medianNs: number }) => Buffer.byteLength(texts[0][1]) / (t.medianNs / 1e9) / 1e6;
  results.push({
    name: 'GPT-2 decode, English (repository docs)',
    metric: 'throughput',
    value: decMbs(d),
    unit: 'MB/s',
    baseline: { name: 'js-tiktoken 1.0.21 decode', value: decMbs(dRef) },
    ratio: decMbs(d) / decMbs(dRef),
    notes: `${dec.length} tokens per call. ${describeTiming('ours', d)}; ${describeTiming('js-tiktoken', dRef)}`,
  });
  return results;
}
