/**
 * The program family behind abduction and deduction: small JavaScript functions `f` drawn from
 * templates (arithmetic, strings, lists) with seeded parameters. A template's source text is the one
 * implementation: the host evaluates it directly to know the right outputs (it is our code), and
 * untrusted programs (a deduction answer) or untrusted inputs (an abduction answer) run only in the
 * sandbox, through one harness. Values are compared as JSON.stringify text.
 */
import type { Rng } from '@rlmesh/core';
import { DEFAULT_SANDBOX_LIMITS, runSandboxed, type SandboxLimits } from './sandbox';

/** A parameter's declared type; answers whose values do not have it are wrong before anything runs. */
export type ParamType = 'int' | 'string' | 'int[]';

export interface Param {
  name: string;
  type: ParamType;
  /** How the prompt describes the value. */
  doc: string;
}

interface Template {
  id: string;
  params: readonly Param[];
  /** Constants of one instance, drawn from rng. */
  constants(rng: Rng): Record<string, number>;
  source(c: Record<string, number>): string;
  /** What f returns, completing "returns ..." (deduction's prompt). */
  returns(c: Record<string, number>): string;
  /** Arguments within the described domain. */
  input(rng: Rng): unknown[];
}

const between = (rng: Rng, lo: number, hi: number) => lo + rng.int(hi - lo + 1);
const ints = (rng: Rng, n: number, lo: number, hi: number) => Array.from({ length: n }, () => between(rng, lo, hi));
const word = (rng: Rng, lo: number, hi: number) =>
  Array.from({ length: between(rng, lo, hi) }, () => String.fromCharCode(97 + rng.int(26))).join('');
const N: Param = { name: 'n', type: 'int', doc: 'an integer n' };
const S: Param = { name: 's', type: 'string', doc: 'a string s of lowercase letters a-z' };
const XS: Param = { name: 'xs', type: 'int[]', doc: 'an array of integers xs' };

export const PROGRAM_TEMPLATES: readonly Template[] = [
  {
    id: 'linear',
    params: [N],
    constants: (rng) => ({ a: between(rng, 2, 9), b: between(rng, -20, 20) }),
    source: ({ a, b }) => `function f(n) {\n  return n * ${a} + ${b};\n}`,
    returns: ({ a, b }) => `n times ${a}, plus ${b}`,
    input: (rng) => [between(rng, -50, 50)],
  },
  {
    id: 'digit_sum',
    params: [{ ...N, doc: 'a non-negative integer n' }],
    constants: (rng) => ({ a: between(rng, 1, 5) }),
    source: ({ a }) => `function f(n) {\n  let s = 0;\n  for (const d of String(n)) s += Number(d);\n  return s * ${a};\n}`,
    returns: ({ a }) => `${a} times the sum of the decimal digits of n`,
    input: (rng) => [between(rng, 0, 99999)],
  },
  {
    id: 'collatz',
    params: [{ ...N, doc: 'a positive integer n' }],
    constants: () => ({}),
    source: () =>
      'function f(n) {\n  let steps = 0;\n  while (n !== 1) {\n    n = n % 2 === 0 ? n / 2 : 3 * n + 1;\n    steps++;\n  }\n  return steps;\n}',
    returns: () => 'how many steps the Collatz map (n/2 when n is even, 3n+1 when odd) takes to bring n to 1',
    input: (rng) => [between(rng, 1, 200)],
  },
  {
    id: 'caesar',
    params: [S],
    constants: (rng) => ({ k: between(rng, 1, 25) }),
    source: ({ k }) =>
      `function f(s) {\n  return [...s].map((c) => String.fromCharCode(((c.charCodeAt(0) - 97 + ${k}) % 26) + 97)).join('');\n}`,
    returns: ({ k }) => `s with every letter moved ${k} places forward in the alphabet, z wrapping round to a`,
    input: (rng) => [word(rng, 3, 8)],
  },
  {
    id: 'vowels',
    params: [S],
    constants: (rng) => ({ a: between(rng, 1, 4), b: between(rng, 0, 9) }),
    source: ({ a, b }) => `function f(s) {\n  return [...s].filter((c) => 'aeiou'.includes(c)).length * ${a} + ${b};\n}`,
    returns: ({ a, b }) => `the number of vowels (a, e, i, o, u) in s times ${a}, plus ${b}`,
    input: (rng) => [word(rng, 2, 10)],
  },
  {
    id: 'run_length',
    params: [S],
    constants: () => ({}),
    source: () =>
      "function f(s) {\n  let out = '';\n  for (let i = 0; i < s.length; ) {\n    let j = i;\n    while (j < s.length && s[j] === s[i]) j++;\n    out += s[i] + (j - i);\n    i = j;\n  }\n  return out;\n}",
    returns: () =>
      'the run-length encoding of s: each run of one repeated letter written as the letter and the run length ("aaab" gives "a3b1")',
    input: (rng) => [
      Array.from({ length: between(rng, 1, 4) }, () => String.fromCharCode(97 + rng.int(4)).repeat(between(rng, 1, 4))).join(''),
    ],
  },
  {
    id: 'filter_sum',
    params: [{ ...XS, doc: 'an array of non-negative integers xs' }],
    constants: (rng) => {
      const m = between(rng, 2, 5);
      return { m, r: rng.int(m) };
    },
    source: ({ m, r }) => `function f(xs) {\n  return xs.filter((x) => x % ${m} === ${r}).reduce((a, b) => a + b, 0);\n}`,
    returns: ({ m, r }) => `the sum of the elements of xs that leave remainder ${r} when divided by ${m} (0 when there are none)`,
    input: (rng) => [ints(rng, between(rng, 0, 7), 0, 30)],
  },
  {
    id: 'map_sort',
    params: [XS],
    // A multiplier of 0 would map every input to the same value, leaving nothing to infer.
    constants: (rng) => ({ a: between(rng, -3, 3) || 2, b: between(rng, -5, 5) }),
    source: ({ a, b }) => `function f(xs) {\n  return xs.map((x) => x * ${a} + ${b}).sort((p, q) => p - q);\n}`,
    returns: ({ a, b }) => `a new array of x * ${a} + ${b} for every element x of xs, sorted in ascending order`,
    input: (rng) => [ints(rng, between(rng, 0, 6), -10, 10)],
  },
  {
    id: 'prefix_sums',
    params: [XS],
    constants: (rng) => ({ k: between(rng, 1, 3) }),
    source: ({ k }) => `function f(xs) {\n  let s = 0;\n  return xs.map((x) => (s += x * ${k}));\n}`,
    returns: ({ k }) => `the running sums of ${k} * x over xs: element i is ${k} times the sum of xs[0..i]`,
    input: (rng) => [ints(rng, between(rng, 0, 6), -9, 9)],
  },
  {
    id: 'top_k',
    params: [XS],
    constants: (rng) => ({ k: between(rng, 1, 3) }),
    source: ({ k }) => `function f(xs) {\n  return [...xs].sort((p, q) => q - p).slice(0, ${k});\n}`,
    returns: ({ k }) => `the ${k} largest elements of xs in descending order (all of them, descending, when xs has fewer)`,
    input: (rng) => [ints(rng, between(rng, 0, 7), -20, 20)],
  },
];

/** One drawn program: a template with its constants. Plain data, so episodes snapshot it. */
export interface ProgramInstance {
  template: string;
  constants: Record<string, number>;
  source: string;
}

function templateOf(id: string): Template {
  const t = PROGRAM_TEMPLATES.find((x) => x.id === id);
  if (!t) throw new Error(`unknown program template ${id}`);
  return t;
}

export function drawProgram(rng: Rng, templates: readonly string[] = PROGRAM_TEMPLATES.map((t) => t.id)): ProgramInstance {
  const t = templateOf(templates[rng.int(templates.length)]);
  const constants = t.constants(rng);
  return { template: t.id, constants, source: t.source(constants) };
}

export function paramsOf(p: ProgramInstance): readonly Param[] {
  return templateOf(p.template).params;
}

export function describeProgram(p: ProgramInstance): { signature: string; takes: string; returns: string } {
  const t = templateOf(p.template);
  return {
    signature: `f(${t.params.map((x) => x.name).join(', ')})`,
    takes: t.params.map((x) => x.doc).join(' and '),
    returns: t.returns(p.constants),
  };
}

export function drawInput(rng: Rng, p: ProgramInstance): unknown[] {
  return templateOf(p.template).input(rng);
}

/** f(...args) of a trusted template, evaluated in this process, as JSON text. */
export function referenceOutput(p: ProgramInstance, args: readonly unknown[]): string {
  const f = new Function(`${p.source}\nreturn f;`)() as (...a: unknown[]) => unknown;
  return JSON.stringify(f(...args)) ?? 'undefined';
}

/** Whether `args` match the declared parameter types (count included). */
export function argsMatch(params: readonly Param[], args: unknown): args is unknown[] {
  if (!Array.isArray(args) || args.length !== params.length) return false;
  return params.every((p, i) => {
    const v = args[i];
    if (p.type === 'int') return Number.isSafeInteger(v);
    if (p.type === 'string') return typeof v === 'string';
    return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x));
  });
}

/**
 * Loads program.js (which sets module.exports to its f), calls f on every argument list read from
 * stdin and writes one JSON line of results last. What the harness needs is captured before the
 * program runs, so a program that replaces JSON.stringify or fs.writeSync changes only its own view.
 */
const HARNESS = `'use strict';
const fs = require('fs');
const writeSync = fs.writeSync;
const stringify = JSON.stringify;
const exit = process.exit;
const calls = JSON.parse(fs.readFileSync(0, 'utf8'));
const report = (o) => { writeSync(1, '\\n' + stringify(o) + '\\n'); exit(0); };
const message = (e) => String((e && e.message) || e).slice(0, 300);
let f;
try { f = require('./program.js'); } catch (e) { report({ error: 'the program does not load: ' + message(e) }); }
if (typeof f !== 'function') report({ error: 'the program defines no function f' });
const results = [];
for (const args of calls) {
  try { const v = stringify(f(...args)); results.push({ ok: true, value: v === undefined ? 'undefined' : v }); }
  catch (e) { results.push({ ok: false, error: message(e) }); }
}
report({ results });
`;

export type CallResult = { ok: true; value: string } | { ok: false; error: string };

export interface RunOutcome {
  /** One per argument list, or null when the run failed as a whole. */
  results: CallResult[] | null;
  /** Why the run failed (load error, a limit, a crash), or null. */
  error: string | null;
}

/** Runs `source` (which must define f) on each argument list in the sandbox. */
export function runProgram(source: string, calls: readonly unknown[][], limits: SandboxLimits = DEFAULT_SANDBOX_LIMITS): RunOutcome {
  const program = `${source}\n;module.exports = typeof f === 'function' ? f : undefined;\n`;
  const r = runSandboxed({ 'main.js': HARNESS, 'program.js': program }, 'main.js', JSON.stringify(calls), limits);
  if (r.status !== 'ok') {
    const why = r.status === 'exit' ? `exit code ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}` : r.status;
    return { results: null, error: `the program was stopped (${why})` };
  }
  const last = r.stdout.trimEnd().split('\n').pop() ?? '';
  try {
    const o = JSON.parse(last) as { results?: CallResult[]; error?: string };
    if (o.error) return { results: null, error: o.error };
    if (Array.isArray(o.results) && o.results.length === calls.length) return { results: o.results, error: null };
  } catch {
    // falls through: the last line is not the harness's
  }
  return { results: null, error: 'the run ended without the harness report' };
}
