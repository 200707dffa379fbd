/** `rlmesh sae follow`: every mistake is one line, exit 2, before any connection is made. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { captureConsole } from '../../../tests/console-capture';
import { main } from '../src/main';

afterEach(() => vi.restoreAllMocks());

describe('rlmesh sae follow', () => {
  it('refuses bad arguments in one line with exit 2', async () => {
    const saved = process.env.NATS_URL;
    delete process.env.NATS_URL;
    try {
      const cases: [string[], RegExp][] = [
        [['sae', 'follow', '--hook', 'h', '--nats', 'nats://127.0.0.1:1'], /^rlmesh: sae follow: --run is required$/],
        [['sae', 'follow', '--run', 'r', '--hook', 'h'], /^rlmesh: sae follow: --nats URL \(or NATS_URL\) is required$/],
        [['sae', 'follow', '--run', 'r', '--hook', 'h', '--bogus', '1'], /^rlmesh: sae follow: unknown option --bogus/],
        [
          ['sae', 'follow', '--run', 'r', '--hook', 'h', '--nats', 'nats://127.0.0.1:1', '--steps', '0'],
          /--steps: must be an integer >= 1/,
        ],
      ];
      for (const [argv, want] of cases) {
        const io = captureConsole();
        expect(await main(argv), argv.join(' ')).toBe(2);
        expect(io.err, argv.join(' ')).toHaveLength(1);
        expect(io.err[0]).toMatch(want);
        vi.restoreAllMocks();
      }
    } finally {
      if (saved !== undefined) process.env.NATS_URL = saved;
    }
  });
});
