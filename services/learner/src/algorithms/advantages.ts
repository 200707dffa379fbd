/**
 * Returns and advantages of [T, N] rollouts (row t * N + i is env i at step t). Every estimator
 * respects episode ends: an episode that ended at step t contributes nothing past t, so a rollout
 * may hold several consecutive episodes of one environment.
 */

/** Undiscounted-to-discounted returns per step, cut at every episode end (no bootstrap). */
export function discountedReturns(
  rewards: Float32Array,
  done: Uint8Array | null,
  steps: number,
  envs: number,
  gamma: number,
  out: Float32Array = new Float32Array(steps * envs),
): Float32Array {
  for (let i = 0; i < envs; i++) {
    let acc = 0;
    for (let t = steps - 1; t >= 0; t--) {
      const row = t * envs + i;
      if (done?.[row]) acc = 0;
      acc = rewards[row] + gamma * acc;
      out[row] = acc;
    }
  }
  return out;
}

export interface TraceInputs {
  steps: number;
  envs: number;
  /** Scalar reward per step. */
  rewards: Float32Array;
  /** V(s_t) per step. */
  values: Float32Array;
  /** V(s_{t+1}) per step, where s_{t+1} is the final observation when the episode ended at t. */
  nextValues: Float32Array;
  terminated: Uint8Array;
  truncated: Uint8Array;
  gamma: number;
  lambda: number;
  /**
   * Truncated importance ratios: rho_t = min(rhoBar, pi/mu), c_t = min(cBar, pi/mu). Omitted
   * (on-policy), every ratio is 1 and the estimator is GAE(lambda).
   */
  ratios?: Float32Array;
  rhoBar?: number;
  cBar?: number;
}

/**
 * V-trace with lambda (IMPALA, Espeholt et al. 2018, eq. 1 with c_t = lambda min(cBar, ratio)):
 *   delta_t = rho_t (r_t + gamma V'(t) - V(s_t)),  V'(t) = 0 if terminated at t else V(s_{t+1})
 *   A_t     = delta_t + gamma c_t (1 - done_t) A_{t+1}
 *   vs_t    = V(s_t) + A_t   (value targets),   advantages = A_t
 * A time-limit truncation bootstraps from V(final observation) and stops the trace, unlike CleanRL,
 * which treats it as terminal. With all ratios 1 this is exactly GAE(lambda) and vs its returns.
 */
export function vtrace(x: TraceInputs): { advantages: Float32Array; returns: Float32Array } {
  const { steps: T, envs: N, gamma, lambda } = x;
  const rhoBar = x.rhoBar ?? 1;
  const cBar = x.cBar ?? 1;
  const advantages = new Float32Array(T * N);
  const returns = new Float32Array(T * N);
  for (let i = 0; i < N; i++) {
    let acc = 0;
    for (let t = T - 1; t >= 0; t--) {
      const row = t * N + i;
      const ratio = x.ratios ? x.ratios[row] : 1;
      const rho = Math.min(rhoBar, ratio);
      const c = lambda * Math.min(cBar, ratio);
      const next = x.terminated[row] ? 0 : x.nextValues[row];
      const delta = rho * (x.rewards[row] + gamma * next - x.values[row]);
      const done = x.terminated[row] || x.truncated[row];
      acc = delta + (done ? 0 : gamma * c * acc);
      advantages[row] = acc;
      returns[row] = x.values[row] + acc;
    }
  }
  return { advantages, returns };
}

/** What valuesOfRollout needs of a [T, N] rollout. */
export interface ObservedRollout {
  numSteps: number;
  numEnvs: number;
  obsDim: number;
  obs: Float32Array;
  nextObs: Float32Array;
}

/**
 * V(s_t) for every row and V(s_{t+1}) per row, from one batched call of the current policy. s_{t+1} is
 * the next row's observation unless the episode ended at t (then it is the final observation) or t is
 * the rollout's last step: only those rows' next observations are evaluated besides obs. Returns the
 * call's outputs for the obs rows too (log-probs for V-trace's ratios).
 */
export async function valuesOfRollout(
  r: ObservedRollout,
  evaluate: (obs: Float32Array, rows: number) => Promise<Record<string, Float32Array>>,
): Promise<{ heads: Record<string, Float32Array>; values: Float32Array; nextValues: Float32Array }> {
  const { numSteps: T, numEnvs: N, obsDim: S } = r;
  const B = T * N;
  const own: number[] = [];
  for (let k = 0; k < B; k++) if (k + N >= B || !sameRow(r.nextObs, k, r.obs, k + N, S)) own.push(k);
  const obs = new Float32Array((B + own.length) * S);
  obs.set(r.obs);
  for (let j = 0; j < own.length; j++) obs.set(r.nextObs.subarray(own[j] * S, (own[j] + 1) * S), (B + j) * S);
  const heads = await evaluate(obs, B + own.length);
  const v = heads.value;
  const nextValues = new Float32Array(B);
  for (let k = 0, j = 0; k < B; k++) nextValues[k] = own[j] === k ? v[B + j++] : v[k + N];
  const rows: Record<string, Float32Array> = {};
  for (const name in heads) rows[name] = heads[name].subarray(0, (heads[name].length / (B + own.length)) * B);
  return { heads: rows, values: v.slice(0, B), nextValues };
}

function sameRow(a: Float32Array, i: number, b: Float32Array, j: number, width: number): boolean {
  for (let c = 0; c < width; c++) if (a[i * width + c] !== b[j * width + c]) return false;
  return true;
}
