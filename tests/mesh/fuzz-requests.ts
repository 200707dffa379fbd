/**
 * Hostile requests for every rlmesh RPC, seeded so that a failing case can be replayed: random
 * bytes, bit-flipped valid requests, and well-formed messages whose fields hold what a careless or
 * malicious client sends (wrong dtypes and shapes, NaN and Inf, negative and huge sizes, long and
 * odd strings, unknown config keys, deep or oversized YAML).
 */
import type { Rng } from '@rlmesh/core';
import {
  ActRequest,
  CloseEnvRequest,
  CompareRequest,
  DType,
  EvaluateRequest,
  GetEvaluationRequest,
  GetPolicyRequest,
  GetRunRequest,
  ListEnvsRequest,
  ListEvaluationsRequest,
  ListRunsRequest,
  type MessageFns,
  type PolicyChannel,
  ResetRequest,
  SessionRequest,
  StartRunRequest,
  StepRequest,
  StopRunRequest,
  type Tensor,
  VecResetRequest,
  VecStepRequest,
} from '@rlmesh/proto';

/** What the fuzzer knows of the live system: names that exist, so some requests get past lookup. */
export interface Known {
  envIds: string[];
  runId: string;
  obsDim: number;
  handles: string[];
  validConfig: string;
  validSuite: string;
  evaluationIds: string[];
}

export type Gen = (rng: Rng, known: Known) => Buffer;

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng.uniform() * xs.length)];
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng.uniform() * (hi - lo + 1));

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng.uniform() * 256);
  return b;
}

function flipBits(rng: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let k = int(rng, 1, 4); k > 0 && out.length > 0; k--) out[int(rng, 0, out.length - 1)] ^= 1 << int(rng, 0, 7);
  return out;
}

export function hostileString(rng: Rng, known: readonly string[] = []): string {
  switch (int(rng, 0, 9)) {
    case 0:
      return '';
    case 1:
      return 'x'.repeat(int(rng, 1000, 200_000));
    case 2:
      return '../../../etc/passwd';
    case 3:
      return '\u0000\uffff\ud800 \u202e rlmesh';
    case 4:
      return `${pick(rng, known.length ? known : ['a'])}\n`;
    case 5:
      return '%s%n\u0024{}{{}}<script>';
    case 6:
      return randomBytes(rng, int(rng, 1, 64)).toString('latin1');
    default:
      return known.length && rng.uniform() < 0.6 ? pick(rng, known) : `r${int(rng, 0, 1e9)}`;
  }
}

const HOSTILE_NUMBERS = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, 0, -0, 1e30, -1e30, 2 ** 31, 2 ** 53, 1e-45];

export function hostileNumber(rng: Rng): number {
  return rng.uniform() < 0.6 ? pick(rng, HOSTILE_NUMBERS) : (rng.uniform() - 0.5) * 10 ** int(rng, 0, 12);
}

/** uint32 / int32 fields: out-of-range values as they arrive on the wire. */
const hostileU32 = (rng: Rng) => pick(rng, [0, 1, 2, 7, 1024, 65_536, 1_000_000, 2 ** 31 - 1, 2 ** 32 - 1]);
const hostileI32 = (rng: Rng) => pick(rng, [-(2 ** 31), -1, 0, 1, 5, 1000, 2 ** 31 - 1]);

/** Tensors with a wrong dtype, a shape that disagrees with the data, negative or huge dims, NaN. */
export function hostileTensor(rng: Rng, width: number): Tensor {
  const rows = pick(rng, [0, 1, 2, 4, 64]);
  const dtype = pick(rng, [
    DType.DTYPE_FLOAT32,
    DType.DTYPE_FLOAT32,
    DType.DTYPE_INT32,
    DType.DTYPE_INT64,
    DType.DTYPE_UINT8,
    0,
    99 as DType,
  ]);
  let shape = [rows, width];
  switch (int(rng, 0, 6)) {
    case 0:
      shape = [rows, width + 1];
      break;
    case 1:
      shape = [-1, width];
      break;
    case 2:
      shape = [2 ** 40, width];
      break;
    case 3:
      shape = [rows];
      break;
    case 4:
      shape = [rows, width, 1, 1];
      break;
  }
  const n = Math.max(0, rows * width + pick(rng, [0, 0, 0, 1, -1]));
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = rng.uniform() < 0.2 ? hostileNumber(rng) : rng.uniform();
  return { dtype, shape, data: Buffer.from(f.buffer) };
}

function hostileOptions(rng: Rng): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let k = int(rng, 0, 3); k > 0; k--) {
    const key = pick(rng, ['num_symbols', 'window', 'max_steps', 'level', hostileString(rng)]);
    out[key] = pick(rng, [hostileNumber(rng), hostileString(rng), true, null, [1, 2], { a: { b: 1 } }]);
  }
  return out;
}

/** A config that parses as YAML but breaks a rule, or does not parse at all. */
export function hostileConfig(rng: Rng, valid: string): string {
  switch (int(rng, 0, 9)) {
    case 0:
      return randomBytes(rng, int(rng, 1, 4096)).toString('latin1');
    case 1:
      return `${'['.repeat(int(rng, 1000, 100_000))}1`;
    case 2:
      return `a: &a [x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 12 }, (_, i) => `b${i}: &b${i} [*${i ? `b${i - 1}` : 'a'}, *${i ? `b${i - 1}` : 'a'}, *${i ? `b${i - 1}` : 'a'}]`).join('\n')}\n`;
    case 3:
      return `${valid}\n${hostileString(rng)}: 1\n`;
    case 4:
      return valid.replace(/num_envs: \d+/, `num_envs: ${pick(rng, [0, -3, 1e9, 'many', 0.5])}`);
    case 5:
      return `${valid}\nrun:\n  out_dir: ../../../../tmp/escape\n`;
    case 6:
      return `${valid}\nmodel:\n  id: ${pick(rng, ['baby', 'nope', ''])}\n  d_model: ${pick(rng, [1e7, -1, 'x'])}\n`;
    case 7:
      return `# ${'y'.repeat(int(rng, 300_000, 600_000))}\n${valid.replace('total_env_steps', 'total_env_stepz')}`;
    case 8:
      return valid.replace(/algo:\n {2}name: \w+/, `algo:\n  name: ${hostileString(rng)}`);
    default:
      return valid.replace(/(\w+): (\d+(\.\d+)?(e-?\d+)?)\n/, `$1: ${pick(rng, ['.nan', '.inf', '-.inf', '1e400', '[]', '{}'])}\n`);
  }
}

function encoded<T>(fns: MessageFns<T>, msg: T): Buffer {
  return Buffer.from(fns.encode(msg).finish());
}

/** Each generator: a third random or bit-flipped bytes, the rest hostile messages. */
function generator<T>(fns: MessageFns<T>, make: (rng: Rng, known: Known) => T): Gen {
  return (rng, known) => {
    const r = rng.uniform();
    if (r < 0.15) return randomBytes(rng, int(rng, 0, 512));
    const msg = encoded(fns, make(rng, known));
    return r < 0.33 ? flipBits(rng, msg) : msg;
  };
}

const resetRequest = (rng: Rng, k: Known) =>
  ResetRequest.fromPartial({
    envId: hostileString(rng, k.envIds),
    options: hostileOptions(rng),
    handle: rng.uniform() < 0.5 ? '' : hostileString(rng, k.handles),
    seed: rng.uniform() < 0.5 ? undefined : hostileU32(rng),
    difficulty: hostileI32(rng),
  });

const stepRequest = (rng: Rng, k: Known) =>
  StepRequest.fromPartial({
    handle: hostileString(rng, k.handles),
    action: hostileI32(rng),
    actionValues: rng.uniform() < 0.5 ? [] : Array.from({ length: int(rng, 1, 5) }, () => hostileNumber(rng)),
  });

export const ENV_RPCS: Record<string, Gen> = {
  ListEnvs: generator(ListEnvsRequest, () => ListEnvsRequest.fromPartial({})),
  Reset: generator(ResetRequest, resetRequest),
  Step: generator(StepRequest, stepRequest),
  VecReset: generator(VecResetRequest, (rng, k) =>
    VecResetRequest.fromPartial({
      envId: hostileString(rng, k.envIds),
      options: hostileOptions(rng),
      numEnvs: hostileU32(rng),
      handle: rng.uniform() < 0.5 ? '' : hostileString(rng, k.handles),
      seed: rng.uniform() < 0.5 ? undefined : hostileU32(rng),
      difficulty: hostileI32(rng),
    }),
  ),
  VecStep: generator(VecStepRequest, (rng, k) =>
    VecStepRequest.fromPartial({ handle: hostileString(rng, k.handles), actions: hostileTensor(rng, pick(rng, [1, 2])) }),
  ),
  CloseEnv: generator(CloseEnvRequest, (rng, k) => CloseEnvRequest.fromPartial({ handle: hostileString(rng, k.handles) })),
};

/** One message on a fresh Session stream. */
export const SESSION: Gen = generator(SessionRequest, (rng, k) =>
  SessionRequest.fromPartial({
    request: rng.uniform() < 0.5 ? { $case: 'reset', reset: resetRequest(rng, k) } : { $case: 'step', step: stepRequest(rng, k) },
  }),
);

export const POLICY_RPCS: Record<string, Gen> = {
  Act: generator(ActRequest, (rng, k) =>
    ActRequest.fromPartial({
      runId: hostileString(rng, [k.runId]),
      obs: hostileTensor(rng, rng.uniform() < 0.7 ? k.obsDim : int(rng, 1, 20)),
      greedy: rng.uniform() < 0.5,
      // A version the run will reach soon or never: the wait is bounded by the service.
      minVersion: pick(rng, [0, 0, 1, 2 ** 40]),
      seed: hostileU32(rng),
    }),
  ),
  GetPolicy: generator(GetPolicyRequest, (rng, k) => GetPolicyRequest.fromPartial({ runId: hostileString(rng, [k.runId]) })),
};

export const LEARNER_RPCS: Record<string, Gen> = {
  StartRun: generator(StartRunRequest, (rng, k) =>
    StartRunRequest.fromPartial({ config: hostileConfig(rng, k.validConfig), runId: hostileString(rng, [k.runId]) }),
  ),
  GetRun: generator(GetRunRequest, (rng, k) => GetRunRequest.fromPartial({ runId: hostileString(rng, [k.runId]) })),
  StopRun: generator(StopRunRequest, (rng) => StopRunRequest.fromPartial({ runId: hostileString(rng) })),
  ListRuns: generator(ListRunsRequest, () => ListRunsRequest.fromPartial({})),
};

/** WatchRun's request (a GetRunRequest) on a fresh server stream. */
export const WATCH_RUN: Gen = LEARNER_RPCS.GetRun;

const hostilePath = (rng: Rng) =>
  pick(rng, [
    '',
    '../../../etc/passwd',
    '/etc/hostname',
    'x'.repeat(5000),
    'runs/../../secret',
    '\u0000',
    'model.safetensors',
    hostileString(rng),
  ]);

/** EvaluatorService; Evaluate is a server stream (first message or status). */
export const EVALUATE: Gen = generator(EvaluateRequest, (rng, k) =>
  EvaluateRequest.fromPartial({
    suite: rng.uniform() < 0.3 ? k.validSuite : hostileConfig(rng, k.validSuite),
    policy:
      rng.uniform() < 0.15
        ? undefined
        : {
            runId: rng.uniform() < 0.3 ? '' : hostileString(rng, [k.runId]),
            version: pick(rng, [0, 1, 2, 2 ** 40]),
            channel: pick(rng, [0, 1, 2, 9]) as PolicyChannel,
            checkpoint: rng.uniform() < 0.6 ? '' : hostilePath(rng),
            label: rng.uniform() < 0.7 ? '' : hostileString(rng),
          },
  }),
);

export const EVALUATOR_RPCS: Record<string, Gen> = {
  GetEvaluation: generator(GetEvaluationRequest, (rng, k) => GetEvaluationRequest.fromPartial({ id: hostileString(rng, k.evaluationIds) })),
  Compare: generator(CompareRequest, (rng, k) =>
    CompareRequest.fromPartial({
      // More ids than a comparison takes, but each short: the request, not its transfer, is under test.
      ids: Array.from({ length: pick(rng, [0, 1, 2, 3, 50, 300]) }, (_, i) => (i > 3 ? `ev-${i}` : hostileString(rng, k.evaluationIds))),
      minEpisodes: hostileU32(rng),
      epsilon: hostileNumber(rng),
      epsilonSe: rng.uniform() < 0.5,
    }),
  ),
  ListEvaluations: generator(ListEvaluationsRequest, (rng, k) =>
    ListEvaluationsRequest.fromPartial({ runId: hostileString(rng, [k.runId]), suite: hostileString(rng, ['fuzz']) }),
  ),
};
