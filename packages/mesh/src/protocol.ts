/**
 * What services announce to each other through the bus's KV store (JSON values), next to the
 * subjects, keys and object names in bus.ts:
 *   run.<run>     RunAnnouncement: the learner's run state; env replicas start and stop actors on it.
 *   policy.<run>  PolicyPointer (policy-pointer.ts): the latest policy version; the policy service hot-swaps on it.
 */
export interface RunAnnouncement {
  run_id: string;
  state: 'running' | 'completed' | 'stopped' | 'failed';
  seed: number;
  /** What the actors build: an env id and its options, and how many episodes per chunk. */
  env: { id: string; num_symbols: number; max_episode_steps: number; num_envs: number };
  /** Curriculum level the actors reset their environments at. */
  level: number;
  actors_per_replica: number;
  chunks_per_version: number;
}

const te = new TextEncoder();
const td = new TextDecoder();
export const encodeJson = (v: unknown): Uint8Array => te.encode(JSON.stringify(v));
export const decodeJson = <T>(b: Uint8Array): T => JSON.parse(td.decode(b)) as T;
