/** Bad input to the archive: the message names the field and the rule it broke. */
export class ArchiveInputError extends Error {
  override readonly name = 'ArchiveInputError';
}

/** The database refused the archive's state (e.g. a schema newer than this code knows). */
export class ArchiveStateError extends Error {
  override readonly name = 'ArchiveStateError';
}

/**
 * The connection to the database went away during an operation. Every write is one transaction
 * and idempotent by its ids, so the caller can retry the same call and nothing is recorded twice.
 */
export class ArchiveConnectionError extends Error {
  override readonly name = 'ArchiveConnectionError';
  constructor(
    message: string,
    override readonly cause: unknown,
  ) {
    super(message);
  }
}

// SQLSTATE classes 08 (connection exception) and 57P (operator intervention: terminated backend,
// server shutting down) plus the socket-level errors node-postgres surfaces without a SQLSTATE.
const LOST_CONNECTION_CODES = new Set(['57P01', '57P02', '57P03', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT']);

export function isConnectionLoss(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (LOST_CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|connection (?:is )?closed|Client has encountered a connection error/i.test(err.message);
}

/** Runs `fn`, turning a lost connection into an ArchiveConnectionError that says what to do. */
export async function guardConnection<T>(operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isConnectionLoss(err)) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new ArchiveConnectionError(
      `archive: the database connection was lost during ${operation} (${reason}); ` +
        'every archive write is one idempotent transaction, so retrying the same call is safe',
      err,
    );
  }
}
