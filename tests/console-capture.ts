/**
 * Collects what a CLI command prints, for tests that call `main()` in-process: console.error lines
 * in `err`, console.log lines in `out`; the progress bars on process.stderr are swallowed. The spies
 * stay until `vi.restoreAllMocks()`, which each file's afterEach calls.
 */
import { vi } from 'vitest';

export function captureConsole(): { err: string[]; out: string[] } {
  const err: string[] = [];
  const out: string[] = [];
  vi.spyOn(console, 'error').mockImplementation((...a) => {
    err.push(a.join(' '));
  });
  vi.spyOn(console, 'log').mockImplementation((...a) => {
    out.push(a.join(' '));
  });
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  return { err, out };
}
