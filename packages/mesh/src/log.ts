/**
 * Structured logs: one JSON object per line on stderr ({ts, level, service, msg, ...fields}), so that
 * stdout stays free for a command's own output and any log shipper can parse them.
 * RLMESH_LOG_LEVEL=debug|info|warn|error (default info).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(service: string, level: LogLevel = (process.env.RLMESH_LOG_LEVEL as LogLevel) ?? 'info'): Logger {
  const min = RANK[level] ?? RANK.info;
  const emit =
    (lvl: LogLevel) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (RANK[lvl] < min) return;
      process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level: lvl, service, msg, ...fields })}\n`);
    };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}
