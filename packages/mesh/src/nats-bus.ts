/**
 * The Bus on NATS JetStream (server 2.9+: no 2.10 features). One stream RLMESH_TRAJ holds every
 * run's trajectory chunks (rlmesh.traj.<run>), bounded per subject with discard-old so that actors
 * running ahead of a learner cannot fill the disk; a KV bucket holds run state and policy pointers;
 * an Object Store bucket holds policy weights. All three are created on connect if missing.
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  StorageType,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type NatsConnection, nanos, headers as natsHeaders } from '@nats-io/nats-core';
import { type ObjectStore as NatsObjectStore, Objm, setSha256Backend } from '@nats-io/obj';
import { connect } from '@nats-io/transport-node';
import type { Bus, BusMessage, ConsumeOptions, Headers, KeyValue, ObjectStore, Subscription } from './bus';

export const TRAJ_STREAM = 'RLMESH_TRAJ';
export const KV_BUCKET = 'rlmesh_state';
export const OBJ_BUCKET = 'rlmesh_models';
/** Object chunks: fewer, larger messages (NATS' default max payload is 1 MiB) make a policy fetch a few round trips. */
const CHUNK_BYTES = 512 * 1024;

export interface NatsBusOptions {
  /** nats://host:port[,nats://...]. */
  servers: string;
  name?: string;
  /** Per-subject cap of the trajectory stream (oldest dropped first). */
  maxChunksPerRun?: number;
  /** How long a delivered, unacked message waits before redelivery. */
  ackWaitMs?: number;
}

export class NatsBus implements Bus {
  private constructor(
    readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kvStore: KV,
    private readonly objStore: NatsObjectStore,
    private readonly opts: NatsBusOptions,
  ) {}

  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    // Object digests with node:crypto instead of the pure-JS default: several times faster on policy-sized objects.
    setSha256Backend('native');
    const nc = await connect({ servers: opts.servers.split(','), name: opts.name, maxReconnectAttempts: -1 });
    const jsm = await jetstreamManager(nc);
    const config = {
      name: TRAJ_STREAM,
      subjects: ['rlmesh.traj.>'],
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_msgs_per_subject: opts.maxChunksPerRun ?? 4096,
      max_age: nanos(24 * 3600 * 1000),
    };
    try {
      await jsm.streams.info(TRAJ_STREAM);
    } catch {
      await jsm.streams.add(config).catch(async (e) => {
        // Another service created it between our info and add.
        if (!(await jsm.streams.info(TRAJ_STREAM).catch(() => null))) throw e;
      });
    }
    const kvStore = await new Kvm(nc).create(KV_BUCKET, { history: 1 });
    const objStore = await new Objm(nc).create(OBJ_BUCKET);
    return new NatsBus(nc, jetstream(nc), kvStore, objStore, opts);
  }

  async publish(subject: string, data: Uint8Array, headers: Headers = {}): Promise<void> {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(headers)) h.set(k, v);
    await this.js.publish(subject, data, { headers: h });
  }

  async consume(opts: ConsumeOptions, handler: (m: BusMessage) => Promise<void>): Promise<Subscription> {
    const jsm = await jetstreamManager(this.nc);
    const existing = await jsm.consumers.info(TRAJ_STREAM, opts.durable).catch(() => null);
    if (!existing) {
      await jsm.consumers.add(TRAJ_STREAM, {
        durable_name: opts.durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: opts.subject,
        ack_wait: nanos(this.opts.ackWaitMs ?? 30_000),
      });
    }
    const consumer = await this.js.consumers.get(TRAJ_STREAM, opts.durable);
    const messages = await consumer.consume({ max_messages: 8 });
    const loop = (async () => {
      for await (const m of messages) {
        const hdrs: Headers = {};
        if (m.headers) for (const [k, v] of m.headers) hdrs[k] = v[0];
        let settled = false;
        const msg: BusMessage = {
          subject: m.subject,
          data: m.data,
          headers: hdrs,
          deliveryCount: m.info.deliveryCount,
          ack: () => {
            settled = true;
            m.ack();
          },
          nak: (delayMs?: number) => {
            settled = true;
            m.nak(delayMs);
          },
          term: () => {
            settled = true;
            m.term();
          },
        };
        try {
          await handler(msg);
        } catch {
          if (!settled) m.nak();
        }
      }
    })();
    return {
      stop: async () => {
        await messages.close();
        await loop;
      },
    };
  }

  async deleteConsumer(durable: string): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    await jsm.consumers.delete(TRAJ_STREAM, durable).catch(() => undefined);
  }

  get kv(): KeyValue {
    const kv = this.kvStore;
    return {
      put: async (key, value) => void (await kv.put(key, value)),
      get: async (key) => {
        const e = await kv.get(key);
        return e && e.operation === 'PUT' ? e.value : null;
      },
      entry: async (key) => {
        const e = await kv.get(key);
        return e && e.operation === 'PUT' ? { value: e.value, revision: e.revision } : null;
      },
      compareAndSet: async (key, value, revision) => {
        try {
          // create() also takes over a deleted key's tombstone, which holds no value.
          return revision === 0 ? await kv.create(key, value) : await kv.update(key, value, revision);
        } catch (e) {
          const lost = [JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown];
          if (e instanceof JetStreamApiError && (lost as number[]).includes(e.code)) return null;
          throw e;
        }
      },
      delete: async (key) => void (await kv.delete(key)),
      keys: async (prefix = '') => {
        const out: string[] = [];
        for await (const k of await kv.keys(prefix ? `${prefix}>` : undefined)) out.push(k);
        return out;
      },
      watch: async (key, onChange) => {
        const it = await kv.watch({ key });
        (async () => {
          for await (const e of it) onChange(e.key, e.operation === 'PUT' ? e.value : null);
        })();
        return { stop: async () => it.stop() };
      },
    };
  }

  get objects(): ObjectStore {
    const os = this.objStore;
    return {
      put: async (name, data) => void (await os.putBlob({ name, options: { max_chunk_size: CHUNK_BYTES } }, data)),
      get: (name) => os.getBlob(name),
      delete: async (name) => void (await os.delete(name).catch(() => undefined)),
    };
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}
