/**
 * The bus: what services share besides gRPC. Three parts, as NATS JetStream provides them:
 *   - a persisted message stream (trajectory chunks on rlmesh.traj.<run>), consumed through durable
 *     consumers with explicit acks: an unacked message is delivered again;
 *   - a key-value store (run state, the current policy version of each run) with watches;
 *   - an object store (policy weights, checkpoints).
 * NatsBus (nats-bus.ts) is the mesh's implementation; MemoryBus (below) is the embedded mode's and
 * the unit tests'. Both pass the same contract test (test/bus.test.ts).
 */
export type Headers = Record<string, string>;

export interface BusMessage {
  subject: string;
  data: Uint8Array;
  headers: Headers;
  /** 1 on first delivery. */
  deliveryCount: number;
  /** The message's place in the stream: the same on every delivery of it, so a consumer can tell a redelivery it already handled. */
  streamSequence: number;
  ack(): void;
  /** Deliver again (after `delayMs`). */
  nak(delayMs?: number): void;
  /** Never deliver again. */
  term(): void;
}

export interface Subscription {
  stop(): Promise<void>;
}

export interface ConsumeOptions {
  /** A subject or a prefix ending in `>`. */
  subject: string;
  /** Durable consumer name: a restarted consumer continues where the old one acked. */
  durable: string;
}

/** A key's value and its revision: a number that grows with every write of any key in the store. */
export interface KvEntry {
  value: Uint8Array;
  revision: number;
}

export interface KeyValue {
  put(key: string, value: Uint8Array): Promise<void>;
  get(key: string): Promise<Uint8Array | null>;
  /** The value with its revision (null: no value), for compareAndSet. */
  entry(key: string): Promise<KvEntry | null>;
  /**
   * Writes `value` only if `key` is still at `revision` (0: only if it has no value); returns the new
   * revision, or null when another writer changed the key first. Two writers that read the same
   * revision cannot both win: the primitive a lease between processes is built on.
   */
  compareAndSet(key: string, value: Uint8Array, revision: number): Promise<number | null>;
  delete(key: string): Promise<void>;
  /** Keys under `prefix` (all keys when omitted). */
  keys(prefix?: string): Promise<string[]>;
  /**
   * Calls `onChange` with the current value of `key` (a prefix ending in `>` watches many keys) and
   * later ones (null: deleted). A value overwritten before delivery may be skipped; the latest never is.
   */
  watch(key: string, onChange: (key: string, value: Uint8Array | null) => void): Promise<Subscription>;
}

export interface ObjectStore {
  put(name: string, data: Uint8Array): Promise<void>;
  get(name: string): Promise<Uint8Array | null>;
  delete(name: string): Promise<void>;
}

export interface Bus {
  /** Resolves once the message is stored (JetStream publish ack). */
  publish(subject: string, data: Uint8Array, headers?: Headers): Promise<void>;
  /** Handler calls run one at a time; a handler that throws naks its message. */
  consume(opts: ConsumeOptions, handler: (m: BusMessage) => Promise<void>): Promise<Subscription>;
  deleteConsumer(durable: string): Promise<void>;
  readonly kv: KeyValue;
  readonly objects: ObjectStore;
  close(): Promise<void>;
}

/** Subjects, keys and object names of the mesh; run ids are validated to be safe in all three. */
export const subjects = {
  trajectories: (run: string) => `rlmesh.traj.${run}`,
  /** Activation batches a learner samples from a run's rollouts at one hook point (activations.ts). */
  activations: (run: string, hook: string) => `rlmesh.activations.${run}.${hook}`,
};
export const keys = {
  run: (run: string) => `run.${run}`,
  runs: 'run.',
  policy: (run: string) => `policy.${run}`,
  /** The version a run's promotion gate promoted last (a PolicyPointer); the policy service serves it on request. */
  promoted: (run: string) => `promoted.${run}`,
  progress: (run: string) => `progress.${run}`,
  /** Which learner trains a run, until when (services/learner/src/mesh/lease.ts). */
  lease: (run: string) => `lease.${run}`,
};
export const objects = {
  policyProgram: (run: string) => `${run}/policy.onnx`,
  policySampleProgram: (run: string) => `${run}/policy-sample.onnx`,
  policyParams: (run: string, version: number) => `${run}/params/${version}`,
  /** A promoted version's parameters, copied out of params/ (the learner keeps only its last few versions there). */
  promotedParams: (run: string, version: number) => `${run}/promoted/${version}`,
  checkpoint: (run: string, update: number) => `${run}/checkpoints/update-${String(update).padStart(6, '0')}.safetensors`,
};
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function subjectMatches(pattern: string, subject: string): boolean {
  return pattern.endsWith('>') ? subject.startsWith(pattern.slice(0, -1)) : pattern === subject;
}

interface Stored {
  subject: string;
  data: Uint8Array;
  headers: Headers;
}

/** In-process bus with the same delivery semantics as the NATS one (at-least-once, explicit ack). */
export class MemoryBus implements Bus {
  private readonly log: Stored[] = [];
  private readonly consumers = new Map<
    string,
    { subject: string; next: number; redeliver: number[]; wake?: () => void; active: boolean }
  >();
  private readonly kvData = new Map<string, Uint8Array>();
  /** Revisions as NATS counts them: one sequence for the whole store. */
  private readonly kvRevisions = new Map<string, number>();
  private kvSequence = 0;
  private readonly watchers = new Set<{ key: string; fn: (k: string, v: Uint8Array | null) => void }>();
  private readonly blobs = new Map<string, Uint8Array>();

  async publish(subject: string, data: Uint8Array, headers: Headers = {}): Promise<void> {
    this.log.push({ subject, data: data.slice(), headers: { ...headers } });
    for (const c of this.consumers.values()) c.wake?.();
  }

  async consume(opts: ConsumeOptions, handler: (m: BusMessage) => Promise<void>): Promise<Subscription> {
    let state = this.consumers.get(opts.durable);
    if (!state) {
      state = { subject: opts.subject, next: 0, redeliver: [], active: false };
      this.consumers.set(opts.durable, state);
    }
    if (state.active) throw new Error(`consumer ${opts.durable} is already being consumed`);
    state.active = true;
    const s = state;
    const deliveries = new Map<number, number>();
    const loop = (async () => {
      while (s.active) {
        let index = s.redeliver.shift();
        if (index === undefined) {
          while (s.next < this.log.length && !subjectMatches(s.subject, this.log[s.next].subject)) s.next++;
          if (s.next < this.log.length) index = s.next++;
        }
        if (index === undefined) {
          await new Promise<void>((r) => (s.wake = r));
          s.wake = undefined;
          continue;
        }
        const m = this.log[index];
        const count = (deliveries.get(index) ?? 0) + 1;
        deliveries.set(index, count);
        let settled = false;
        const i = index;
        const again = (delayMs = 0) => {
          if (settled) return;
          settled = true;
          setTimeout(() => {
            s.redeliver.push(i);
            s.wake?.();
          }, delayMs);
        };
        const msg: BusMessage = {
          subject: m.subject,
          data: m.data,
          headers: m.headers,
          deliveryCount: count,
          streamSequence: i + 1,
          ack: () => {
            settled = true;
          },
          nak: again,
          term: () => {
            settled = true;
          },
        };
        try {
          await handler(msg);
        } catch {
          again();
        }
        if (!settled) again(); // as an ack deadline would
      }
    })();
    return {
      stop: async () => {
        s.active = false;
        s.wake?.();
        await loop;
      },
    };
  }

  async deleteConsumer(durable: string): Promise<void> {
    this.consumers.delete(durable);
  }

  readonly kv: KeyValue = {
    put: async (key, value) => void this.kvWrite(key, value),
    get: async (key) => this.kvData.get(key) ?? null,
    entry: async (key) => {
      const value = this.kvData.get(key);
      return value ? { value, revision: this.kvRevisions.get(key) ?? 0 } : null;
    },
    compareAndSet: async (key, value, revision) => {
      const current = this.kvData.has(key) ? (this.kvRevisions.get(key) ?? 0) : 0;
      return current === revision ? this.kvWrite(key, value) : null;
    },
    delete: async (key) => {
      this.kvData.delete(key);
      this.kvRevisions.delete(key);
      for (const w of this.watchers) if (subjectMatches(w.key, key)) w.fn(key, null);
    },
    keys: async (prefix = '') => [...this.kvData.keys()].filter((k) => k.startsWith(prefix)),
    watch: async (key, fn) => {
      const w = { key, fn };
      for (const [k, v] of this.kvData) if (subjectMatches(key, k)) fn(k, v);
      this.watchers.add(w);
      return { stop: async () => void this.watchers.delete(w) };
    },
  };

  private kvWrite(key: string, value: Uint8Array): number {
    this.kvData.set(key, value.slice());
    this.kvRevisions.set(key, ++this.kvSequence);
    for (const w of this.watchers) if (subjectMatches(w.key, key)) w.fn(key, value);
    return this.kvSequence;
  }

  readonly objects: ObjectStore = {
    put: async (name, data) => void this.blobs.set(name, data.slice()),
    get: async (name) => this.blobs.get(name) ?? null,
    delete: async (name) => void this.blobs.delete(name),
  };

  async close(): Promise<void> {
    for (const c of this.consumers.values()) {
      c.active = false;
      c.wake?.();
    }
  }
}
