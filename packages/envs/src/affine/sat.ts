/**
 * Affine's SAT task: a random k-SAT formula near its satisfiability threshold in, a satisfying
 * assignment out.
 *
 * Draw: n variables (n_min..n_max), k literals per clause (k_min..k_max), m = round(ratio * n)
 * clauses, each over k distinct variables with random signs (clauses drawn independently, so
 * repeats are possible, as in the standard random k-SAT model). The ratio is the threshold of k times
 * `ratio_scale`: 4.2 for k = 3 (Affine's training guide's ratio; the asymptotic threshold is ~4.27), 9.93
 * for k = 4 and 21.12 for k = 5 (the known asymptotic thresholds). A formula the DPLL solver finds
 * unsatisfiable is redrawn, so every episode has an answer and the drawn formulas are uniform over
 * the satisfiable ones (planting a solution would bias them towards it).
 *
 * Answer: one line `x1=1 x2=0 ... xn=1` (1 true, 0 false). The parse is lenient: `xi=v` pairs
 * anywhere on the first non-blank line, separated by anything, v one of 1/0/true/false/t/f in any
 * case. Rewards: `correct` 1 when every variable is assigned once (or repeated with the same value)
 * and every clause holds; `format` 1 when the completion is exactly the canonical line (x1..xn in
 * order, 1/0, single spaces; surrounding whitespace allowed).
 */
import type { Rng, Schema, TextEnvSpec, TextTask, Verdict } from '@rlmesh/core';
import { ConfigError, DEFAULT_MAX_COMPLETION_BYTES, TextEnv } from '@rlmesh/core';
import { firstLine, REASONING_REWARDS } from './common';

/** A literal is +v (x_v) or -v (not x_v), v in 1..n. */
export type Clause = readonly number[];

export interface SatProblem {
  prompt: string;
  n: number;
  k: number;
  clauses: Clause[];
  /** One satisfying assignment (the solver's), index v-1 for x_v: what the expert answers. */
  solution: boolean[];
}

/** Clause-to-variable ratio per k at which random k-SAT formulas turn from mostly SAT to mostly UNSAT. */
export const SAT_THRESHOLDS: Readonly<Record<number, number>> = { 3: 4.2, 4: 9.93, 5: 21.12 };

const MAX_REDRAWS = 1000;

/** Every clause holds under `a` (index v-1 for x_v). */
export function satisfies(clauses: readonly Clause[], a: readonly boolean[]): boolean {
  return clauses.every((c) => c.some((lit) => a[Math.abs(lit) - 1] === lit > 0));
}

/**
 * DPLL with unit propagation: a satisfying assignment or null. Branches on a variable of the
 * shortest open clause, true-first by the literal's sign; unassigned variables at the end are false.
 */
export function solveSat(n: number, clauses: readonly Clause[]): boolean[] | null {
  const value = new Int8Array(n + 1); // 0 unassigned, 1 true, -1 false
  const litValue = (lit: number) => value[Math.abs(lit)] * Math.sign(lit);
  const search = (): boolean => {
    const trail: number[] = [];
    const undo = () => {
      for (const v of trail) value[v] = 0;
      return false;
    };
    for (let changed = true; changed; ) {
      changed = false;
      for (const c of clauses) {
        let open = 0;
        let last = 0;
        let sat = false;
        for (const lit of c) {
          const lv = litValue(lit);
          if (lv > 0) sat = true;
          else if (lv === 0) {
            open++;
            last = lit;
          }
        }
        if (sat) continue;
        if (open === 0) return undo();
        if (open === 1) {
          value[Math.abs(last)] = Math.sign(last);
          trail.push(Math.abs(last));
          changed = true;
        }
      }
    }
    let branch = 0;
    let best = Number.POSITIVE_INFINITY;
    for (const c of clauses) {
      if (c.some((lit) => litValue(lit) > 0)) continue;
      const open = c.filter((lit) => litValue(lit) === 0);
      if (open.length < best) {
        best = open.length;
        branch = open[0];
      }
    }
    if (branch === 0) return true;
    const v = Math.abs(branch);
    for (const s of [Math.sign(branch), -Math.sign(branch)]) {
      value[v] = s;
      if (search()) return true;
    }
    value[v] = 0;
    return undo();
  };
  if (!search()) return null;
  return Array.from({ length: n }, (_, i) => value[i + 1] > 0);
}

export function formatClause(c: Clause): string {
  return `(${c.map((lit) => (lit > 0 ? `x${lit}` : `¬x${-lit}`)).join(' ∨ ')})`;
}

export function formatAssignment(a: readonly boolean[]): string {
  return a.map((b, i) => `x${i + 1}=${b ? 1 : 0}`).join(' ');
}

export function satPrompt(n: number, k: number, clauses: readonly Clause[]): string {
  return [
    `Find values for the variables x1..x${n} that make this ${k}-SAT formula true.`,
    `The formula is the AND (∧) of the ${clauses.length} clauses below, one per line. A clause is true when at least one of its literals is; ¬ negates a variable.`,
    '',
    clauses.map(formatClause).join(' ∧\n'),
    '',
    `Answer with one line giving every variable 1 (true) or 0 (false), in order: x1=1 x2=0 ... x${n}=1`,
    'Answer:',
  ].join('\n');
}

const PAIR = /\bx(\d+)\s*=\s*(1|0|true|false|t|f)\b/gi;

/** The assignment a completion gives (index v-1 for x_v), or null when a variable is missing, out of range or given two values. */
export function parseAssignment(completion: string, n: number): boolean[] | null {
  const line = firstLine(completion);
  if (line === null) return null;
  const a: (boolean | undefined)[] = new Array(n).fill(undefined);
  for (const m of line.matchAll(PAIR)) {
    const v = Number(m[1]);
    if (!(v >= 1 && v <= n)) return null;
    const b = m[2] === '1' || m[2].toLowerCase().startsWith('t');
    if (a[v - 1] !== undefined && a[v - 1] !== b) return null;
    a[v - 1] = b;
  }
  return a.every((b) => b !== undefined) ? (a as boolean[]) : null;
}

export function verifySat(p: SatProblem, completion: string): Verdict {
  const a = parseAssignment(completion, p.n);
  const correct = a !== null && satisfies(p.clauses, a) ? 1 : 0;
  const format = a !== null && completion.trim() === formatAssignment(a) ? 1 : 0;
  return { reward: { correct, format }, success: correct === 1, parsed: a && formatAssignment(a) };
}

export interface SatOptions {
  nMin: number;
  nMax: number;
  kMin: number;
  kMax: number;
  ratioScale: number;
}

/** One satisfiable formula drawn from `rng`, with the solver's assignment. */
export function drawSat(rng: Rng, o: SatOptions): SatProblem {
  const n = o.nMin + rng.int(o.nMax - o.nMin + 1);
  const k = o.kMin + rng.int(o.kMax - o.kMin + 1);
  const m = Math.round(SAT_THRESHOLDS[k] * o.ratioScale * n);
  for (let attempt = 0; attempt < MAX_REDRAWS; attempt++) {
    const clauses: Clause[] = [];
    for (let j = 0; j < m; j++) {
      const vars: number[] = [];
      while (vars.length < k) {
        const v = 1 + rng.int(n);
        if (!vars.includes(v)) vars.push(v);
      }
      clauses.push(vars.map((v) => (rng.int(2) === 0 ? v : -v)));
    }
    const solution = solveSat(n, clauses);
    if (solution) return { prompt: satPrompt(n, k, clauses), n, k, clauses, solution };
  }
  throw new Error(`AffineSAT: no satisfiable ${k}-SAT formula with n=${n}, m=${m} in ${MAX_REDRAWS} draws; lower ratio_scale`);
}

export class SatTask implements TextTask<SatProblem> {
  readonly name = 'AffineSAT';
  readonly rewardComponents = REASONING_REWARDS;
  readonly numLevels = 1;
  constructor(readonly options: SatOptions) {}
  draw(rng: Rng): SatProblem {
    return drawSat(rng, this.options);
  }
  verify(p: SatProblem, completion: string): Verdict {
    return verifySat(p, completion);
  }
}

const SAT_OPTIONS = {
  n_min: { kind: 'int', default: 10, min: 1, max: 100, doc: 'fewest variables' },
  n_max: { kind: 'int', default: 20, min: 1, max: 100, doc: 'most variables' },
  k_min: { kind: 'int', default: 3, min: 3, max: 5, doc: 'fewest literals per clause' },
  k_max: { kind: 'int', default: 5, min: 3, max: 5, doc: 'most literals per clause' },
  ratio_scale: {
    kind: 'number',
    default: 1,
    min: 0,
    max: 1.5,
    exclusiveMin: true,
    doc: "clauses per variable as a multiple of k's threshold (4.2, 9.93, 21.12 for k = 3, 4, 5)",
  },
  max_episode_steps: { kind: 'int', default: 1, min: 1, max: 16, doc: 'answers allowed per episode; a correct one ends it' },
  max_completion_bytes: { kind: 'int', default: DEFAULT_MAX_COMPLETION_BYTES, min: 1, max: 1 << 20, doc: 'longest completion accepted' },
} as const satisfies Schema;

export const affineSat: TextEnvSpec<typeof SAT_OPTIONS> = {
  id: 'AffineSAT',
  description: "Affine's SAT: a random k-SAT formula near its threshold in, a satisfying assignment out (text)",
  options: SAT_OPTIONS,
  make: (o) => {
    if (o.n_min > o.n_max) throw new ConfigError('n_min', `must be <= n_max (${o.n_max}), got ${o.n_min}`);
    if (o.k_min > o.k_max) throw new ConfigError('k_min', `must be <= k_max (${o.k_max}), got ${o.k_min}`);
    if (o.k_max > o.n_min) throw new ConfigError('k_max', `must be <= n_min (${o.n_min}): a clause holds k distinct variables`);
    const task = new SatTask({ nMin: o.n_min, nMax: o.n_max, kMin: o.k_min, kMax: o.k_max, ratioScale: o.ratio_scale });
    return new TextEnv(task, o.max_episode_steps, o.max_completion_bytes);
  },
};
