/**
 * Discounted returns of [T, N] rollouts (row t * N + i is env i at step t), per reward component.
 * An episode boundary (terminated or truncated at step t) stops the sum, so a chunk may hold
 * several consecutive episodes of one environment. The embedded loop and the mesh learner both
 * compute their REINFORCE targets here.
 */
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
