/**
 * Runs a PyTorch CPU reference (bench/torch/*.py) of the same model and algorithm as a TypeScript
 * benchmark, in the same bench invocation, so that our onnxruntime numbers are compared with PyTorch
 * measured on the same machine under the same load rather than with a figure from elsewhere.
 * Uses /usr/bin/python3 (Debian's python3-torch); the python3 on PATH may be a pyenv without torch.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const PYTHON = '/usr/bin/python3';
const REPO_ROOT = join(__dirname, '..');

export type TorchScript = 'ppo_cartpole' | 'reinforce_baby';
export type TorchOutcome = { ok: true; result: Record<string, unknown> } | { ok: false; reason: string };

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

export function runTorchReference(script: TorchScript, args: string[], timeoutMs: number): TorchOutcome {
  // Checked first so a machine without torch gets "no reference" instead of a Python traceback.
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.error) return { ok: false, reason: `${PYTHON} not runnable: ${probe.error.message}` };
  if (probe.status !== 0) return { ok: false, reason: `torch not importable by ${PYTHON}: ${lastLines(probe.stderr, 1)}` };

  const run = spawnSync(PYTHON, [join('bench', 'torch', `${script}.py`), ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.error) {
    const timedOut = (run.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    return {
      ok: false,
      reason: timedOut ? `${script}.py timed out after ${timeoutMs} ms` : `${script}.py failed to run: ${run.error.message}`,
    };
  }
  if (run.status !== 0) return { ok: false, reason: `${script}.py exited ${run.status ?? run.signal}: ${lastLines(run.stderr, 3)}` };
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return { ok: true, result: JSON.parse(line) as Record<string, unknown> };
  } catch {
    return { ok: false, reason: `${script}.py printed no JSON result line; stdout ended with: ${line.slice(0, 200)}` };
  }
}
