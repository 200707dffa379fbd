/**
 * Where evaluation results live, behind one interface with two implementations that pass the same
 * contract test:
 *   - BusEvaluationStore (the mesh): KV key `evaluation.<id>` holds a small summary (what a listing
 *     shows, readable without fetching the result) and object `evaluations/<id>.json` the full
 *     EvaluationResult JSON. The object is written before the key, so a listed id can always be read.
 *   - FileEvaluationStore (embedded): one file `<dir>/<id>.json` per result, normally
 *     `<run_dir>/evaluations/`.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Aggregate, EvaluationResult, PolicyRef } from '@rlmesh/core';
import { type Bus, decodeJson, encodeJson } from '@rlmesh/mesh';

/** Safe as a KV key token, an object name part and a file name. */
export const EVALUATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export const evaluationKeys = {
  summary: (id: string) => `evaluation.${id}`,
  summaries: 'evaluation.',
};
export const evaluationObjects = {
  result: (id: string) => `evaluations/${id}.json`,
};

/** What a listing shows of one evaluation. */
export interface EvaluationSummary {
  id: string;
  suite: string;
  policy: PolicyRef;
  mode: EvaluationResult['mode'];
  created_at: string;
  all: Aggregate;
  episodes: number;
}

export interface EvaluationFilter {
  run_id?: string;
  suite?: string;
}

export interface EvaluationStore {
  /** Stores (or replaces) the result under its id. */
  put(result: EvaluationResult): Promise<void>;
  /** null when no result has this id. */
  get(id: string): Promise<EvaluationResult | null>;
  /** Summaries of the stored results that match every given filter field, oldest first. */
  list(filter?: EvaluationFilter): Promise<EvaluationSummary[]>;
}

export function summarizeEvaluation(r: EvaluationResult): EvaluationSummary {
  return {
    id: r.id,
    suite: r.suite,
    policy: r.policy,
    mode: r.mode,
    created_at: r.created_at,
    all: r.aggregate.all,
    episodes: r.environments.reduce((n, e) => n + e.episodes, 0),
  };
}

export function checkEvaluationId(id: string): void {
  if (!EVALUATION_ID_PATTERN.test(id)) throw new Error(`evaluation id must match ${EVALUATION_ID_PATTERN}, got ${JSON.stringify(id)}`);
}

function matches(s: EvaluationSummary, f: EvaluationFilter): boolean {
  return (!f.run_id || s.policy.run_id === f.run_id) && (!f.suite || s.suite === f.suite);
}

/** Oldest first; ids break ties so that the order is the same on every call. */
function chronological(a: EvaluationSummary, b: EvaluationSummary): number {
  return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export class BusEvaluationStore implements EvaluationStore {
  constructor(private readonly bus: Bus) {}

  async put(result: EvaluationResult): Promise<void> {
    checkEvaluationId(result.id);
    await this.bus.objects.put(evaluationObjects.result(result.id), encodeJson(result));
    await this.bus.kv.put(evaluationKeys.summary(result.id), encodeJson(summarizeEvaluation(result)));
  }

  async get(id: string): Promise<EvaluationResult | null> {
    if (!EVALUATION_ID_PATTERN.test(id)) return null;
    const bytes = await this.bus.objects.get(evaluationObjects.result(id));
    return bytes ? decodeJson<EvaluationResult>(bytes) : null;
  }

  async list(filter: EvaluationFilter = {}): Promise<EvaluationSummary[]> {
    const out: EvaluationSummary[] = [];
    for (const key of await this.bus.kv.keys(evaluationKeys.summaries)) {
      const bytes = await this.bus.kv.get(key);
      if (!bytes) continue; // deleted between the listing and the read
      const s = decodeJson<EvaluationSummary>(bytes);
      if (matches(s, filter)) out.push(s);
    }
    return out.sort(chronological);
  }
}

export class FileEvaluationStore implements EvaluationStore {
  constructor(readonly dir: string) {}

  async put(result: EvaluationResult): Promise<void> {
    checkEvaluationId(result.id);
    mkdirSync(this.dir, { recursive: true });
    // Write then rename: a reader never sees half a file.
    const path = join(this.dir, `${result.id}.json`);
    writeFileSync(`${path}.tmp`, `${JSON.stringify(result, null, 2)}\n`);
    renameSync(`${path}.tmp`, path);
  }

  async get(id: string): Promise<EvaluationResult | null> {
    if (!EVALUATION_ID_PATTERN.test(id)) return null;
    try {
      return JSON.parse(readFileSync(join(this.dir, `${id}.json`), 'utf8')) as EvaluationResult;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async list(filter: EvaluationFilter = {}): Promise<EvaluationSummary[]> {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: EvaluationSummary[] = [];
    for (const name of names) {
      if (!name.endsWith('.json') || !EVALUATION_ID_PATTERN.test(name.slice(0, -5))) continue;
      const r = await this.get(name.slice(0, -5));
      if (r && matches(summarizeEvaluation(r), filter)) out.push(summarizeEvaluation(r));
    }
    return out.sort(chronological);
  }
}
