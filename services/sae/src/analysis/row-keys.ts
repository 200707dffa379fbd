/**
 * What a row of an activation store is about, read from its context (context.jsonl), its
 * observation, or the data line it was captured from. A key names one of:
 *   none         one value for every row (no conditioning)
 *   obs          the row's observation (BabyModel: the state itself, as a state id)
 *   next_token   the token after the row's position (text rows; none at a line's last token)
 *   record.PATH  a field of the JSONL data line the row came from (record.family, record.answer)
 *   PATH         a field of the row's context (action, level, labels.label, labels.colour_sums.red)
 * A row whose key has no value is left out of what needs it.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { ActivationStore } from '../activation-store';

function at(v: unknown, path: string): unknown {
  let cur = v;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

const asKey = (v: unknown): string | null => (v === undefined || v === null ? null : typeof v === 'object' ? JSON.stringify(v) : String(v));

/** The data lines rows were captured from, read once per file; null where the file is gone. */
export class RecordReader {
  private readonly files = new Map<string, string[] | null>();
  private readonly parsed = new Map<string, Record<string, unknown> | null>();

  of(ctx: Record<string, unknown>): Record<string, unknown> | null {
    const { source, line } = ctx;
    if (typeof source !== 'string' || typeof line !== 'number') return null;
    const id = `${line}:${source}`;
    if (this.parsed.has(id)) return this.parsed.get(id) ?? null;
    if (!this.files.has(source)) this.files.set(source, existsSync(source) ? readFileSync(source, 'utf8').split('\n') : null);
    const text = this.files.get(source)?.[line - 1];
    let rec: Record<string, unknown> | null = null;
    try {
      rec = text ? (JSON.parse(text) as Record<string, unknown>) : null;
    } catch {
      rec = null;
    }
    this.parsed.set(id, rec);
    return rec;
  }
}

export class RowKeys {
  readonly records = new RecordReader();

  constructor(readonly store: ActivationStore) {}

  context(row: number): Record<string, unknown> {
    return this.store.context?.[row] ?? {};
  }

  /** The token ids of the row's sequence (text rows) or its observation. */
  observation(row: number): Float32Array | null {
    const o = this.store.observations;
    return o ? o.data.subarray(row * o.d, (row + 1) * o.d) : null;
  }

  /** Whether `key` can be read on this store at all (checked before a pass, so a typo fails at once). */
  check(key: string, what: string): void {
    if (key === 'none') return;
    if (key === 'obs' && !this.store.observations) throw new Error(`${what} obs: the store holds no observations`);
    if (key === 'next_token' && (!this.store.observations || typeof this.context(0).position !== 'number'))
      throw new Error(`${what} next_token: the store's rows are not token positions`);
    if (key === 'obs' || key === 'next_token') return;
    if (!this.store.context) throw new Error(`${what} ${key}: the store has no context.jsonl`);
    const rows = Math.min(this.store.rows, 1000);
    for (let r = 0; r < rows; r++) if (this.value(key, r) !== null) return;
    throw new Error(`${what} ${key}: none of the store's first ${rows} rows has it`);
  }

  value(key: string, row: number): string | null {
    if (key === 'none') return '';
    if (key === 'obs') {
      const o = this.observation(row);
      return o ? Array.from(o).join(',') : null;
    }
    const ctx = this.context(row);
    if (key === 'next_token') {
      const o = this.observation(row);
      const p = ctx.position;
      if (!o || typeof p !== 'number' || ctx.last === true || p + 1 >= o.length) return null;
      return String(o[p + 1]);
    }
    if (key.startsWith('record.')) return asKey(at(this.records.of(ctx), key.slice('record.'.length)));
    return asKey(at(ctx, key));
  }
}
