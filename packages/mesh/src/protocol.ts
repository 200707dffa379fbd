/**
 * What services announce to each other through the bus's KV store (JSON values), next to the
 * subjects, keys and object names in bus.ts:
 *   run.<run>     RunAnnouncement: the learner's run state; env replicas start and stop actors on it.
 *   progress.<run> ConsumerProgress: the chunks the learner has consumed; actors wait on it (flow control).
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
  max_chunks_in_flight: number;
  /** The resolved run config (JSON), so that another learner can take the run over. */
  config?: string;
  /** The run's latest training checkpoint in the object store, if any. */
  checkpoint?: string;
}

/**
 * progress.<run>: the last chunk sequence the learner consumed (trained on or dropped), by actor,
 * and the policy version published by then (so an actor never plays older than that, whichever of
 * the two KV keys it hears about first).
 */
export interface ConsumerProgress {
  version: number;
  consumed: Record<string, number>;
}

const te = new TextEncoder();
const td = new TextDecoder();
export const encodeJson = (v: unknown): Uint8Array => te.encode(JSON.stringify(v));
export const decodeJson = <T>(b: Uint8Array): T => JSON.parse(td.decode(b)) as T;
