/**
 * The sandbox untrusted JavaScript runs in: one short-lived Node process per run, fenced by the
 * kernel and by Node's permission model, so that a program that loops, forks, allocates without
 * bound, writes files or opens a socket is stopped (or refused) and harms nothing.
 *
 *   prlimit     --cpu (CPU seconds; SIGXCPU, then SIGKILL), --as (address space: every allocation,
 *               ArrayBuffers included), --fsize 0 (no file may grow), --nofile, --core 0
 *   unshare     -rn: a new user and network namespace, so the process sees only a loopback that
 *               is down and no socket reaches anything; --pid --fork: a new PID namespace, so it sees
 *               no process of the host and cannot signal one (same-uid processes otherwise could
 *               be killed); --kill-child: it dies with unshare. Needs unprivileged user namespaces
 *               (or root)
 *   node        --experimental-permission with --allow-fs-read of the run's temp dir only and no
 *               --allow-fs-write, --allow-child-process or --allow-worker: no file is writable
 *               anywhere, and spawning a process or a thread throws ERR_ACCESS_DENIED;
 *               --disallow-code-generation-from-strings (no eval), --jitless (no WebAssembly, and
 *               a small enough address space for the --as limit), --max-old-space-size
 *   spawnSync   a wall-clock timeout and an output cap (both SIGKILL), an empty environment
 *
 * prlimit execs unshare in place, and unshare's child dies with it, so the timeout's SIGKILL ends the
 * program. Where
 * user namespaces are off (some container runtimes, Ubuntu's AppArmor default), checkSandbox says so
 * and the environments that need the sandbox refuse to reset: there is no weaker fallback.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SandboxLimits {
  /** Wall-clock limit of one run, in milliseconds. */
  wallMs: number;
  /** CPU-time limit, in whole seconds. */
  cpuSeconds: number;
  /** Address-space limit in MiB (Node itself needs ~150 with --jitless). */
  memoryMb: number;
  /** Largest stdout accepted, in bytes. */
  outputBytes: number;
}

export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = { wallMs: 4000, cpuSeconds: 2, memoryMb: 256, outputBytes: 64 * 1024 };

export type SandboxStatus = 'ok' | 'exit' | 'timeout' | 'output_limit' | 'killed';

export interface SandboxResult {
  /**
   * ok: exit code 0; exit: another code (an uncaught error); killed: a signal ended the program (the
   * CPU limit's SIGXCPU, V8's abort when the heap is full); timeout and output_limit: spawnSync's caps.
   */
  status: SandboxStatus;
  exitCode: number | null;
  stdout: string;
  /** The last 2 KB of stderr, for diagnostics. */
  stderr: string;
}

/** Files written into the run's temp dir (read-only to the program); `main` is the one Node runs. */
export interface SandboxFiles {
  [name: string]: string;
}

let checked: string | null | undefined;

/**
 * Null when this machine can run the sandbox, else the reason it cannot (the check runs once per
 * process: prlimit and a user + network namespace are tried for real).
 */
export function sandboxUnavailable(): string | null {
  if (checked !== undefined) return checked;
  const r = spawnSync(
    'prlimit',
    ['--nofile=64', '--', 'unshare', '-rn', '--pid', '--fork', '--kill-child', '--', process.execPath, '-e', '0'],
    {
      encoding: 'utf8',
      timeout: 10_000,
    },
  );
  if (r.error) checked = `cannot run prlimit / unshare (util-linux): ${r.error.message}`;
  else if (r.status !== 0)
    checked = `unshare -rn --pid failed (unprivileged user namespaces are off here?): ${r.stderr.trim().slice(0, 300) || `exit ${r.status}`}`;
  else checked = null;
  return checked;
}

/** Throws an Error naming what is missing when the sandbox cannot run here. */
export function checkSandbox(): void {
  const why = sandboxUnavailable();
  if (why) throw new Error(`the program sandbox cannot run on this machine: ${why}`);
}

/**
 * What unshare --fork prints when its child was killed by a signal and it fails to re-raise that
 * signal on itself (it then exits 1): the sign that a limit, not the program, ended the run.
 */
const KILLED_CHILD = /^unshare: sigprocmask unblock failed/m;

function sandboxArgs(dir: string, main: string, l: SandboxLimits): string[] {
  const heapMb = Math.max(16, Math.floor(l.memoryMb / 2));
  return [
    `--cpu=${l.cpuSeconds}`,
    `--as=${l.memoryMb * 1024 * 1024}`,
    '--fsize=0',
    '--nofile=64',
    '--core=0',
    '--',
    'unshare',
    '-rn',
    '--pid',
    '--fork',
    '--kill-child',
    '--',
    process.execPath,
    '--experimental-permission',
    `--allow-fs-read=${dir}`,
    '--disallow-code-generation-from-strings',
    '--jitless',
    `--max-old-space-size=${heapMb}`,
    '--no-warnings',
    join(dir, main),
  ];
}

/** Runs `files[main]` with `stdin` under the limits; never throws for anything the program does. */
export function runSandboxed(
  files: SandboxFiles,
  main: string,
  stdin: string,
  limits: SandboxLimits = DEFAULT_SANDBOX_LIMITS,
): SandboxResult {
  checkSandbox();
  if (!(main in files)) throw new Error(`runSandboxed: no file ${main} among ${Object.keys(files).join(', ')}`);
  const dir = mkdtempSync(join(tmpdir(), 'rlmesh-sandbox-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      if (!/^[\w.-]+$/.test(name)) throw new Error(`runSandboxed: file name ${JSON.stringify(name)} must be a plain name`);
      writeFileSync(join(dir, name), text);
    }
    const r = spawnSync('prlimit', sandboxArgs(dir, main, limits), {
      cwd: dir,
      input: stdin,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      timeout: limits.wallMs,
      killSignal: 'SIGKILL',
      maxBuffer: limits.outputBytes,
    });
    const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
    const status: SandboxStatus =
      code === 'ETIMEDOUT'
        ? 'timeout'
        : code === 'ENOBUFS'
          ? 'output_limit'
          : r.signal || KILLED_CHILD.test(r.stderr ?? '')
            ? 'killed'
            : r.status === 0
              ? 'ok'
              : 'exit';
    return { status, exitCode: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '').slice(-2048) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
