/**
 * The evaluator service without its transport: Evaluate (a suite, given as text or a parsed mapping,
 * run on a published policy version or a checkpoint, then stored), GetEvaluation, Compare and
 * ListEvaluations over the store. Every bad request becomes a MeshError naming the request field
 * (`suite.entries[0].env.id`, `policy.version`, `ids[1]`), which the gRPC adapter turns into a status.
 */
import { existsSync } from 'node:fs';
import {
  ConfigError,
  type Env,
  type EvaluationResult,
  envSpec,
  isTextEnv,
  makeEnv,
  makeTextEnv,
  parseConfigText,
  resetEnv,
} from '@rlmesh/core';
import { type Bus, failedPrecondition, invalidArgument, type Logger, MeshError, notFound, pathUnder } from '@rlmesh/mesh';
import { dominates, paretoFrontier } from './compare';
import { evaluate } from './evaluator';
import { type AnyPolicySource, isTextPolicy, openCheckpoint, PolicyFitError, type TextPolicySource } from './policy-source';
import { BusPolicy, busPolicy, type Channel, resolvePointer } from './remote-policy';
import type { EvaluationFilter, EvaluationStore, EvaluationSummary } from './store';
import { parseSuite, type Suite, type SuiteEntry } from './suite';
import { checkPromptFits } from './text-episodes';

/** A run's version (by number or channel) or a checkpoint file; exactly one of run_id and checkpoint. */
export interface PolicySelector {
  run_id?: string;
  version?: number;
  channel?: Channel;
  checkpoint?: string;
  label?: string;
}

export interface EvaluationProgress {
  entry: string;
  entry_episodes_done: number;
  entry_episodes_total: number;
  episodes_done: number;
  episodes_total: number;
}

export interface EvaluateCall {
  /** YAML or JSON text, or an already parsed mapping. */
  suite: unknown;
  policy: PolicySelector;
  onProgress?(p: EvaluationProgress): void;
  signal?: AbortSignal;
}

export interface ComparisonOptions {
  minEpisodes?: number;
  /** A fixed tolerance on success rates, or 'se' for the standard error of the difference. */
  epsilon?: number | 'se';
}

export interface Comparison {
  ids: string[];
  /** dominance[i][j]: ids[i] dominates ids[j]. */
  dominance: boolean[][];
  /** The ids on the (epsilon-)Pareto frontier, in the order of ids. */
  frontier: string[];
}

export interface EvaluatorCoreOptions {
  store: EvaluationStore;
  /** Needed for policies named by run; without it only checkpoints can be evaluated. */
  bus?: Bus;
  logger: Logger;
  /**
   * Where checkpoints named in requests may be read from: relative paths resolve under it and nothing
   * outside it is opened (symlinks included). Unset: any path (in-process use, not a service).
   */
  checkpointRoot?: string;
}

/** A ConfigError from suite parsing names a key inside the suite; the request field is suite.<key>. */
function suiteError(e: unknown): unknown {
  if (!(e instanceof ConfigError)) return e;
  const key = e.key === '(root)' ? 'suite' : e.key.startsWith('suite.') ? e.key : `suite.${e.key}`;
  return invalidArgument(key, e.rule);
}

/** A comparison reads every result and builds an n x n dominance matrix: bounded so one request stays cheap. */
export const MAX_COMPARED = 256;
/** Ids the evaluator makes (ev-<time>-<hex>) and ids a caller chose: safe as store keys and file names. */
const EVALUATION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkEvaluationId(field: string, id: string): void {
  if (!id) throw invalidArgument(field, 'is required');
  if (!EVALUATION_ID.test(id)) throw invalidArgument(field, `must match ${EVALUATION_ID}, got ${JSON.stringify(id)}`);
}

export class EvaluatorCore {
  constructor(private readonly opts: EvaluatorCoreOptions) {}

  get store(): EvaluationStore {
    return this.opts.store;
  }

  /** Parses suite text (YAML or JSON) or a mapping; errors name `suite` or the key inside it. */
  parseSuite(raw: unknown): Suite {
    let value = raw;
    if (typeof raw === 'string') {
      if (raw.trim() === '') throw invalidArgument('suite', 'is required (YAML or JSON text)');
      try {
        value = parseConfigText(raw, 'suite');
      } catch (e) {
        throw e instanceof ConfigError ? invalidArgument('suite', e.rule) : e;
      }
    }
    try {
      return parseSuite(value);
    } catch (e) {
      throw suiteError(e);
    }
  }

  /** The file (or GPT-2 directory) a request's checkpoint names, confined to checkpointRoot when there is one. */
  private checkpointPath(requested: string): string {
    const root = this.opts.checkpointRoot;
    if (root) return pathUnder(root, requested, 'policy.checkpoint', "the evaluator's checkpoint root");
    if (!existsSync(requested)) throw notFound('policy.checkpoint', `no file or directory ${JSON.stringify(requested)} on the evaluator`);
    return requested;
  }

  /** Opens the policy a selector names; the caller closes it. */
  async openPolicy(sel: PolicySelector): Promise<AnyPolicySource> {
    const run = sel.run_id ?? '';
    const checkpoint = sel.checkpoint ?? '';
    if (run && checkpoint) throw invalidArgument('policy', 'set either run_id or checkpoint, not both');
    if (checkpoint) {
      const path = this.checkpointPath(checkpoint);
      try {
        return await openCheckpoint(path, sel.label || undefined);
      } catch (e) {
        if (e instanceof MeshError) throw e;
        throw invalidArgument('policy.checkpoint', `cannot be loaded as a policy: ${(e as Error).message}`);
      }
    }
    if (!run) throw invalidArgument('policy', 'name a run (run_id, with version or channel) or a checkpoint');
    if (sel.version !== undefined && !(Number.isInteger(sel.version) && sel.version >= 0))
      throw invalidArgument('policy.version', `must be an integer >= 0, got ${sel.version}`);
    const bus = this.opts.bus;
    if (!bus) throw failedPrecondition('policy.run_id', 'this evaluator has no bus; only checkpoints can be evaluated');
    const pointer = await resolvePointer(bus, sel as PolicySelector & { run_id: string });
    return busPolicy(bus, run, pointer, sel.label || undefined);
  }

  /** Runs the suite on the policy, stores the result and returns it. */
  async evaluate(call: EvaluateCall): Promise<EvaluationResult> {
    const suite = this.parseSuite(call.suite);
    const policyField = call.policy.checkpoint ? 'policy.checkpoint' : 'policy.run_id';
    const policy = await this.openPolicy(call.policy);
    try {
      await checkFit(suite, policy, policyField);
      const total = suite.entries.reduce((n, e) => n + e.episodes, 0);
      const done = new Map<string, number>();
      const t0 = performance.now();
      let result: EvaluationResult;
      try {
        result = await evaluate(suite, policy, {
          signal: call.signal,
          onProgress: (p) => {
            done.set(p.entry, p.episodes_done);
            let all = 0;
            for (const n of done.values()) all += n;
            call.onProgress?.({
              entry: p.entry,
              entry_episodes_done: p.episodes_done,
              entry_episodes_total: p.episodes_total,
              episodes_done: all,
              episodes_total: total,
            });
          },
        });
      } catch (e) {
        // A later prompt can still overflow the context the first one fitted.
        if (e instanceof PolicyFitError) throw invalidArgument(policyField, e.message);
        throw suiteError(e);
      }
      await this.opts.store.put(result);
      this.opts.logger.info('evaluated', {
        id: result.id,
        suite: suite.name,
        policy: policy.ref,
        success_rate: result.aggregate.all.success_rate,
        episodes: total,
        seconds: Number(((performance.now() - t0) / 1000).toFixed(2)),
      });
      return result;
    } finally {
      await policy.close();
    }
  }

  async get(id: string): Promise<EvaluationResult> {
    checkEvaluationId('id', id);
    const r = await this.opts.store.get(id);
    if (!r) throw notFound('id', `no evaluation ${JSON.stringify(id)}`);
    return r;
  }

  async list(filter: EvaluationFilter = {}): Promise<EvaluationSummary[]> {
    return this.opts.store.list(filter);
  }

  /** Dominance between every pair of stored evaluations of one suite, and their Pareto frontier. */
  async compare(ids: string[], opts: ComparisonOptions = {}): Promise<Comparison> {
    if (ids.length < 2) throw invalidArgument('ids', `name at least two evaluations, got ${ids.length}`);
    if (ids.length > MAX_COMPARED) throw invalidArgument('ids', `name at most ${MAX_COMPARED} evaluations, got ${ids.length}`);
    for (const [i, id] of ids.entries()) checkEvaluationId(`ids[${i}]`, id);
    const seen = new Set<string>();
    const results: EvaluationResult[] = [];
    for (const [i, id] of ids.entries()) {
      if (seen.has(id)) throw invalidArgument(`ids[${i}]`, `${JSON.stringify(id)} is named twice`);
      seen.add(id);
      const r = await this.opts.store.get(id);
      if (!r) throw notFound(`ids[${i}]`, `no evaluation ${JSON.stringify(id)}`);
      if (r.suite !== results[0]?.suite && results.length > 0)
        throw invalidArgument(
          `ids[${i}]`,
          `evaluated on suite "${r.suite}", ids[0] on "${results[0].suite}"; compare results of one suite`,
        );
      results.push(r);
    }
    if (opts.minEpisodes !== undefined && !(Number.isInteger(opts.minEpisodes) && opts.minEpisodes >= 0))
      throw invalidArgument('min_episodes', `must be an integer >= 0, got ${opts.minEpisodes}`);
    if (typeof opts.epsilon === 'number' && !(opts.epsilon >= 0 && opts.epsilon < 1))
      throw invalidArgument('epsilon', `must be in [0, 1), got ${opts.epsilon}`);
    const minEpisodes = opts.minEpisodes || undefined;
    const dominance = results.map((a) => results.map((b) => a !== b && dominates(a, b, { minEpisodes })));
    const onFrontier = new Set(paretoFrontier(results, { minEpisodes, epsilon: opts.epsilon || undefined }).map((r) => r.id));
    return { ids, dominance, frontier: ids.filter((id) => onFrontier.has(id)) };
  }
}

/**
 * Every suite entry's environment must exist with its options, and the policy must act in it: the
 * spaces a bus policy declares must match, and one greedy action on the entry's first observation
 * must come back with the action space's width. A text env needs a text policy whose context holds
 * the entry's first prompt and its token budget, and which completes that prompt. A policy of
 * another model or environment is thus refused before any episode runs, naming the entry.
 */
async function checkFit(suite: Suite, policy: AnyPolicySource, field: string): Promise<void> {
  const declared = policy instanceof BusPolicy ? policy : null;
  for (const [i, entry] of suite.entries.entries()) {
    const where = `suite entry "${entry.name}" (${entry.env.id})`;
    if (isTextEnv(entry.env.id)) {
      if (!isTextPolicy(policy))
        throw invalidArgument(field, `${where} is a text env: it needs a language model (a GPT-2 directory), not an action policy`);
      await checkTextFit(entry, i, policy, field, where);
      continue;
    }
    if (isTextPolicy(policy)) throw invalidArgument(field, `${where} takes actions: a language model (GPT-2 directory) cannot act in it`);
    let env: Env;
    try {
      envSpec(entry.env.id, `suite.entries[${i}].env.id`);
      env = makeEnv(entry.env.id, entry.env.options, `suite.entries[${i}].env.options`);
    } catch (e) {
      throw suiteError(e);
    }
    if (declared) {
      const obs = declared.observationSpace.flatSize;
      if (obs !== env.observationSpace.flatSize)
        throw invalidArgument(field, `the policy observes ${obs} values, ${where} gives ${env.observationSpace.flatSize}`);
      const want = JSON.stringify(env.actionSpace.toJSON());
      const have = JSON.stringify(declared.actionSpace.toJSON());
      if (want !== have) throw invalidArgument(field, `the policy's action space is ${have}, ${where} needs ${want}`);
    }
    let actions: Int32Array | Float32Array;
    try {
      actions = await policy.act(resetEnv(env, entry.seed), 1, true, entry.seed);
    } catch (e) {
      throw invalidArgument(field, `the policy cannot act in ${where}: ${(e as Error).message}`);
    }
    if (actions.length !== env.actionSpace.flatSize)
      throw invalidArgument(field, `the policy gives ${actions.length} action values per row, ${where} needs ${env.actionSpace.flatSize}`);
  }
}

async function checkTextFit(entry: SuiteEntry, i: number, policy: TextPolicySource, field: string, where: string): Promise<void> {
  let prompt: string;
  try {
    prompt = makeTextEnv(entry.env.id, entry.env.options, `suite.entries[${i}].env.options`).reset(entry.seed, {
      difficulty: entry.level ?? 0,
    });
  } catch (e) {
    throw suiteError(e);
  }
  try {
    checkPromptFits(entry, policy, prompt, entry.seed);
  } catch (e) {
    throw invalidArgument(field, `${(e as Error).message}`);
  }
  try {
    await policy.complete([prompt], { greedy: true, seeds: [entry.seed], maxNewTokens: 1 });
  } catch (e) {
    throw invalidArgument(field, `the language model cannot complete the prompts of ${where}: ${(e as Error).message}`);
  }
}
