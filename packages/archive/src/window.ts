/**
 * Clock windows. Trajectories recorded by many agents at the same time faced the same market, so
 * the archive slices time into fixed UTC windows and groups by them.
 *
 * Format: `YYYY-MM-DDTHH:00Z`, the UTC start of the window (e.g. `2026-12-02T07:00Z`). `hours` must
 * divide 24 (1, 2, 3, 4, 6, 8, 12 or 24), so windows start at UTC midnight and every day is cut
 * the same way; the id sorts lexically in time order.
 */
import { ArchiveInputError } from './errors';

export const WINDOW_HOURS = [1, 2, 3, 4, 6, 8, 12, 24] as const;

const HOUR_MS = 3_600_000;
const WINDOW_ID = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):00Z$/;

export function checkWindowHours(hours: number, field = 'windowHours'): number {
  if (!(WINDOW_HOURS as readonly number[]).includes(hours)) {
    throw new ArchiveInputError(`${field}: must divide 24 (one of ${WINDOW_HOURS.join(', ')}), got ${String(hours)}`);
  }
  return hours;
}

/** The id of the `hours`-long UTC window that contains `at`. */
export function windowId(at: Date, hours = 1): string {
  checkWindowHours(hours, 'hours');
  const ms = at.getTime();
  if (!Number.isFinite(ms)) throw new ArchiveInputError('at: must be a valid Date');
  const start = new Date(Math.floor(ms / (hours * HOUR_MS)) * hours * HOUR_MS);
  return `${start.toISOString().slice(0, 13)}:00Z`;
}

/** The window's start and end (exclusive) instants; throws on a malformed or misaligned id. */
export function windowBounds(id: string, hours = 1): { start: Date; end: Date } {
  checkWindowHours(hours, 'hours');
  const m = WINDOW_ID.exec(id);
  const start = m ? new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:00:00Z`) : undefined;
  if (!start || Number.isNaN(start.getTime()) || windowId(start, hours) !== id) {
    throw new ArchiveInputError(`windowId: expected YYYY-MM-DDTHH:00Z on a ${hours}-hour boundary, got ${JSON.stringify(id)}`);
  }
  return { start, end: new Date(start.getTime() + hours * HOUR_MS) };
}
