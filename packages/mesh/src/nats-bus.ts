/**
 * The Bus on NATS JetStream (server 2.9+: no 2.10 features). One stream RLMESH_TRAJ holds every
 * run's trajectory chunks (rlmesh.traj.<run>), bounded per subject with discard-old so that actors
 * running ahead of a learner cannot fill the disk; RLMESH_ACTS holds activation batches
 * (rlmesh.activations.<run>.<hook>), bounded the same way; a KV bucket holds run state and policy pointers;
 * an Object Store bucket holds policy weights. All three are created on connect if missing.
 *
 * NATS may go away for a while (a restart, a rescheduled pod): the connection reconnects forever,
 * and every bus call that fails while it is down is retried with backoff for up to `retryForMs`, so
 * that callers pause instead of failing. Publishes carry a message id, so a retried publish whose
 * first try was stored after all is not stored twice (JetStream's duplicate window).
 */
import { createHash } from 'node:crypto';
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  StorageType,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type NatsConnection, nanos, headers as natsHeaders, nuid } from '@nats-io/nats-core';
import { type ObjectStore as NatsObjectStore, Objm, setSha256Backend } from '@nats-io/obj';
import { connect } from '@nats-io/transport-node';
import type { Bus, BusMessage, ConsumeOptions, Headers, KeyValue, ObjectStore, Subscription } from './bus';
import { createLogger, type Logger } from './log';
import { type NatsAuth, type NatsConnectError, natsConnectError, natsConnectOptions } from './nats-auth';

export const TRAJ_STREAM = 'RLMESH_TRAJ';
/** Activation batches (rlmesh.activations.<run>.<hook>): the most recent 256 of each subject. */
export const ACTS_STREAM = 'RLMESH_ACTS';
const streamOf = (subject: string) => (subject.startsWith('rlmesh.activations.') ? ACTS_STREAM : TRAJ_STREAM);
export const KV_BUCKET = 'rlmesh_state';
export const OBJ_BUCKET = 'rlmesh_models';
/** Object chunks: fewer, larger messages (NATS' default max payload is 1 MiB) make a policy fetch a few round trips. */
const CHUNK_BYTES = 512 * 1024;

export interface NatsBusOptions {
  /** nats://host:port[,nats://...]; tls://, user:password@ and token@ as nats-auth.ts reads them. */
  servers: string;
  /** Login and TLS files (NKey seed, .creds, CA, client certificate), and user/password/token when not in the URL. */
  auth?: NatsAuth;
  name?: string;
  /** Per-subject cap of the trajectory stream (oldest dropped first). */
  maxChunksPerRun?: number;
  /** How long a delivered, unacked message waits before redelivery. */
  ackWaitMs?: number;
  /** How long a bus call retries while NATS is unreachable before it fails (default 5 minutes). */
  retryForMs?: number;
  /** Where disconnects, reconnects and retried calls are reported (default: a logger named after `name`). */
  logger?: Logger;
}

/**
 * Errors that mean "NATS is not reachable right now", not "this call is wrong". A RequestError counts
 * by its cause (a timeout, no responders; not a permission refused).
 */
const TRANSIENT_ERRORS = new Set(['TimeoutError', 'NoResponders', 'ConnectionError', 'JetStreamNotEnabled', 'Reconnected']);
/** JetStream API statuses of a server that is starting or has no JetStream leader yet. */
const TRANSIENT_STATUSES = new Set([408, 503]);

export function isTransientBusError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (TRANSIENT_ERRORS.has(e.name)) return true;
  const status = (e as { status?: unknown; code?: unknown }).status ?? (e as { code?: unknown }).code;
  if (e.name.startsWith('JetStream') && typeof status === 'number' && TRANSIENT_STATUSES.has(status)) return true;
  return e.cause !== undefined && e.cause !== e && isTransientBusError(e.cause);
}

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A call still waiting when the connection came back: its request went to the old server or sat in a buffer, and no reply will come. */
class Reconnected extends Error {
  override readonly name = 'Reconnected';
}

export class NatsBus implements Bus {
  private constructor(
    readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kvStore: KV,
    private readonly objStore: NatsObjectStore,
    private readonly opts: NatsBusOptions,
    private readonly log: Logger,
  ) {
    void this.reportStatus();
  }

  /** Calls waiting on a reply, told when the connection is back so that they retry at once. */
  private readonly waiting = new Set<() => void>();

  /** Logs the connection going away and coming back, with how long it was gone. */
  private async reportStatus(): Promise<void> {
    let lostAt = 0;
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect' && !lostAt) {
        lostAt = Date.now();
        this.log.warn('NATS disconnected; reconnecting', { server: s.server });
      } else if (s.type === 'reconnect') {
        this.log.info('NATS reconnected', { server: s.server, downMs: lostAt ? Date.now() - lostAt : 0 });
        lostAt = 0;
        for (const wake of this.waiting) wake();
      }
    }
  }

  /**
   * Runs a bus call, retrying it with backoff while it fails for want of NATS (down, restarting,
   * JetStream not ready yet), for up to `retryForMs`; any other error is the caller's at once.
   * `idempotent`: a try still waiting when the connection comes back is given up and the call made
   * again at once, instead of after the request timeout (5 s); the given-up try may still land.
   */
  private async retry<T>(what: string, call: () => Promise<T>, idempotent = true): Promise<T> {
    const t0 = Date.now();
    const limit = this.opts.retryForMs ?? 5 * 60_000;
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await (idempotent ? this.untilReconnect(call) : call());
        if (attempt > 1) this.log.info('bus call succeeded after retries', { call: what, attempts: attempt, waitedMs: Date.now() - t0 });
        return out;
      } catch (e) {
        if (!isTransientBusError(e) || this.nc.isClosed() || Date.now() - t0 >= limit) throw e;
        if (attempt === 1) this.log.warn('bus call failed; retrying until NATS is back', { call: what, error: (e as Error).message });
        const delay = e instanceof Reconnected ? RETRY_FIRST_MS : Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempt - 1));
        await sleep(delay / 2 + Math.random() * (delay / 2));
      }
    }
  }

  private untilReconnect<T>(call: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const wake = () => reject(new Reconnected('the connection came back while this call waited'));
      this.waiting.add(wake);
      call()
        .then(resolve, reject)
        .finally(() => this.waiting.delete(wake));
    });
  }

  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    // Object digests with node:crypto instead of the pure-JS default: several times faster on policy-sized objects.
    setSha256Backend('native');
    // Options first: a bad URL or an unreadable file is the caller's mistake, said as such before any connect.
    const connectOptions = natsConnectOptions(opts.servers, opts.auth);
    const nc = await connect({
      ...connectOptions,
      name: opts.name,
      // Reconnect forever, trying every half second: a restarted server is found about as soon as it listens.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      // A server that vanished without closing the socket is noticed in about 20 s, not the default 4 minutes.
      pingInterval: 10_000,
      maxPingOut: 2,
      // No Error (with its stack) made up front for every request in case it fails: a mesh learner makes
      // several requests per update, and those stacks cost about 1.5% of its CPU. Errors keep their
      // message; they lose the stack of the call that started them.
      noAsyncTraces: true,
    }).catch((e) => {
      throw natsConnectError(opts.servers, e, Boolean(connectOptions.tls && !connectOptions.tls.cert));
    });
    const jsm = await jetstreamManager(nc);
    const config = {
      name: TRAJ_STREAM,
      subjects: ['rlmesh.traj.>'],
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_msgs_per_subject: opts.maxChunksPerRun ?? 4096,
      max_age: nanos(24 * 3600 * 1000),
    };
    const acts = {
      name: ACTS_STREAM,
      subjects: ['rlmesh.activations.>'],
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      // No max_bytes: JetStream reserves it against the server's store at creation, which a small
      // disk refuses, and then no service could connect. A batch is at most 512 KiB, so a subject
      // holds at most 128 MiB.
      max_msgs_per_subject: 256,
      max_age: nanos(24 * 3600 * 1000),
    };
    for (const c of [config, acts])
      try {
        await jsm.streams.info(c.name);
      } catch {
        await jsm.streams.add(c).catch(async (e) => {
          // Another service created it between our info and add.
          if (!(await jsm.streams.info(c.name).catch(() => null))) throw e;
        });
      }
    const kvStore = await new Kvm(nc).create(KV_BUCKET, { history: 1 });
    const objStore = await new Objm(nc).create(OBJ_BUCKET);
    return new NatsBus(nc, jetstream(nc), kvStore, objStore, opts, opts.logger ?? createLogger(opts.name ?? 'bus'));
  }

  async publish(subject: string, data: Uint8Array, headers: Headers = {}): Promise<void> {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(headers)) h.set(k, v);
    const msgID = nuid.next();
    await this.retry('publish', () => this.js.publish(subject, data, { headers: h, msgID }));
  }

  async consume(opts: ConsumeOptions, handler: (m: BusMessage) => Promise<void>): Promise<Subscription> {
    const stream = streamOf(opts.subject);
    await this.retry('consumer create', async () => {
      const jsm = await jetstreamManager(this.nc);
      const existing = await jsm.consumers.info(stream, opts.durable).catch((e) => {
        if (isTransientBusError(e)) throw e;
        return null;
      });
      if (!existing) {
        await jsm.consumers.add(stream, {
          durable_name: opts.durable,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          filter_subject: opts.subject,
          ack_wait: nanos(this.opts.ackWaitMs ?? 30_000),
        });
      }
    });
    const open = () =>
      // Not given up on reconnect: an abandoned consume would go on pulling messages nobody handles.
      this.retry('consume', async () => (await this.js.consumers.get(stream, opts.durable)).consume({ max_messages: 8 }), false);
    let messages = await open();
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        try {
          await this.deliver(messages, handler);
        } catch (e) {
          if (!stopped) this.log.warn('consumer failed; consuming again', { durable: opts.durable, error: (e as Error).message });
        }
        // Ended without stop() (NATS gone longer than the client's own recovery): start over where the
        // durable consumer acked. An ended consumer cannot be read again, so keep opening until one opens.
        while (!stopped) {
          await sleep(RETRY_MAX_MS);
          const next = await open().catch(() => null);
          if (next && !stopped) {
            messages = next;
            break;
          }
          if (next) await next.close();
        }
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await messages.close();
        await loop;
      },
    };
  }

  private async deliver(messages: ConsumerMessages, handler: (m: BusMessage) => Promise<void>): Promise<void> {
    for await (const m of messages) {
      const hdrs: Headers = {};
      if (m.headers) for (const [k, v] of m.headers) hdrs[k] = v[0];
      let settled = false;
      const msg: BusMessage = {
        subject: m.subject,
        data: m.data,
        headers: hdrs,
        deliveryCount: m.info.deliveryCount,
        streamSequence: m.info.streamSequence,
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
  }

  async deleteConsumer(durable: string): Promise<void> {
    // Durable names are unique across both streams in practice; the one without it refuses harmlessly.
    for (const stream of [TRAJ_STREAM, ACTS_STREAM])
      await this.retry('consumer delete', async () => {
        const jsm = await jetstreamManager(this.nc);
        await jsm.consumers.delete(stream, durable);
      }).catch(() => undefined);
  }

  get kv(): KeyValue {
    const kv = this.kvStore;
    return {
      put: async (key, value) => void (await this.retry('kv put', () => kv.put(key, value))),
      get: async (key) => {
        const e = await this.retry('kv get', () => kv.get(key));
        return e && e.operation === 'PUT' ? e.value : null;
      },
      entry: async (key) => {
        const e = await this.retry('kv get', () => kv.get(key));
        return e && e.operation === 'PUT' ? { value: e.value, revision: e.revision } : null;
      },
      // Retried while NATS is away. A try whose reply was lost may have written after all, so a refusal
      // or a failure is checked against the key: holding exactly `value` means this writer won.
      compareAndSet: (key, value, revision) =>
        this.retry(
          'kv compare-and-set',
          async () => {
            let failure: unknown;
            try {
              // create() also takes over a deleted key's tombstone, which holds no value.
              return revision === 0 ? await kv.create(key, value) : await kv.update(key, value, revision);
            } catch (e) {
              failure = e;
            }
            const lost = [JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown];
            const refused = failure instanceof JetStreamApiError && (lost as number[]).includes(failure.code);
            if (!refused && !isTransientBusError(failure)) throw failure;
            const now = await kv.get(key).catch(() => null);
            if (now?.operation === 'PUT' && Buffer.from(now.value).equals(value)) return now.revision;
            if (refused) return null;
            throw failure;
          },
          false,
        ),
      delete: async (key) => void (await this.retry('kv delete', () => kv.delete(key))),
      keys: (prefix = '') =>
        this.retry('kv keys', async () => {
          const out: string[] = [];
          for await (const k of await kv.keys(prefix ? `${prefix}>` : undefined)) out.push(k);
          return out;
        }),
      watch: async (key, onChange) => {
        const open = () => this.retry('kv watch', () => kv.watch({ key }), false);
        let it = await open();
        let stopped = false;
        (async () => {
          while (!stopped) {
            try {
              for await (const e of it) onChange(e.key, e.operation === 'PUT' ? e.value : null);
            } catch (e) {
              if (!stopped) this.log.warn('kv watch failed; watching again', { key, error: (e as Error).message });
            }
            // A new watch delivers the current value again, so nothing written meanwhile is missed. An
            // ended watch cannot be read again, so keep opening until one opens.
            while (!stopped) {
              await sleep(RETRY_MAX_MS);
              const next = await open().catch(() => null);
              if (next && !stopped) {
                it = next;
                break;
              }
              next?.stop();
            }
          }
        })();
        return {
          stop: async () => {
            stopped = true;
            it.stop();
          },
        };
      },
    };
  }

  get objects(): ObjectStore {
    const os = this.objStore;
    return {
      put: async (name, data) =>
        // Not given up on reconnect: two puts of one name at once would interleave their chunks.
        void (await this.retry('object put', () => os.putBlob({ name, options: { max_chunk_size: CHUNK_BYTES } }, data), false)),
      get: (name) => this.retry('object get', () => this.getObject(name)),
      delete: async (name) => void (await this.retry('object delete', () => os.delete(name)).catch(() => undefined)),
    };
  }

  private manager: Promise<JetStreamManager> | undefined;

  /**
   * An object that fits one chunk (a small policy's parameters, which every actor fetches after every
   * update) by two direct stream reads, its metadata and then its chunk, checked against its digest.
   * The client's own get opens a push consumer per call, and that set-up was most of an actor's wait
   * for a new version. Larger objects and links go through the client.
   */
  private async getObject(name: string): Promise<Uint8Array | null> {
    const info = await this.objStore.info(name);
    if (!info || info.deleted) return null;
    if (info.chunks !== 1 || info.options?.link) return this.objStore.getBlob(name);
    this.manager ??= jetstreamManager(this.nc);
    const chunk = await (await this.manager).streams.getMessage(`OBJ_${OBJ_BUCKET}`, { last_by_subj: `$O.${OBJ_BUCKET}.C.${info.nuid}` });
    const data = chunk?.data;
    if (!data || data.length !== info.size) throw new Error(`object ${name}: its chunk is missing or has the wrong size`);
    const want = Buffer.from(info.digest.replace(/^SHA-256=/, ''), 'base64url');
    if (!createHash('sha256').update(data).digest().equals(want))
      throw new Error(`object ${name}: received a corrupt object (digest mismatch)`);
    return data;
  }

  /**
   * Resolves once the connection has ended for good: with why, in one line, when NATS ended it (the
   * client gives up reconnecting when the server refuses its login twice, as after a change of
   * credentials), or with null after close().
   */
  async closed(): Promise<NatsConnectError | null> {
    const e = await this.nc.closed();
    return e ? natsConnectError(this.opts.servers, e) : null;
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}
