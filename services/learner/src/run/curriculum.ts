/**
 * Success tracking and the difficulty curriculum, shared by the embedded loop and the mesh learner:
 * the reported success is the mean of the last `success_window` batches; the level goes up when the
 * mean of the last `advance_window` batches at the current level reaches `advance_at`, and the
 * history restarts at the new level.
 */
import type { RunConfig } from './config';

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export class Curriculum {
  level: number;
  /** Mean success of the last success_window batches at the current level. */
  success = 0;
  readonly history: number[] = [];

  constructor(
    private readonly cfg: Pick<RunConfig, 'curriculum' | 'train'>,
    private readonly numLevels: number,
    state: { level?: number; history?: readonly number[] } = {},
  ) {
    this.level = state.level ?? cfg.curriculum.start_level;
    this.history.push(...(state.history ?? []));
    this.success = mean(this.history.slice(-cfg.train.success_window));
  }

  /** Continues at `level` with the success history a checkpoint saved. */
  restore(level: number, history: readonly number[]): void {
    this.level = level;
    this.history.splice(0, this.history.length, ...history);
    this.success = mean(this.history.slice(-this.cfg.train.success_window));
  }

  /** Records a batch's success at the current level; true when that moved the level up. */
  record(batchSuccess: number): boolean {
    const { success_window } = this.cfg.train;
    const { advance_window, advance_at } = this.cfg.curriculum;
    this.history.push(batchSuccess);
    if (this.history.length > Math.max(success_window, advance_window)) this.history.shift();
    this.success = mean(this.history.slice(-success_window));
    const window = this.history.slice(-advance_window);
    if (this.level + 1 < this.numLevels && window.length >= advance_window && mean(window) >= advance_at) {
      this.level++;
      this.history.length = 0;
      return true;
    }
    return false;
  }
}
