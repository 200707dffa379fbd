/**
 * Resumable stages of the multi-stage commands (rlmesh experiment, rlmesh cycle): a state file
 * records each finished stage with the hash of its inputs (its resolved config, and the records of
 * the stages it reads from). A stage whose record matches and whose outputs exist is skipped, so
 * after a crash or Ctrl-C only the unfinished stages run again, and a training stage stopped with
 * the same inputs resumes from its newest checkpoint; a re-run stage changes its record, so the
 * stages after it run again too. Forced stages re-run from their start.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashOf } from './experiment-config';

export interface StageRecord {
  hash: string;
  finished_at: string;
  seconds: number;
}

/** The stage under way when the state file was last written, so that a re-run can resume it. */
interface Running {
  stage: string;
  hash: string;
  /** ms since the epoch: checkpoints older than this belong to an earlier run of the stage. */
  started_at: number;
}

/**
 * The newest checkpoint `<runDir>/checkpoints/<prefix>_<n>` that holds `stateFile` (a resumable one)
 * and was written since `since`, so that a longer earlier run's leftovers are never resumed.
 */
export function latestCheckpoint(runDir: string, prefix: string, stateFile: string, since: number): string | undefined {
  const dir = join(runDir, 'checkpoints');
  if (!existsSync(dir)) return undefined;
  const steps = readdirSync(dir)
    .map((f) => new RegExp(`^${prefix}_(\\d+)$`).exec(f))
    .filter((m): m is RegExpExecArray => {
      const state = m && join(dir, m[0], stateFile);
      return state !== null && existsSync(state) && statSync(state).mtimeMs >= since;
    })
    .map((m) => Number(m[1]));
  return steps.length ? join(dir, `${prefix}_${Math.max(...steps)}`) : undefined;
}

/** The final checkpoint a training stage's summary.json names, when both exist. */
export function finalCheckpoint(runDir: string): string | null {
  const file = join(runDir, 'summary.json');
  if (!existsSync(file)) return null;
  const ckpt = (JSON.parse(readFileSync(file, 'utf8')) as { final_checkpoint?: string }).final_checkpoint;
  return ckpt && existsSync(ckpt) ? ckpt : null;
}

export class StageRunner {
  readonly records: Record<string, StageRecord>;
  private readonly interrupted: Running | undefined;

  /** `command` prefixes the log lines; `config` is recorded in the state file. */
  constructor(
    private readonly stateFile: string,
    private readonly config: string,
    private readonly forced: ReadonlySet<string>,
    private readonly command: string,
  ) {
    const state = existsSync(stateFile) ? JSON.parse(readFileSync(stateFile, 'utf8')) : {};
    this.records = state.stages ?? {};
    this.interrupted = state.running;
  }

  private save(running?: Running): void {
    writeFileSync(this.stateFile, `${JSON.stringify({ config: this.config, stages: this.records, running }, null, 2)}\n`);
  }

  /**
   * Runs a stage unless its record matches `inputs` and `done()` finds its outputs; records it after.
   * A training stage interrupted with the same inputs resumes from its newest checkpoint (`resumable`).
   */
  async stage(
    name: string,
    inputs: unknown,
    done: () => boolean,
    run: (resumeFrom?: string) => Promise<void>,
    resumable?: (since: number) => string | undefined,
  ): Promise<void> {
    const hash = hashOf(inputs);
    const rec = this.records[name];
    const forced = this.forced.has(name) || this.forced.has(name.replace(/_\d+$/, ''));
    if (!forced && rec?.hash === hash && done()) {
      console.log(`${this.command}: ${name}: done already (inputs ${hash}, finished ${rec.finished_at}); skipped`);
      return;
    }
    const interrupted = this.interrupted;
    const sameRun = !forced && interrupted?.stage === name && interrupted.hash === hash;
    const resumeFrom = sameRun ? resumable?.(interrupted.started_at) : undefined;
    const why = resumeFrom
      ? `interrupted, resuming from ${resumeFrom}`
      : rec && rec.hash !== hash
        ? 'inputs changed, running again'
        : 'running';
    console.log(`${this.command}: ${name}: ${why} (inputs ${hash})`);
    const t0 = Date.now();
    // A resumed run keeps its first start, so that its earlier checkpoints stay resumable.
    this.save({ stage: name, hash, started_at: resumeFrom && interrupted ? interrupted.started_at : t0 });
    await run(resumeFrom);
    this.records[name] = { hash, finished_at: new Date().toISOString(), seconds: (Date.now() - t0) / 1000 };
    this.save();
  }
}

/** Throws unless a stage's command exited 0. */
export function exitedOk(code: number, what: string): void {
  if (code !== 0) throw new Error(`the ${what} stage exited with ${code}`);
}
