/**
 * Scores cached by content: the key is the sha256 of the canonical JSON of the window's input and
 * the judge's id, so the same window judged by the same judge (model and prompt) is paid for once,
 * and any change to either is a new key. The store is a two-method interface so that a database
 * table can hold it as well as this in-memory map.
 */
import { createHash } from 'node:crypto';
import { readScores } from './answer';
import { checkInput, type Judge, type JudgeInput, type JudgeResult, noUsage } from './types';

/** A window's scores as stored; field names match the archive's judge_scores rows. */
export interface CachedScores {
  judgeId: string;
  scores: { trajectoryId: string; score: number; explanation?: string }[];
  /** What the original call cost; a cache hit costs nothing. */
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

/** Where scores are kept: this map, or a table (the archive's judge_scores, through its getScore / putScore). */
export interface ScoreCache {
  get(hash: string): Promise<CachedScores | undefined>;
  put(hash: string, scores: CachedScores): Promise<void>;
}

export class MemoryScoreCache implements ScoreCache {
  private readonly map = new Map<string, CachedScores>();
  async get(hash: string): Promise<CachedScores | undefined> {
    const v = this.map.get(hash);
    return v && structuredClone(v);
  }
  async put(hash: string, scores: CachedScores): Promise<void> {
    this.map.set(hash, structuredClone(scores));
  }
  get size(): number {
    return this.map.size;
  }
}

/** JSON with object keys sorted at every level; a non-finite number is an error, not a silent null. */
export function canonicalJson(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) throw new TypeError(`canonicalJson: ${v} has no JSON form`);
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (v && typeof v === 'object') {
    const obj = v as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The cache key of a window judged by a judge. */
export function scoreHash(judgeId: string, input: JudgeInput): string {
  return createHash('sha256')
    .update(canonicalJson({ judge: judgeId, input }))
    .digest('hex');
}

/** A judge that asks its cache first and stores what its inner judge scored (never a skip). Hits cost nothing: attempts 0, no usage. */
export class CachedJudge implements Judge {
  readonly id: string;

  constructor(
    private readonly inner: Judge,
    private readonly cache: ScoreCache,
  ) {
    this.id = inner.id;
  }

  async score(input: JudgeInput): Promise<JudgeResult> {
    checkInput(input);
    const hash = scoreHash(this.id, input);
    const hit = await this.cache.get(hash);
    // A stored entry that no longer fits the window (a hand-edited table, a hash collision) is a miss.
    const read =
      hit &&
      readScores(
        hit.scores,
        input.trajectories.map((t) => t.id),
      );
    if (read?.ok)
      return {
        kind: 'scored',
        windowId: input.windowId,
        judgeId: this.id,
        scores: read.scores,
        usage: noUsage(),
        attempts: 0,
        cached: true,
      };
    const result = await this.inner.score(input);
    if (result.kind === 'scored') {
      const { usage } = result;
      await this.cache.put(hash, {
        judgeId: this.id,
        scores: result.scores.map(({ id, ...rest }) => ({ trajectoryId: id, ...rest })),
        promptTokens: usage.promptTokens,
        completionTokens: usage.completionTokens,
        costUsd: usage.costUsd,
      });
    }
    return result;
  }
}
