/**
 * Shared by the mesh integration tests: a private nats-server and rlmesh services as real child
 * processes (`rlmesh serve`, from the built dist: `npm test` builds before vitest). Under CI=true a
 * missing nats-server or build fails the test instead of skipping it.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { findNatsServer } from '@rlmesh/mesh';

export const ROOT = join(__dirname, '..', '..');
const BUILT = join(ROOT, 'packages', 'cli', 'dist', 'main.js');

/** Why the mesh tests cannot run here, or null. Under CI nothing may be missing. */
export function missingParts(): string | null {
  const missing = [!findNatsServer() && 'nats-server', !existsSync(BUILT) && 'the build (npm run build)'].filter(Boolean);
  if (missing.length === 0) return null;
  if (process.env.CI === 'true') throw new Error(`mesh tests need ${missing.join(' and ')}`);
  return missing.join(', ');
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill(signal);
  });
}

export function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      try {
        const v = await probe();
        if (v !== undefined) return resolve(v);
      } catch (e) {
        return reject(e);
      }
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A base port for `rlmesh up` with `count` services: base .. base + count - 1, their metrics ports
 * (+100) and up's OpenAI-compatible endpoint (base + 200) all free. Drawn below Linux's ephemeral
 * range (32768+), where other tests' servers and clients take ports at random, so that a port found
 * free here is not taken a moment later.
 */
export async function freeUpBase(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const ports = [...Array.from({ length: count }, (_, i) => [base + i, base + 100 + i]).flat(), base + 200];
    if ((await Promise.all(ports.map(portIsFree))).every(Boolean)) return base;
  }
  throw new Error(`no free block of ${count} ports (and +100) between 20000 and 32100`);
}
