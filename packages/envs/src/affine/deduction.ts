/**
 * Affine's deduction (DED): a description in, a program that passes hidden tests out.
 *
 * Draw: a program from the template family (programs.ts); the prompt describes what f takes and
 * returns and shows `examples` calls with their results; `hidden` more inputs from the same domain,
 * with the template's outputs, are the tests. The answer runs in the sandbox on all of them in one
 * process.
 *
 * Answer: JavaScript defining a function `f`, in one ```javascript (or ```js) block; a completion
 * without a fence is taken whole as the code. Rewards: `correct` 1 when every hidden test passes;
 * `tests` the fraction that pass (a denser signal); `format` 1 when the completion is exactly one
 * fenced block and nothing else.
 */
import type { Rng, Schema, TextEnvSpec, TextTask, Verdict } from '@rlmesh/core';
import { TextEnv } from '@rlmesh/core';
import { SANDBOX_OPTIONS, sandboxLimits } from './abduction';
import { describeProgram, drawInput, drawProgram, type ProgramInstance, referenceOutput, runProgram } from './programs';
import { checkSandbox, DEFAULT_SANDBOX_LIMITS, type SandboxLimits } from './sandbox';

export const DEDUCTION_REWARDS = ['correct', 'format', 'tests'] as const;

export interface ProgramTest {
  args: unknown[];
  /** f(...args) as JSON text. */
  expected: string;
}

export interface DeductionProblem {
  prompt: string;
  /** The reference: what the expert answers. */
  program: ProgramInstance;
  examples: ProgramTest[];
  hidden: ProgramTest[];
}

const FENCE = /```(?:javascript|js)?[ \t]*\n([\s\S]*?)\n?```/;
const ONLY_FENCE = /^```(?:javascript|js)[ \t]*\n[\s\S]*?\n```$/;

/** The code of a completion: its first fenced block, or the whole completion when it has none. */
export function extractCode(completion: string): string {
  return FENCE.exec(completion)?.[1] ?? completion;
}

const call = (t: ProgramTest) => `f(${t.args.map((a) => JSON.stringify(a)).join(', ')})`;

export function deductionPrompt(p: ProgramInstance, examples: readonly ProgramTest[]): string {
  const d = describeProgram(p);
  return [
    `Write a JavaScript function ${d.signature} that takes ${d.takes} and returns ${d.returns}.`,
    `Examples: ${examples.map((t) => `${call(t)} returns ${t.expected}`).join('; ')}.`,
    'Answer with the function only, in one ```javascript code block.',
    'Answer:',
  ].join('\n');
}

function drawTests(rng: Rng, p: ProgramInstance, n: number): ProgramTest[] {
  return Array.from({ length: n }, () => {
    const args = drawInput(rng, p);
    return { args, expected: referenceOutput(p, args) };
  });
}

export function drawDeduction(rng: Rng, nExamples: number, nHidden: number): DeductionProblem {
  const program = drawProgram(rng);
  const examples = drawTests(rng, program, nExamples);
  const hidden = drawTests(rng, program, nHidden);
  return { prompt: deductionPrompt(program, examples), program, examples, hidden };
}

/** The expert's completion: the reference source in a fence. */
export function deductionAnswer(p: DeductionProblem): string {
  return `\n\`\`\`javascript\n${p.program.source}\n\`\`\``;
}

export function verifyDeduction(p: DeductionProblem, completion: string, limits: SandboxLimits): Verdict {
  const code = extractCode(completion);
  const format = ONLY_FENCE.test(completion.trim()) ? 1 : 0;
  const out = runProgram(
    code,
    p.hidden.map((t) => t.args),
    limits,
  );
  const passed = out.results ? out.results.filter((r, i) => r.ok && r.value === p.hidden[i].expected).length : 0;
  const correct = passed === p.hidden.length ? 1 : 0;
  return {
    reward: { correct, format, tests: passed / p.hidden.length },
    success: correct === 1,
    parsed: out.results ? `${passed}/${p.hidden.length} tests passed` : out.error,
  };
}

export class DeductionTask implements TextTask<DeductionProblem> {
  readonly name = 'AffineDED';
  readonly rewardComponents = DEDUCTION_REWARDS;
  readonly numLevels = 1;
  constructor(
    readonly limits: SandboxLimits = DEFAULT_SANDBOX_LIMITS,
    readonly nExamples = 2,
    readonly nHidden = 8,
  ) {}
  draw(rng: Rng): DeductionProblem {
    // Here rather than in make, so that listing the environments works on a machine without the sandbox.
    checkSandbox();
    return drawDeduction(rng, this.nExamples, this.nHidden);
  }
  verify(p: DeductionProblem, completion: string): Verdict {
    return verifyDeduction(p, completion, this.limits);
  }
}

const DEDUCTION_OPTIONS = {
  ...SANDBOX_OPTIONS,
  examples: { kind: 'int', default: 2, min: 1, max: 8, doc: 'example calls shown in the prompt' },
  hidden_tests: { kind: 'int', default: 8, min: 1, max: 64, doc: 'hidden test calls an answer must pass' },
} as const satisfies Schema;

export const affineDeduction: TextEnvSpec<typeof DEDUCTION_OPTIONS> = {
  id: 'AffineDED',
  description: "Affine's deduction: a description in, a JavaScript function passing hidden tests out (text; sandboxed)",
  options: DEDUCTION_OPTIONS,
  make: (o) => {
    const task = new DeductionTask(sandboxLimits(o), o.examples, o.hidden_tests);
    return new TextEnv(task, o.max_episode_steps, o.max_completion_bytes);
  },
};
