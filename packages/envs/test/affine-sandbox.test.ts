import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runProgram, runSandboxed, type SandboxLimits, sandboxUnavailable } from '../src/affine';

// Tight limits keep the hostile cases quick; a well-behaved program needs far less.
const LIMITS: SandboxLimits = { wallMs: 3000, cpuSeconds: 1, memoryMb: 256, outputBytes: 16 * 1024 };
const MARKER = join(tmpdir(), `rlmesh-sandbox-escape-${process.pid}`);
const run = (body: string, calls: unknown[][] = [[1]]) => runProgram(`function f(x) {\n${body}\n}`, calls, LIMITS);

afterAll(() => rmSync(MARKER, { force: true }));

describe('affine sandbox', () => {
  it('runs on this machine (prlimit and a user + network namespace)', () => {
    // A machine without them must fail here, not skip: the reasoning envs refuse to start there.
    expect(sandboxUnavailable()).toBeNull();
  });

  it('where prlimit / unshare are missing, says why and the program tasks refuse to reset (no weaker fallback)', () => {
    const script = `const envs = await import(${JSON.stringify(join(__dirname, '../src/index.ts'))});
const core = await import('@rlmesh/core');
const { makeTextEnv } = core.default ?? core;
const { sandboxUnavailable } = envs.default ?? envs;
console.log(sandboxUnavailable());
const env = makeTextEnv('AffineDED', {});
try { env.reset(1); console.log('reset ran'); } catch (e) { console.log(e.message); }`;
    const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: join(__dirname, '../../..'),
      env: { PATH: '/nonexistent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stdout.trim().split('\n')).toEqual([
      'cannot run prlimit / unshare (util-linux): spawnSync prlimit ENOENT',
      'the program sandbox cannot run on this machine: cannot run prlimit / unshare (util-linux): spawnSync prlimit ENOENT',
    ]);
  });

  it('runs a well-behaved program and returns its values as JSON text, errors per call', () => {
    const out = runProgram('function f(xs, k) { if (k < 0) throw new Error("negative k"); return xs.map((x) => x * k); }', [
      [[1, 2], 3],
      [[], 1],
      [[1], -1],
    ]);
    expect(out.error).toBeNull();
    expect(out.results).toEqual([
      { ok: true, value: '[3,6]' },
      { ok: true, value: '[]' },
      { ok: false, error: 'negative k' },
    ]);
  });

  it('reports a program that does not load or defines no f', () => {
    expect(runProgram('function f( {', [[1]], LIMITS).error).toMatch(/does not load/);
    expect(runProgram('function g(x) { return x; }', [[1]], LIMITS).error).toBe('the program defines no function f');
  });

  it('stops an endless loop at the CPU limit and a sleeping one at the wall-clock limit', () => {
    const t0 = Date.now();
    expect(runProgram('function f(x) { while (true) {} }', [[1]], { ...LIMITS, wallMs: 2000 }).error).toMatch(
      /stopped \((killed|timeout)\)/,
    );
    const sleeper = 'function f(x) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); }';
    expect(runProgram(sleeper, [[1]], { ...LIMITS, wallMs: 1500 }).error).toBe('the program was stopped (timeout)');
    expect(Date.now() - t0).toBeLessThan(LIMITS.wallMs + 1500 + 2000);
  });

  it('stops unbounded allocation on the heap and outside it', () => {
    expect(run('const a = []; for (;;) a.push(new Array(1e6).fill(x));').error).toMatch(/stopped/);
    // Past the address-space limit an ArrayBuffer cannot be had: the program gets a RangeError.
    const out = run('const a = []; for (;;) a.push(new Uint8Array(1 << 26).fill(1));');
    if (out.error) expect(out.error).toMatch(/stopped/);
    else expect(out.results?.[0]).toEqual({ ok: false, error: 'Array buffer allocation failed' });
  });

  it('refuses child processes and threads', () => {
    for (const body of [
      `require('child_process').execSync('touch ${MARKER}');`,
      `process.binding('spawn_sync').spawn({ file: 'touch', args: ['touch', '${MARKER}'] });`,
      "new (require('worker_threads').Worker)('1', { eval: true });",
    ]) {
      const out = runProgram(`const m = require; function f(x) {\n${body.replaceAll('require', 'm')}\nreturn 'escaped';\n}`, [[1]], LIMITS);
      expect(out.results?.[0]).toMatchObject({ ok: false });
    }
    expect(existsSync(MARKER)).toBe(false);
  });

  it('sees no process of the host, so it cannot signal one', () => {
    const victim = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const out = run(`process.kill(${victim.pid}, 'SIGKILL'); return 'sent';`);
      expect(out.results?.[0]).toMatchObject({ ok: false, error: expect.stringMatching(/ESRCH/) });
      expect(run('return [process.pid, process.ppid];').results?.[0]).toEqual({ ok: true, value: '[1,0]' });
      expect(victim.exitCode).toBeNull();
      expect(victim.signalCode).toBeNull();
      expect(() => process.kill(victim.pid as number, 0)).not.toThrow();
    } finally {
      victim.kill('SIGKILL');
    }
  });

  it('refuses every file write, outside its dir and inside', () => {
    for (const path of [MARKER, './scratch.txt']) {
      const out = runProgram(
        `const fs = require('fs'); function f(x) { fs.writeFileSync(${JSON.stringify(path)}, 'x'); return 1; }`,
        [[1]],
        LIMITS,
      );
      expect(out.results?.[0]).toMatchObject({ ok: false, error: expect.stringMatching(/restricted|denied/i) });
    }
    expect(existsSync(MARKER)).toBe(false);
    const read = runProgram("const fs = require('fs'); function f(x) { return fs.readFileSync('/etc/hostname', 'utf8'); }", [[1]], LIMITS);
    expect(read.results?.[0]).toMatchObject({ ok: false });
  });

  it('gives a program an environment holding PATH alone', () => {
    expect(run('return Object.keys(process.env);').results?.[0]).toEqual({ ok: true, value: '["PATH"]' });
  });

  it('refuses eval and new Function', () => {
    expect(run("return eval('1 + 1');").results?.[0]).toMatchObject({ ok: false });
    expect(run("return new Function('return 2')();").results?.[0]).toMatchObject({ ok: false });
  });

  it('gives a program no network: a socket to a listening host port never connects', async () => {
    let connections = 0;
    const server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const program = `const net = require('net');
function f(x) { return 1; }
const s = net.connect(${port}, '127.0.0.1');
s.on('connect', () => { process.stdout.write('CONNECTED\\n'); });
s.on('error', (e) => { process.stdout.write('ERR ' + e.code + '\\n'); });`;
    // The harness reports at once, so the connection attempt gets a moment first through a busy wait.
    const slow = `${program}\nconst until = Date.now() + 300; while (Date.now() < until) {}`;
    const r = runSandboxed({ 'main.js': `require('./p.js');\nsetTimeout(() => {}, 500);`, 'p.js': slow }, 'main.js', '', LIMITS);
    expect(r.stdout).not.toContain('CONNECTED');
    expect(r.stdout).toMatch(/ERR E(NETUNREACH|CONNREFUSED|ACCES)/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    server.close();
    expect(connections).toBe(0);
  });

  it('stops a program whose output passes the cap', () => {
    expect(run("for (;;) process.stdout.write('x'.repeat(4096));").error).toMatch(/stopped \((output_limit|killed)\)/);
  });

  it('removes its temp dir after the run', () => {
    const out = run('return process.cwd();');
    expect(out.results?.[0]).toMatchObject({ ok: true, value: expect.stringContaining('rlmesh-sandbox-') });
    const dir = JSON.parse((out.results as { value: string }[])[0].value);
    expect(existsSync(dir)).toBe(false);
  });
});
