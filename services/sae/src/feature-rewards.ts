/**
 * Feature rewards: reward components read from SAE features of the policy itself. A feature set
 * `{name, hook, sae, features, weight, kind, reduce, threshold}` scores each completion as
 *
 *   fires_f(t)  = 1 when feature f's SAE activation at completion token t exceeds `threshold`
 *   score_f     = mean_t fires_f(t)  (reduce mean: the share of completion tokens it fires on)
 *                 max_t fires_f(t)   (reduce max: whether it fires at all)
 *   component   = mean over the set's features of score_f,                in [0, 1]
 *
 * and is joined to the env's reward vector under `name`; its weight in the algorithm's reward is
 * +weight for a bonus and -weight for a penalty (featureRewardWeights). The activations are the
 * policy's own at `hook` on the prompt followed by the completion, read with the capture program and
 * the current parameters at every update (the learner holds them), at the completion's positions
 * only. The same per-feature scores are what the storyworld cycle's analysis correlates with the
 * verifier's components, so the features it picks score completions the way it measured them.
 */
import { ConfigError, type Schema, type SequenceRollout, validate } from '@rlmesh/core';
import { type HostTensor, type ParamLayout, Session } from '@rlmesh/graph';
import { buildCaptureProgram, type Gpt2Config } from '@rlmesh/learner';
import { gpt2Policy } from './capture-text';
import { loadSaeLens, SaeModel } from './saelens';

const SET_FIELDS = {
  name: { kind: 'string', doc: 'the reward component it is joined under (not one of the env’s)' },
  hook: { kind: 'string', doc: 'a hook point of the policy, read at every completion token' },
  sae: { kind: 'string', doc: "an SAE directory in SAELens's layout trained on that hook" },
  weight: { kind: 'number', default: 0.1, min: 0, doc: "the component's weight in the reward" },
  kind: { kind: 'string', default: 'bonus', oneOf: ['bonus', 'penalty'], doc: 'bonus adds weight x score, penalty subtracts it' },
  reduce: { kind: 'string', default: 'mean', oneOf: ['mean', 'max'], doc: 'over completion tokens: firing share, or fired at all' },
  threshold: { kind: 'number', default: 0, min: 0, doc: 'a feature fires where its activation exceeds this' },
} as const satisfies Schema;

export interface FeatureRewardSpec {
  name: string;
  hook: string;
  sae: string;
  features: number[];
  weight: number;
  kind: 'bonus' | 'penalty';
  reduce: 'mean' | 'max';
  threshold: number;
}

/** A list of feature sets (the `feature_rewards` key); errors name `<key>[i].<field>`. */
export function parseFeatureRewards(raw: unknown, key = 'feature_rewards'): FeatureRewardSpec[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError(key, 'must be a list of feature sets');
  const names = new Set<string>();
  return raw.map((item, i) => {
    const at = `${key}[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new ConfigError(at, 'must be a mapping');
    const { features, ...rest } = item as Record<string, unknown>;
    const s = validate(SET_FIELDS, rest, at);
    if (!/^[\w.-]+$/.test(s.name)) throw new ConfigError(`${at}.name`, `must be a plain name, got ${JSON.stringify(s.name)}`);
    if (names.has(s.name)) throw new ConfigError(`${at}.name`, `${s.name} names two feature sets`);
    names.add(s.name);
    if (!Array.isArray(features) || features.length === 0 || !features.every((f) => Number.isInteger(f) && f >= 0))
      throw new ConfigError(
        `${at}.features`,
        `must be a non-empty list of latent indices (integers >= 0), got ${JSON.stringify(features)}`,
      );
    return { ...s, features: features as number[] } as FeatureRewardSpec;
  });
}

/** Each set's weight in the algorithm's reward: +weight for a bonus, -weight for a penalty. */
export function featureRewardWeights(specs: readonly FeatureRewardSpec[]): Record<string, number> {
  return Object.fromEntries(specs.map((s) => [s.name, s.kind === 'bonus' ? s.weight : -s.weight]));
}

/**
 * Per completion and latent, the firing score over its tokens: `codes` [tokens, dSae] are the SAE
 * activations of consecutive completions, `counts[i]` tokens each. Returns [completions, dSae].
 */
export function firingScores(
  codes: Float32Array,
  dSae: number,
  counts: readonly number[],
  reduce: 'mean' | 'max',
  threshold = 0,
): Float32Array {
  const out = new Float32Array(counts.length * dSae);
  let row = 0;
  for (const [i, n] of counts.entries()) {
    const o = out.subarray(i * dSae, (i + 1) * dSae);
    for (let t = 0; t < n; t++, row++)
      for (let f = 0; f < dSae; f++) if (codes[row * dSae + f] > threshold) o[f] = reduce === 'max' ? 1 : o[f] + 1;
    if (reduce === 'mean' && n > 0) for (let f = 0; f < dSae; f++) o[f] /= n;
  }
  if (row * dSae !== codes.length) throw new Error(`firingScores: counts cover ${row} tokens, codes hold ${codes.length / dSae}`);
  return out;
}

/** One prompt and its completion, as token ids. */
export interface Completion {
  prompt: readonly number[];
  completion: readonly number[];
}

/** The completions of a rollout (its rows, in order), padding removed. */
export function rolloutCompletions(r: SequenceRollout): Completion[] {
  const rows = r.numPrompts * r.groupSize;
  return Array.from({ length: rows }, (_, i) => {
    const prompt = Array.from(r.promptIds.subarray(i * r.promptLength, i * r.promptLength + r.promptLengths[i]));
    const completion: number[] = [];
    for (let t = 0; t < r.completionLength; t++)
      if (r.completionMask[i * r.completionLength + t]) completion.push(r.completionIds[i * r.completionLength + t]);
    return { prompt, completion };
  });
}

/**
 * A GPT-2's activations at hooks on the completion tokens of prompt + completion sequences, with
 * any parameters (one capture program at the model's full context; attention is causal, so the
 * padding after a sequence changes none of its positions).
 */
export class CompletionCapture {
  private constructor(
    readonly hooks: readonly string[],
    readonly widths: Record<string, number>,
    private readonly session: Session,
    private readonly layout: ParamLayout,
    private readonly context: number,
    private readonly padId: number,
  ) {}

  static async open(config: Gpt2Config, padId: number, hooks: readonly string[], threads = 1): Promise<CompletionCapture> {
    const context = config.n_positions;
    const program = buildCaptureProgram(gpt2Policy(config, context, padId), hooks);
    const widths: Record<string, number> = {};
    for (const h of hooks) {
      const shape = program.shapes[h];
      if (shape.length !== 3 || shape[1] !== context)
        throw new Error(`hook ${h}: shape [${shape}] is not [batch, positions, d]; feature rewards read one row per token`);
      widths[h] = shape[2] as number;
    }
    const session = await Session.create(program.onnx, { intraOpThreads: threads });
    return new CompletionCapture(hooks, widths, session, program.layout, context, padId);
  }

  /** Per hook, the rows [sum of completion lengths, d] in completion order; `batch` sequences per run. */
  async run(params: ReadonlyMap<string, Float32Array>, seqs: readonly Completion[], batch = 16): Promise<Record<string, Float32Array>> {
    const flat = this.layout.pack(params as Map<string, Float32Array>);
    const total = seqs.reduce((a, s) => a + s.completion.length, 0);
    const out = Object.fromEntries(this.hooks.map((h) => [h, new Float32Array(total * this.widths[h])]));
    const S = this.context;
    let written = 0;
    for (let at = 0; at < seqs.length; at += batch) {
      const part = seqs.slice(at, at + batch);
      const obs = new Float32Array(part.length * S).fill(this.padId);
      for (const [b, s] of part.entries()) {
        if (s.prompt.length + s.completion.length > S)
          throw new RangeError(`sequence ${at + b}: ${s.prompt.length + s.completion.length} tokens exceed the context ${S}`);
        obs.set(s.prompt, b * S);
        obs.set(s.completion, b * S + s.prompt.length);
      }
      const feeds: Record<string, HostTensor> = {
        params: { data: flat, shape: [flat.length] },
        obs: { data: obs, shape: [part.length, S] },
      };
      const res = await this.session.run(feeds);
      for (const h of this.hooks) {
        const d = this.widths[h];
        const data = res[h].data as Float32Array;
        let w = written;
        for (const [b, s] of part.entries()) {
          const from = (b * S + s.prompt.length) * d;
          out[h].set(data.subarray(from, from + s.completion.length * d), w * d);
          w += s.completion.length;
        }
      }
      written += part.reduce((a, s) => a + s.completion.length, 0);
    }
    return out;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * Scores rollouts with feature sets: the learner's extra reward components. `score` runs the
 * capture program with the parameters that generated the rollout, each distinct SAE once per hook,
 * and returns one [rows] array per set.
 */
export class FeatureRewarder {
  readonly components: readonly string[];

  private constructor(
    readonly specs: readonly FeatureRewardSpec[],
    private readonly capture: CompletionCapture,
    private readonly saes: Map<string, SaeModel>,
  ) {
    this.components = specs.map((s) => s.name);
  }

  /** Loads every set's SAE and checks it against its hook's width and the set's latent indices. */
  static async create(
    specs: readonly FeatureRewardSpec[],
    model: { config: Gpt2Config; padId: number },
    opts: { threads?: number; key?: string } = {},
  ): Promise<FeatureRewarder> {
    const key = opts.key ?? 'feature_rewards';
    const hooks = [...new Set(specs.map((s) => s.hook))];
    let capture: CompletionCapture;
    try {
      capture = await CompletionCapture.open(model.config, model.padId, hooks, opts.threads ?? 1);
    } catch (e) {
      throw new ConfigError(`${key}.hook`, (e as Error).message);
    }
    const saes = new Map<string, SaeModel>();
    try {
      for (const [i, s] of specs.entries()) {
        const at = `${key}[${i}]`;
        if (!saes.has(s.sae)) {
          let w: Awaited<ReturnType<typeof loadSaeLens>>;
          try {
            w = await loadSaeLens(s.sae);
          } catch (e) {
            throw new ConfigError(`${at}.sae`, `${s.sae}: ${(e as Error).message}`);
          }
          saes.set(s.sae, await SaeModel.create(w, { intraOpThreads: opts.threads ?? 1 }));
        }
        const cfg = (saes.get(s.sae) as SaeModel).weights.cfg;
        if (cfg.d_in !== capture.widths[s.hook])
          throw new ConfigError(`${at}.sae`, `reads d_in ${cfg.d_in}, but hook ${s.hook} is ${capture.widths[s.hook]} wide`);
        const bad = s.features.find((f) => f >= cfg.d_sae);
        if (bad !== undefined) throw new ConfigError(`${at}.features`, `latent ${bad} is not below the SAE's d_sae ${cfg.d_sae}`);
      }
    } catch (e) {
      for (const m of saes.values()) await m.release();
      await capture.release();
      throw e;
    }
    return new FeatureRewarder(specs, capture, saes);
  }

  /** Every set's component for each completion. */
  async scoreCompletions(params: ReadonlyMap<string, Float32Array>, seqs: readonly Completion[]): Promise<Record<string, Float32Array>> {
    const acts = await this.capture.run(params, seqs);
    const counts = seqs.map((s) => s.completion.length);
    const codes = new Map<string, Float32Array>();
    const out: Record<string, Float32Array> = {};
    for (const s of this.specs) {
      const sae = this.saes.get(s.sae) as SaeModel;
      const ck = `${s.hook}\n${s.sae}`;
      let c = codes.get(ck);
      if (!c) {
        const rows = counts.reduce((a, b) => a + b, 0);
        c = rows > 0 ? (await sae.forward({ data: acts[s.hook], rows })).featureActs : new Float32Array(0);
        codes.set(ck, c);
      }
      const dSae = sae.weights.cfg.d_sae;
      const scores = firingScores(c, dSae, counts, s.reduce, s.threshold);
      out[s.name] = Float32Array.from(counts, (_, i) => {
        let sum = 0;
        for (const f of s.features) sum += scores[i * dSae + f];
        return sum / s.features.length;
      });
    }
    return out;
  }

  score(r: SequenceRollout, params: ReadonlyMap<string, Float32Array>): Promise<Record<string, Float32Array>> {
    return this.scoreCompletions(params, rolloutCompletions(r));
  }

  async release(): Promise<void> {
    for (const m of this.saes.values()) await m.release();
    await this.capture.release();
  }
}
