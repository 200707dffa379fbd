import { makeTextEnv, Rng } from '@rlmesh/core';
import { describe, expect, it } from 'vitest';
import {
  abductionAnswer,
  argsMatch,
  deductionAnswer,
  demonstrations,
  drawAbduction,
  drawDeduction,
  drawProgram,
  drawSat,
  extractCode,
  formatAssignment,
  PROGRAM_TEMPLATES,
  paramsOf,
  parseAssignment,
  referenceOutput,
  SAT_THRESHOLDS,
  type SandboxLimits,
  type SatProblem,
  satisfies,
  solveSat,
  verifyAbduction,
  verifyDeduction,
  verifySat,
} from '../src';

const LIMITS: SandboxLimits = { wallMs: 3000, cpuSeconds: 1, memoryMb: 256, outputBytes: 16 * 1024 };
// Programs that never end are cut sooner, so the tests stay quick on a loaded machine.
const ENDLESS: SandboxLimits = { ...LIMITS, wallMs: 1500 };
const SAT_DEFAULTS = { nMin: 10, nMax: 20, kMin: 3, kMax: 5, ratioScale: 1 };

/** Every assignment of n variables, by brute force: the check on the DPLL solver. */
function bruteForce(n: number, clauses: readonly (readonly number[])[]): boolean {
  for (let bits = 0; bits < 1 << n; bits++) {
    const a = Array.from({ length: n }, (_, i) => ((bits >> i) & 1) === 1);
    if (satisfies(clauses, a)) return true;
  }
  return false;
}

describe('AffineSAT', () => {
  it('draws satisfiable formulas with m = round(threshold * n) clauses of k distinct variables', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 30; i++) {
      const p = drawSat(rng, SAT_DEFAULTS);
      expect(p.n).toBeGreaterThanOrEqual(10);
      expect(p.n).toBeLessThanOrEqual(20);
      expect(p.clauses).toHaveLength(Math.round(SAT_THRESHOLDS[p.k] * p.n));
      for (const c of p.clauses) {
        expect(new Set(c.map(Math.abs)).size).toBe(p.k);
        for (const lit of c) expect(Math.abs(lit)).toBeLessThanOrEqual(p.n);
      }
      expect(satisfies(p.clauses, p.solution)).toBe(true);
    }
  });

  it('DPLL agrees with brute force on random 3-SAT near the threshold, SAT and UNSAT', () => {
    const rng = new Rng(7);
    let unsat = 0;
    for (let t = 0; t < 60; t++) {
      const n = 8;
      const clauses = Array.from({ length: 40 }, () => {
        const vars = new Set<number>();
        while (vars.size < 3) vars.add(1 + rng.int(n));
        return [...vars].map((v) => (rng.int(2) ? v : -v));
      });
      const s = solveSat(n, clauses);
      expect(s !== null).toBe(bruteForce(n, clauses));
      if (s) expect(satisfies(clauses, s)).toBe(true);
      else unsat++;
    }
    expect(unsat).toBeGreaterThan(0);
  });

  it('verifies an assignment by evaluating it: right, wrong, partial, conflicting, lenient spellings', () => {
    const p = drawSat(new Rng(3), SAT_DEFAULTS);
    const right = formatAssignment(p.solution);
    expect(verifySat(p, right)).toEqual({ reward: { correct: 1, format: 1 }, success: true, parsed: right });
    expect(verifySat(p, ` ${right}\n`).reward).toEqual({ correct: 1, format: 1 });
    const lenient = p.solution.map((b, i) => `X${i + 1} = ${b ? 'True' : 'False'}`).join(', ');
    expect(verifySat(p, lenient).reward).toEqual({ correct: 1, format: 0 });
    // Flipping a variable that some clause needs breaks that clause.
    const broken = p.clauses.find((c) => c.filter((l) => p.solution[Math.abs(l) - 1] === l > 0).length === 1) as number[];
    const v = Math.abs(broken.find((l) => p.solution[Math.abs(l) - 1] === l > 0) as number);
    const flipped = p.solution.map((b, i) => (i === v - 1 ? !b : b));
    expect(verifySat(p, formatAssignment(flipped))).toMatchObject({ reward: { correct: 0, format: 1 }, success: false });
    expect(verifySat(p, formatAssignment(p.solution.slice(1))).parsed).toBeNull();
    expect(parseAssignment(`${right} x1=${p.solution[0] ? 0 : 1}`, p.n)).toBeNull();
    expect(parseAssignment(`${right} x${p.n + 1}=1`, p.n)).toBeNull();
    expect(verifySat(p, 'I think it is unsatisfiable').reward).toEqual({ correct: 0, format: 0 });
  });

  it('runs as a registered text env, one answer per episode, reproducible by seed', () => {
    const env = makeTextEnv('AffineSAT', { n_max: 12, k_max: 3 });
    const prompt = env.reset(5);
    expect(prompt).toMatch(/^Find values for the variables x1\.\.x1[0-2] that make this 3-SAT formula true/);
    expect(prompt.endsWith('Answer:')).toBe(true);
    expect(makeTextEnv('AffineSAT', { n_max: 12, k_max: 3 }).reset(5)).toBe(prompt);
    const p = env.current as SatProblem;
    const step = env.step(` ${formatAssignment(p.solution)}`);
    expect(step).toMatchObject({ success: true, terminated: true, truncated: false, prompt: '' });
    expect(() => makeTextEnv('AffineSAT', { k_min: 5, k_max: 4 })).toThrow(/env\.options\.k_min: must be <= k_max/);
  });
});

describe('program templates', () => {
  it("every template's outputs are deterministic and its drawn inputs have the declared types", () => {
    const rng = new Rng(2);
    for (const t of PROGRAM_TEMPLATES) {
      const p = drawProgram(rng, [t.id]);
      for (let i = 0; i < 5; i++) {
        const args = t.input(rng);
        expect(argsMatch(paramsOf(p), args)).toBe(true);
        expect(referenceOutput(p, args)).toBe(referenceOutput(p, structuredClone(args)));
      }
    }
  });

  it('the sandbox computes what the host computes for every template', () => {
    const rng = new Rng(4);
    const programs = PROGRAM_TEMPLATES.map((t) => drawProgram(rng, [t.id]));
    for (const p of programs) {
      const calls = Array.from({ length: 3 }, () => PROGRAM_TEMPLATES.find((t) => t.id === p.template)?.input(rng) as unknown[]);
      const answer = deductionAnswer({ prompt: '', program: p, examples: [], hidden: [] });
      const out = verifyDeduction(
        { prompt: '', program: p, examples: [], hidden: calls.map((args) => ({ args, expected: referenceOutput(p, args) })) },
        answer,
        LIMITS,
      );
      expect(out.reward).toEqual({ correct: 1, format: 1, tests: 1 });
    }
  });
});

describe('AffineABD', () => {
  const p = drawAbduction(new Rng(9));

  it('accepts the drawn input and any other input that gives the target; refuses the rest', () => {
    expect(verifyAbduction(p, abductionAnswer(p), LIMITS)).toMatchObject({ reward: { correct: 1, format: 1 }, success: true });
    const linear = { ...p, program: drawProgram(new Rng(1), ['linear']) };
    const target = referenceOutput(linear.program, [4]);
    const q = { ...linear, target, input: [4] };
    expect(verifyAbduction(q, '[4]', LIMITS).reward).toEqual({ correct: 1, format: 1 });
    expect(verifyAbduction(q, '[5]', LIMITS).reward).toEqual({ correct: 0, format: 1 });
    expect(verifyAbduction(q, '["4"]', LIMITS).reward).toEqual({ correct: 0, format: 0 });
    expect(verifyAbduction(q, '4', LIMITS).reward).toEqual({ correct: 0, format: 0 });
    expect(verifyAbduction(q, '[4]\nbecause 4 * a + b', LIMITS).reward).toEqual({ correct: 1, format: 0 });
  });

  it('scores 0 for an input that makes the program loop, without hanging', () => {
    const collatz = drawProgram(new Rng(1), ['collatz']);
    const q = { prompt: '', program: collatz, target: referenceOutput(collatz, [6]), input: [6] };
    expect(verifyAbduction(q, '[6]', LIMITS).reward.correct).toBe(1);
    const t0 = Date.now();
    expect(verifyAbduction(q, '[0]', ENDLESS).reward.correct).toBe(0);
    expect(Date.now() - t0).toBeLessThan(ENDLESS.wallMs + 2000);
  });
});

describe('AffineDED', () => {
  const p = drawDeduction(new Rng(12), 2, 8);

  it('shows the description and examples, never the hidden tests', () => {
    expect(p.prompt).toMatch(/^Write a JavaScript function f\(/);
    expect(p.prompt).toContain(`returns ${p.examples[0].expected}`);
    expect(p.hidden).toHaveLength(8);
  });

  it('passes the reference and fails wrong, partial, hostile and malformed programs', () => {
    expect(verifyDeduction(p, deductionAnswer(p), LIMITS)).toMatchObject({ reward: { correct: 1, format: 1, tests: 1 }, success: true });
    expect(verifyDeduction(p, p.program.source, LIMITS).reward).toEqual({ correct: 1, format: 0, tests: 1 });
    const first = p.hidden[0];
    const partial = `function f(...a) { return JSON.stringify(a) === ${JSON.stringify(JSON.stringify(first.args))} ? ${first.expected} : null; }`;
    const half = verifyDeduction(p, partial, LIMITS);
    expect(half.reward.correct).toBe(0);
    expect(half.reward.tests).toBeGreaterThan(0);
    expect(half.reward.tests).toBeLessThan(1);
    for (const bad of [
      '```javascript\nwhile (true) {}\n```',
      'function f( {',
      'return 42;',
      "function f() { require('child_process').execSync('id'); }",
    ])
      expect(verifyDeduction(p, bad, ENDLESS).reward).toMatchObject({ correct: 0, tests: 0 });
  });

  it('takes the first fenced block as the code', () => {
    expect(extractCode('Here:\n```js\nfunction f(n) { return n; }\n```\nDone.')).toBe('function f(n) { return n; }');
    expect(extractCode('function f(n) { return n; }')).toBe('function f(n) { return n; }');
  });

  it('runs as a registered text env', () => {
    const env = makeTextEnv('AffineDED', { hidden_tests: 4 });
    env.reset(1);
    const problem = env.current as Parameters<typeof deductionAnswer>[0];
    expect(env.step(deductionAnswer(problem))).toMatchObject({ success: true, terminated: true, reward: { correct: 1, tests: 1 } });
    expect(makeTextEnv('AffineABD', {}).reset(1)).toMatch(/^Here is a JavaScript function f\(/);
    expect(() => makeTextEnv('AffineDED', { memory_mb: 64 })).toThrow(/env\.options\.memory_mb/);
  });
});

describe('Affine demonstrations', () => {
  it("writes the experts' answers for abduction and deduction, each checked by the env", () => {
    for (const id of ['AffineABD', 'AffineDED']) {
      const recs = demonstrations(id, 3, 20);
      expect(recs.map((r) => r.seed)).toEqual([20, 21, 22]);
      for (const r of recs) expect(r.reward).toMatchObject({ correct: 1, format: 1 });
    }
    expect(() => demonstrations('CardRules', 1, 0)).toThrow(/no expert for "CardRules"/);
  });
});
