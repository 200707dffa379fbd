/**
 * A learner's lease on a run: the KV entry lease.<run> names the learner that trains the run and
 * until when. Every change is a compare-and-set on the entry's revision, so of two learners that
 * read the same entry only one can write the next one:
 *   acquire: free, expired or already ours -> write {owner, expires_at: now + ttl} at the read revision
 *   keep:    renew every ttl/4 at the revision we wrote; a refused write means another learner took
 *            the run (we were gone past the expiry): stop training it here
 *   release: write an expired record at our revision, so the next learner need not wait the ttl out
 * Expiry is wall-clock time, so learners on different hosts need clocks that agree to well within
 * the ttl (NTP does). A bus that cannot be reached renews nothing, but nobody else can take the run
 * either; the first write after it returns decides.
 */
import { hostname } from 'node:os';
import { type Bus, decodeJson, encodeJson, keys } from '@rlmesh/mesh';

/** Long enough for a slow train step or a short GC pause, short enough that a dead learner's runs move on soon. */
export const DEFAULT_LEASE_TTL_MS = 10_000;

export interface LeaseRecord {
  owner: string;
  /** Milliseconds since the epoch. */
  expires_at: number;
}

/** A name for this learner process, unique on the bus. */
export function leaseOwner(): string {
  return `${hostname()}-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
}

function readRecord(value: Uint8Array): LeaseRecord | null {
  try {
    const r = decodeJson<LeaseRecord>(value);
    return typeof r?.owner === 'string' && typeof r.expires_at === 'number' ? r : null;
  } catch {
    return null; // unreadable: nobody can prove they hold it
  }
}

/** Who holds a run another learner trains, and until when. */
export interface Held {
  owner: string;
  expiresAt: number;
}

export class Lease {
  private timer: NodeJS.Timeout | undefined;
  private ended = false;

  private constructor(
    private readonly bus: Bus,
    readonly runId: string,
    readonly owner: string,
    private readonly ttlMs: number,
    private revision: number,
  ) {}

  /** Takes the run's lease if it is free, expired or already `owner`'s; otherwise says who holds it. */
  static async acquire(bus: Bus, runId: string, owner: string, ttlMs = DEFAULT_LEASE_TTL_MS): Promise<Lease | Held> {
    const key = keys.lease(runId);
    const entry = await bus.kv.entry(key);
    const held = entry ? readRecord(entry.value) : null;
    if (held && held.owner !== owner && held.expires_at > Date.now()) return { owner: held.owner, expiresAt: held.expires_at };
    const revision = await bus.kv.compareAndSet(key, encodeJson({ owner, expires_at: Date.now() + ttlMs }), entry?.revision ?? 0);
    if (revision !== null) return new Lease(bus, runId, owner, ttlMs, revision);
    // Another learner wrote between our read and our write: it won.
    const now = await bus.kv.entry(key);
    const winner = now ? readRecord(now.value) : null;
    return { owner: winner?.owner ?? 'another learner', expiresAt: winner?.expires_at ?? Date.now() + ttlMs };
  }

  /**
   * Renews the lease every ttl/4 until release(); calls `onLost` once if another learner took the
   * run. Bus errors are retried on the next tick: they cost nothing while the expiry is ahead.
   */
  keep(onLost: (holder: string) => void): void {
    const tick = async () => {
      if (this.ended) return;
      try {
        if (!(await this.renew())) {
          this.stop();
          const entry = await this.bus.kv.entry(keys.lease(this.runId)).catch(() => null);
          onLost((entry && readRecord(entry.value)?.owner) || 'another learner');
          return;
        }
      } catch {
        // The bus is away; the next tick tries again.
      }
      if (!this.ended) this.schedule(tick);
    };
    this.schedule(tick);
  }

  private schedule(fn: () => Promise<void>): void {
    this.timer = setTimeout(fn, this.ttlMs / 4);
    this.timer.unref();
  }

  /** Extends the expiry; false when another learner holds the lease now. */
  async renew(): Promise<boolean> {
    return this.write(Date.now() + this.ttlMs);
  }

  private async write(expiresAt: number): Promise<boolean> {
    const key = keys.lease(this.runId);
    const record = encodeJson({ owner: this.owner, expires_at: expiresAt } satisfies LeaseRecord);
    let revision = await this.bus.kv.compareAndSet(key, record, this.revision);
    if (revision === null) {
      // Our previous write may have landed with its answer lost (a timeout): the entry is then still
      // ours, at a revision we never saw. Only this learner writes its own name, so that is safe to adopt.
      const entry = await this.bus.kv.entry(key);
      if (!entry || readRecord(entry.value)?.owner !== this.owner) return false;
      revision = await this.bus.kv.compareAndSet(key, record, entry.revision);
      if (revision === null) return false;
    }
    this.revision = revision;
    return true;
  }

  private stop(): void {
    this.ended = true;
    clearTimeout(this.timer);
  }

  /** Stops renewing and, if the lease is still ours, ends it now; a bus error leaves it to expire. */
  async release(): Promise<void> {
    if (this.ended) return;
    this.stop();
    await this.write(0).catch(() => false);
  }
}

export function isLease(claim: Lease | Held): claim is Lease {
  return claim instanceof Lease;
}
