/**
 * Activations captured during a mesh run, for SAEs that follow it: before each update the learner
 * runs the capture program (capture.ts: the act program with hook outputs) with its current weights
 * on a seeded sample of the rollout's observations and publishes one batch per hook to
 * rlmesh.activations.<run>.<hook> (@rlmesh/mesh activations.ts), tagged with the version of those
 * weights. The learner samples, not the actors: it holds every version's weights and sees every
 * rollout's observations, so capture costs the actors nothing and needs no hook program on them.
 */
import { Rng } from '@rlmesh/core';
import { Session } from '@rlmesh/graph';
import { activationBatches, type Bus, encodeActivationBatch, HOOK_SUBJECT_PATTERN, subjects } from '@rlmesh/mesh';
import { buildCaptureProgram } from '../capture';
import type { PolicyModel } from '../registry';

/** `capture_hooks` as written in a run config: comma-separated hook names. */
export function captureHooks(text: string): string[] {
  return text
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
}

export class ActivationSampler {
  private constructor(
    private readonly bus: Bus,
    private readonly run: string,
    private readonly hooks: { name: string; width: number }[],
    private readonly model: PolicyModel,
    private readonly session: Session,
    private readonly rows: number,
    private readonly seed: number,
  ) {}

  /** Builds the capture program for `hooks`; unknown hooks (or ones without a fixed width) are refused by name. */
  static async open(bus: Bus, run: string, model: PolicyModel, hooks: string[], rows: number, seed: number): Promise<ActivationSampler> {
    for (const h of hooks)
      if (!HOOK_SUBJECT_PATTERN.test(h)) throw new Error(`mesh.capture_hooks: ${JSON.stringify(h)} is not a hook name`);
    let program: ReturnType<typeof buildCaptureProgram>;
    try {
      program = buildCaptureProgram(model, hooks);
    } catch (e) {
      throw new Error(`mesh.capture_hooks: ${(e as Error).message}`);
    }
    const widths = hooks.map((name) => {
      const rest = program.shapes[name].slice(1);
      if (rest.some((d) => typeof d !== 'number'))
        throw new Error(`mesh.capture_hooks: ${name} has no fixed width ([${program.shapes[name]}])`);
      return { name, width: (rest as number[]).reduce((a, b) => a * b, 1) };
    });
    const session = await Session.create(program.onnx, { intraOpThreads: 1, spinning: false });
    return new ActivationSampler(bus, run, widths, model, session, rows, seed);
  }

  /** Captures a sample of `obs` [obsRows, obs_dim] with `params` (version `version`) and publishes it; returns the rows sent per hook. */
  async capture(params: Float32Array, version: number, level: number, obs: Float32Array, obsRows: number): Promise<number> {
    const S = this.model.obsDim;
    const n = Math.min(this.rows, obsRows);
    // A seeded partial shuffle: which observations are taken is reproducible per version.
    const idx = Int32Array.from({ length: obsRows }, (_, i) => i);
    const rng = new Rng(this.seed * 1_000_003 + version);
    for (let i = 0; i < n; i++) {
      const j = i + rng.int(obsRows - i);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    const x = new Float32Array(n * S);
    for (let i = 0; i < n; i++) x.set(obs.subarray(idx[i] * S, (idx[i] + 1) * S), i * S);
    const out = await this.session.run(
      { params: { data: params, shape: [params.length] }, obs: { data: x, shape: [n, S] } },
      this.hooks.map((h) => h.name),
    );
    for (const h of this.hooks) {
      const data = out[h.name].data as Float32Array;
      for (const b of activationBatches({ run: this.run, hook: h.name, version, level, d: h.width }, data, n)) {
        const { data: bytes, headers } = encodeActivationBatch(b);
        await this.bus.publish(subjects.activations(this.run, h.name), bytes, headers);
      }
    }
    return n;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
