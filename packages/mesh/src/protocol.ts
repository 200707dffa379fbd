/**
 * What services announce to each other through the bus's KV store, next to the subjects, keys and
 * object names in bus.ts:
 *   run.<run>     RunAnnouncement (proto, learner.proto): the learner's run state; env replicas start
 *                 and stop actors on it.
 *   progress.<run> ConsumerProgress (JSON): the chunks the learner has consumed; actors wait on it.
 *   policy.<run>  PolicyPointer (proto, policy.proto; policy-pointer.ts): the latest policy version;
 *                 the policy service and local-inference actors hot-swap on it.
 */
import { RunAnnouncement } from '@rlmesh/proto';

export type RunStateName = 'running' | 'completed' | 'stopped' | 'failed';

export const encodeAnnouncement = (a: RunAnnouncement): Uint8Array => RunAnnouncement.encode(a).finish();
export const decodeAnnouncement = (b: Uint8Array): RunAnnouncement => RunAnnouncement.decode(b);

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
