/** The dynamic batching queue: coalescing, the wait deadline, the row cap, splitting results, errors. */
import { describe, expect, it } from 'vitest';
import { Batcher } from '../src/batcher';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A batcher whose run echoes each input with the batch it ran in, and records every batch. */
function recording(opts: { maxRows: number; maxWaitMs: number; delayMs?: number }) {
  const batches: Array<{ inputs: string[]; rows: number }> = [];
  const b = new Batcher<string, { input: string; batch: number }>({
    ...opts,
    run: async (inputs, rows) => {
      const batch = batches.push({ inputs, rows }) - 1;
      if (opts.delayMs) await sleep(opts.delayMs);
      return inputs.map((input) => ({ input, batch }));
    },
  });
  return { b, batches };
}

describe('Batcher', () => {
  it('coalesces concurrent requests into one run and splits the results back in order', async () => {
    const { b, batches } = recording({ maxRows: 100, maxWaitMs: 5 });
    const out = await Promise.all([b.submit('a', 2), b.submit('b', 3), b.submit('c', 1)]);
    expect(batches).toEqual([{ inputs: ['a', 'b', 'c'], rows: 6 }]);
    expect(out).toEqual([
      { input: 'a', batch: 0 },
      { input: 'b', batch: 0 },
      { input: 'c', batch: 0 },
    ]);
  });

  it('runs a batch as soon as the queued rows reach maxRows, without waiting', async () => {
    const { b, batches } = recording({ maxRows: 4, maxWaitMs: 10_000 });
    const t0 = performance.now();
    await Promise.all([b.submit('a', 2), b.submit('b', 2)]);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(batches).toEqual([{ inputs: ['a', 'b'], rows: 4 }]);
  });

  it('flushes a partial batch after maxWaitMs from the first request', async () => {
    const { b, batches } = recording({ maxRows: 1000, maxWaitMs: 40 });
    const t0 = performance.now();
    const first = b.submit('a', 1);
    await sleep(10);
    const second = b.submit('b', 1);
    await Promise.all([first, second]);
    const waited = performance.now() - t0;
    expect(batches).toEqual([{ inputs: ['a', 'b'], rows: 2 }]);
    // The deadline counts from the first request, not the last.
    expect(waited).toBeGreaterThanOrEqual(35);
    expect(waited).toBeLessThan(45 + 200);
  });

  it('never puts more than maxRows in a batch, except one request that is larger on its own', async () => {
    const { b, batches } = recording({ maxRows: 5, maxWaitMs: 1 });
    await Promise.all([b.submit('a', 3), b.submit('b', 3), b.submit('c', 9), b.submit('d', 2)]);
    expect(batches.map((x) => x.inputs)).toEqual([['a'], ['b'], ['c'], ['d']]);
    const { b: b2, batches: batches2 } = recording({ maxRows: 5, maxWaitMs: 1 });
    await Promise.all([b2.submit('a', 2), b2.submit('b', 3), b2.submit('c', 1)]);
    expect(batches2.map((x) => x.rows)).toEqual([5, 1]);
  });

  it('queues behind a running batch and sends everything that arrived as the next batch', async () => {
    const { b, batches } = recording({ maxRows: 1000, maxWaitMs: 0, delayMs: 40 });
    const first = b.submit('a', 1);
    await sleep(10); // 'a' is running now
    const rest = ['b', 'c', 'd'].map((x) => b.submit(x, 1));
    expect(b.pendingRows).toBe(3);
    await Promise.all([first, ...rest]);
    expect(batches.map((x) => x.inputs)).toEqual([['a'], ['b', 'c', 'd']]);
  });

  it('runs up to maxInFlight batches at once', async () => {
    let running = 0;
    let peak = 0;
    const b = new Batcher<number, number>({
      maxRows: 1,
      maxWaitMs: 0,
      maxInFlight: 3,
      run: async (xs) => {
        peak = Math.max(peak, ++running);
        await sleep(20);
        running--;
        return xs;
      },
    });
    expect(await Promise.all([1, 2, 3, 4, 5].map((x) => b.submit(x, 1)))).toEqual([1, 2, 3, 4, 5]);
    expect(peak).toBe(3);
  });

  it('rejects every request of a failed batch with the error, and keeps serving', async () => {
    let fail = true;
    const b = new Batcher<string, string>({
      maxRows: 10,
      maxWaitMs: 1,
      run: async (xs) => {
        if (fail) throw new Error('inference broke');
        return xs;
      },
    });
    const results = await Promise.allSettled([b.submit('a', 1), b.submit('b', 1), b.submit('c', 1)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of results) expect((r as PromiseRejectedResult).reason.message).toBe('inference broke');
    fail = false;
    expect(await b.submit('d', 1)).toBe('d');
  });

  it('rejects all requests when run returns the wrong number of results', async () => {
    const b = new Batcher<string, string>({ maxRows: 10, maxWaitMs: 1, run: async (xs) => xs.slice(1) });
    const results = await Promise.allSettled([b.submit('a', 1), b.submit('b', 1)]);
    for (const r of results) expect((r as PromiseRejectedResult).reason.message).toMatch(/1 results for 2 requests/);
  });

  it('close fails queued requests and refuses new ones', async () => {
    const { b, batches } = recording({ maxRows: 100, maxWaitMs: 10_000 });
    const queued = b.submit('a', 1);
    b.close(new Error('closing'));
    await expect(queued).rejects.toThrow('closing');
    await expect(b.submit('b', 1)).rejects.toThrow('closing');
    expect(batches).toEqual([]);
  });

  it('rejects nonsensical settings', () => {
    expect(() => new Batcher({ maxRows: 0, maxWaitMs: 1, run: async () => [] })).toThrow(/maxRows/);
    expect(() => new Batcher({ maxRows: 1, maxWaitMs: -1, run: async () => [] })).toThrow(/maxWaitMs/);
  });
});
