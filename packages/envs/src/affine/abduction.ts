/**
 * Affine's abduction (ABD): a program and an output in, an input that produces the output out.
 *
 * Draw: a program from the template family (programs.ts) and an input from its domain; the target is
 * the program's output on that input. Any input of the declared types that makes the program print
 * the target is right, not only the drawn one: the answer runs in the sandbox.
 *
 * Answer: the arguments as one JSON array on the first non-blank line, `[5]` for f(n) with n = 5 or
 * `[[1, 2], "ab"]` for two arguments. Rewards: `correct` 1 when f(...answer) equals the target (as
 * JSON text); `format` 1 when the completion is exactly that one JSON line and the values have the
 * declared types (whatever f makes of them).
 */
import type { Rng, Schema, TextEnvSpec, TextTask, Verdict } from '@rlmesh/core';
import { DEFAULT_MAX_COMPLETION_BYTES, TextEnv } from '@rlmesh/core';
import { firstLine, REASONING_REWARDS } from './common';
import {
  argsMatch,
  describeProgram,
  drawInput,
  drawProgram,
  type ProgramInstance,
  paramsOf,
  referenceOutput,
  runProgram,
} from './programs';
import { checkSandbox, DEFAULT_SANDBOX_LIMITS, type SandboxLimits } from './sandbox';

export interface AbductionProblem {
  prompt: string;
  program: ProgramInstance;
  /** f's output on `input`, as JSON text. */
  target: string;
  /** The drawn input: what the expert answers. */
  input: unknown[];
}

export function abductionPrompt(p: ProgramInstance, target: string): string {
  const d = describeProgram(p);
  return [
    `Here is a JavaScript function ${d.signature}, which takes ${d.takes}:`,
    '',
    p.source,
    '',
    `Find arguments for which f returns ${target} (written as JSON).`,
    'Answer with the arguments as one JSON array on one line, e.g. [5] for f(n) with n = 5.',
    'Answer:',
  ].join('\n');
}

export function drawAbduction(rng: Rng): AbductionProblem {
  const program = drawProgram(rng);
  const input = drawInput(rng, program);
  const target = referenceOutput(program, input);
  return { prompt: abductionPrompt(program, target), program, target, input };
}

/** The expert's completion: the drawn input. */
export function abductionAnswer(p: AbductionProblem): string {
  return ` ${JSON.stringify(p.input)}`;
}

export function verifyAbduction(p: AbductionProblem, completion: string, limits: SandboxLimits): Verdict {
  const line = firstLine(completion);
  let args: unknown = null;
  try {
    args = line === null ? null : JSON.parse(line);
  } catch {
    args = null;
  }
  if (!argsMatch(paramsOf(p.program), args)) return { reward: { correct: 0, format: 0 }, success: false, parsed: null };
  const format = completion.trim() === line ? 1 : 0;
  const out = runProgram(p.program.source, [args], limits);
  const r = out.results?.[0];
  const correct = r?.ok && r.value === p.target ? 1 : 0;
  return { reward: { correct, format }, success: correct === 1, parsed: JSON.stringify(args) };
}

export class AbductionTask implements TextTask<AbductionProblem> {
  readonly name = 'AffineABD';
  readonly rewardComponents = REASONING_REWARDS;
  readonly numLevels = 1;
  constructor(readonly limits: SandboxLimits = DEFAULT_SANDBOX_LIMITS) {}
  draw(rng: Rng): AbductionProblem {
    // Here rather than in make, so that listing the environments works on a machine without the sandbox.
    checkSandbox();
    return drawAbduction(rng);
  }
  verify(p: AbductionProblem, completion: string): Verdict {
    return verifyAbduction(p, completion, this.limits);
  }
}

/** The sandbox's limits as env options, shared by abduction and deduction. */
export const SANDBOX_OPTIONS = {
  wall_ms: { kind: 'int', default: DEFAULT_SANDBOX_LIMITS.wallMs, min: 100, max: 60_000, doc: "a program run's wall-clock limit (ms)" },
  cpu_seconds: { kind: 'int', default: DEFAULT_SANDBOX_LIMITS.cpuSeconds, min: 1, max: 60, doc: "a program run's CPU-time limit (s)" },
  memory_mb: {
    kind: 'int',
    default: DEFAULT_SANDBOX_LIMITS.memoryMb,
    min: 192,
    max: 4096,
    doc: "a program run's address-space limit (MiB)",
  },
  output_bytes: { kind: 'int', default: DEFAULT_SANDBOX_LIMITS.outputBytes, min: 1024, max: 1 << 22, doc: "a program run's stdout cap" },
  max_episode_steps: { kind: 'int', default: 1, min: 1, max: 16, doc: 'answers allowed per episode; a correct one ends it' },
  max_completion_bytes: { kind: 'int', default: DEFAULT_MAX_COMPLETION_BYTES, min: 1, max: 1 << 20, doc: 'longest completion accepted' },
} as const satisfies Schema;

export function sandboxLimits(o: { wall_ms: number; cpu_seconds: number; memory_mb: number; output_bytes: number }): SandboxLimits {
  return { wallMs: o.wall_ms, cpuSeconds: o.cpu_seconds, memoryMb: o.memory_mb, outputBytes: o.output_bytes };
}

export const affineAbduction: TextEnvSpec<typeof SANDBOX_OPTIONS> = {
  id: 'AffineABD',
  description: "Affine's abduction: a JavaScript function and an output in, an input producing it out (text; sandboxed)",
  options: SANDBOX_OPTIONS,
  make: (o) => {
    return new TextEnv(new AbductionTask(sandboxLimits(o)), o.max_episode_steps, o.max_completion_bytes);
  },
};
