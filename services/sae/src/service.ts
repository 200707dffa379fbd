/**
 * The SAE service without its transport: Train (an activation store under the service's root ->
 * a stored SAE), Get, List, Encode (activations -> each row's largest codes) and Explain (each row's
 * top features with their analysis). SAEs live under <root>/saes/<id>/ in SAELens's layout
 * (cfg.json, sae_weights.safetensors) beside rlmesh_sae.json (metrics, provenance) and, when the
 * store had context, analysis.json. Every bad request is a MeshError naming the request field.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { status } from '@grpc/grpc-js';
import { ConfigError } from '@rlmesh/core';
import { type Bus, HOOK_SUBJECT_PATTERN, invalidArgument, MeshError, notFound, RUN_ID_PATTERN } from '@rlmesh/mesh';
import { type ActivationStore, readActivationStore, StoreError } from './activation-store';
import { type FollowedSae, type FollowOptions, trainFromStream } from './activation-stream';
import { loadSaeLens, SaeModel, saveSaeLens } from './saelens';
import { type FeatureAnalysis, type TrainedSae, trainOnStore } from './train-store';
import type { SaeStepMetrics } from './training';

export const SAE_RECORD_FILE = 'rlmesh_sae.json';
export const ANALYSIS_FILE = 'analysis.json';
const SAE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A request's steps x batch is bounded so one call cannot hold the service for hours. */
export const MAX_STEPS = 1_000_000;
export const MAX_BATCH = 65_536;

export interface SaeRecord {
  id: string;
  hook: string;
  activations: string;
  created_at: string;
  steps: number;
  batch_size: number;
  metrics: TrainedSae['metrics'];
  analysed: boolean;
}

export interface SaeInfo extends SaeRecord {
  /** cfg.json as stored. */
  config: Record<string, unknown>;
  d_in: number;
  d_sae: number;
  architecture: string;
}

export interface TrainCall {
  /** Store directory or activations file, relative to the root. */
  activations: string;
  /** The SAE config (SAELens's keys); JSON text or a mapping. */
  config: string | Record<string, unknown>;
  steps?: number;
  batch_size?: number;
  id?: string;
  onProgress?(step: number, steps: number, m: SaeStepMetrics): void;
  signal?: AbortSignal;
}

export interface Rows {
  data: Float32Array;
  shape: number[];
}

export interface Code {
  indices: number[];
  values: number[];
}

export interface ExplainedFeature {
  index: number;
  value: number;
  label?: string;
  label_fraction?: number;
  density?: number;
  top_examples: { value: number; context: Record<string, unknown> }[];
}

/** A request's SAE config: JSON text (empty: {}) or a mapping; refused naming config_json. */
function requestConfig(raw: string | Record<string, unknown>): Record<string, unknown> {
  let config: unknown;
  try {
    config = typeof raw === 'string' ? (raw.trim() === '' ? {} : JSON.parse(raw)) : raw;
  } catch (e) {
    throw invalidArgument('config_json', `is not JSON: ${(e as Error).message}`);
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw invalidArgument('config_json', 'must be a JSON object');
  return config as Record<string, unknown>;
}

export function newSaeId(now = new Date()): string {
  return `sae-${now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}-${randomBytes(4).toString('hex')}`;
}

function checkId(field: string, id: string): void {
  if (!id) throw invalidArgument(field, 'is required');
  if (!SAE_ID.test(id)) throw invalidArgument(field, `must match ${SAE_ID}, got ${JSON.stringify(id)}`);
}

export class SaeServiceCore {
  /** Ids being trained now: a second Train under the same id is refused before it starts. */
  private readonly training = new Set<string>();
  private readonly models = new Map<string, Promise<{ model: SaeModel; analysis: FeatureAnalysis[] | null }>>();
  private readonly root: string;

  constructor(root: string) {
    this.root = realpathSync(root);
  }

  private get saesDir(): string {
    return join(this.root, 'saes');
  }

  /** A path named in a request, resolved under the root; nothing outside it (symlinks included). */
  private underRoot(field: string, path: string): string {
    if (!path) throw invalidArgument(field, 'is required (a path under the service root)');
    if (isAbsolute(path)) throw invalidArgument(field, `must be relative to the service root, got ${JSON.stringify(path)}`);
    const full = resolve(this.root, path);
    if (!existsSync(full)) throw notFound(field, `${JSON.stringify(path)} does not exist under the service root`);
    const rel = relative(this.root, realpathSync(full));
    if (rel.startsWith('..') || isAbsolute(rel)) throw invalidArgument(field, `${JSON.stringify(path)} leads outside the service root`);
    return full;
  }

  async train(call: TrainCall): Promise<SaeInfo> {
    const id = call.id || newSaeId();
    checkId('id', id);
    const dir = join(this.saesDir, id);
    if (existsSync(dir) || this.training.has(id))
      throw new MeshError(status.ALREADY_EXISTS, `id: an SAE ${JSON.stringify(id)} already exists`);
    this.training.add(id);
    try {
      return await this.trainAs(id, dir, call);
    } finally {
      this.training.delete(id);
    }
  }

  private async trainAs(id: string, dir: string, call: TrainCall): Promise<SaeInfo> {
    const steps = call.steps || 2000;
    const batchSize = call.batch_size || 1024;
    if (steps > MAX_STEPS) throw invalidArgument('steps', `must be at most ${MAX_STEPS}, got ${steps}`);
    if (batchSize > MAX_BATCH) throw invalidArgument('batch_size', `must be at most ${MAX_BATCH}, got ${batchSize}`);
    const config = requestConfig(call.config);
    let store: ActivationStore;
    try {
      store = await readActivationStore(this.underRoot('activations', call.activations));
    } catch (e) {
      throw e instanceof StoreError ? invalidArgument('activations', e.message) : e;
    }
    if (config.d_in !== undefined && config.d_in !== store.d)
      throw invalidArgument('config_json.d_in', `must match the activations' width ${store.d}, got ${JSON.stringify(config.d_in)}`);
    let trained: TrainedSae;
    try {
      trained = await trainOnStore(store, config, {
        steps,
        batchSize,
        signal: call.signal,
        onProgress: (s, m) => call.onProgress?.(s, steps, m),
      });
    } catch (e) {
      if (e instanceof ConfigError) throw invalidArgument(`config_json.${e.key}`, e.rule);
      throw e;
    }
    return this.save(id, dir, trained, { hook: store.metadata.hook ?? '', activations: call.activations, steps, batch_size: batchSize });
  }

  /**
   * Trains an SAE on the activation batches a run's learner publishes (activation-stream.ts) and
   * stores it as Train does; `activations` in its record names the subject it followed.
   */
  async follow(
    bus: Bus,
    call: Omit<FollowOptions, 'config'> & { id?: string; config: string | Record<string, unknown> },
  ): Promise<SaeInfo> {
    const id = call.id || newSaeId();
    checkId('id', id);
    const dir = join(this.saesDir, id);
    if (existsSync(dir) || this.training.has(id))
      throw new MeshError(status.ALREADY_EXISTS, `id: an SAE ${JSON.stringify(id)} already exists`);
    if (call.steps > MAX_STEPS) throw invalidArgument('steps', `must be at most ${MAX_STEPS}, got ${call.steps}`);
    if (call.batchSize > MAX_BATCH) throw invalidArgument('batch_size', `must be at most ${MAX_BATCH}, got ${call.batchSize}`);
    if (!RUN_ID_PATTERN.test(call.run)) throw invalidArgument('run_id', `must match ${RUN_ID_PATTERN}, got ${JSON.stringify(call.run)}`);
    if (!HOOK_SUBJECT_PATTERN.test(call.hook)) throw invalidArgument('hook', `must be a hook name, got ${JSON.stringify(call.hook)}`);
    const config = requestConfig(call.config);
    this.training.add(id);
    try {
      let trained: FollowedSae;
      try {
        trained = await trainFromStream(bus, { ...call, config });
      } catch (e) {
        if (e instanceof ConfigError) throw invalidArgument(`config_json.${e.key}`, e.rule);
        throw e;
      }
      return await this.save(id, dir, trained, {
        hook: call.hook,
        activations: `nats:${trained.stream.subject}`,
        steps: call.steps,
        batch_size: call.batchSize,
      });
    } finally {
      this.training.delete(id);
    }
  }

  private async save(
    id: string,
    dir: string,
    trained: TrainedSae,
    from: Pick<SaeRecord, 'hook' | 'activations' | 'steps' | 'batch_size'>,
  ): Promise<SaeInfo> {
    // Written beside, then renamed: a crash mid-write leaves no half SAE under its id.
    const tmp = join(this.saesDir, `.${id}.tmp`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await saveSaeLens(tmp, trained.weights);
    const record: SaeRecord = {
      id,
      ...from,
      created_at: new Date().toISOString(),
      metrics: trained.metrics,
      analysed: trained.analysis !== null,
    };
    await writeFile(join(tmp, SAE_RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`);
    if (trained.analysis) await writeFile(join(tmp, ANALYSIS_FILE), JSON.stringify(trained.analysis));
    await rename(tmp, dir);
    return this.get(id);
  }

  async get(id: string): Promise<SaeInfo> {
    checkId('id', id);
    const dir = join(this.saesDir, id);
    if (!existsSync(join(dir, SAE_RECORD_FILE))) throw notFound('id', `no SAE ${JSON.stringify(id)}`);
    const record = JSON.parse(await readFile(join(dir, SAE_RECORD_FILE), 'utf8')) as SaeRecord;
    // JSON has no -Infinity: the dead latents' bin comes back with lo null.
    for (const b of record.metrics.density) b.lo ??= Number.NEGATIVE_INFINITY;
    const config = JSON.parse(await readFile(join(dir, 'cfg.json'), 'utf8')) as Record<string, unknown>;
    return { ...record, config, d_in: config.d_in as number, d_sae: config.d_sae as number, architecture: config.architecture as string };
  }

  async list(): Promise<SaeInfo[]> {
    if (!existsSync(this.saesDir)) return [];
    const ids = (await readdir(this.saesDir)).filter((n) => SAE_ID.test(n) && existsSync(join(this.saesDir, n, SAE_RECORD_FILE)));
    return Promise.all(ids.sort().map((id) => this.get(id)));
  }

  private open(field: string, id: string) {
    checkId(field, id);
    let entry = this.models.get(id);
    if (!entry) {
      const dir = join(this.saesDir, id);
      if (!existsSync(join(dir, SAE_RECORD_FILE))) throw notFound(field, `no SAE ${JSON.stringify(id)}`);
      entry = (async () => {
        const model = await SaeModel.create(await loadSaeLens(dir), { intraOpThreads: 1 });
        const analysisPath = join(dir, ANALYSIS_FILE);
        const analysis = existsSync(analysisPath) ? (JSON.parse(await readFile(analysisPath, 'utf8')) as FeatureAnalysis[]) : null;
        return { model, analysis };
      })();
      entry.catch(() => this.models.delete(id));
      this.models.set(id, entry);
    }
    return entry;
  }

  /** Checks activations against the SAE: float32 [rows >= 1, d_in], every value finite. */
  private checkRows(rows: Rows, dIn: number): number {
    if (rows.shape.length !== 2) throw invalidArgument('activations', `must be [rows, d_in], got shape [${rows.shape}]`);
    const [n, d] = rows.shape;
    if (d !== dIn) throw invalidArgument('activations', `d_in must be ${dIn} (the SAE's), got ${d}`);
    if (n < 1) throw invalidArgument('activations', 'is empty: give at least one row');
    for (let i = 0; i < rows.data.length; i++)
      if (!Number.isFinite(rows.data[i]))
        throw invalidArgument('activations', `row ${Math.floor(i / d)} holds ${rows.data[i]} at column ${i % d}`);
    return n;
  }

  /** `topK` unset: 32, or every latent when the SAE has fewer. */
  async encode(saeId: string, rows: Rows, topK?: number): Promise<{ codes: Code[]; relative_error: number[] }> {
    const { model } = await this.open('sae_id', saeId);
    const { d_in, d_sae } = model.weights.cfg;
    const n = this.checkRows(rows, d_in);
    if (topK !== undefined && topK > d_sae) throw invalidArgument('top_k', `must be at most d_sae (${d_sae}), got ${topK}`);
    const k = topK ?? Math.min(32, d_sae);
    const { featureActs, saeOut } = await model.forward({ data: rows.data, rows: n });
    const codes: Code[] = [];
    const relative_error: number[] = [];
    for (let r = 0; r < n; r++) {
      codes.push(topCodes(featureActs.subarray(r * d_sae, (r + 1) * d_sae), k));
      let err = 0;
      let norm = 0;
      for (let j = 0; j < d_in; j++) {
        const x = rows.data[r * d_in + j];
        err += (x - saeOut[r * d_in + j]) ** 2;
        norm += x * x;
      }
      relative_error.push(norm > 0 ? err / norm : err);
    }
    return { codes, relative_error };
  }

  /** `topK` unset: 8, or every latent when the SAE has fewer. */
  async explain(saeId: string, rows: Rows, topK?: number): Promise<ExplainedFeature[][]> {
    const { model, analysis } = await this.open('sae_id', saeId);
    const { codes } = await this.encode(saeId, rows, topK ?? Math.min(8, model.weights.cfg.d_sae));
    return codes.map((c) =>
      c.indices.map((index, i) => {
        const a = analysis?.[index];
        return {
          index,
          value: c.values[i],
          ...(a ? { label: a.label, label_fraction: a.label_fraction, density: a.density } : {}),
          top_examples: a ? a.top.map((t) => ({ value: t.value, context: t.context })) : [],
        };
      }),
    );
  }

  async close(): Promise<void> {
    const entries = [...this.models.values()];
    this.models.clear();
    for (const e of entries) await (await e.catch(() => null))?.model.release();
  }
}

/** The k largest positive codes of one row, largest first. */
export function topCodes(row: ArrayLike<number>, k: number): Code {
  const idx: number[] = [];
  for (let j = 0; j < row.length; j++) if (row[j] > 0) idx.push(j);
  idx.sort((a, b) => row[b] - row[a] || a - b);
  const kept = idx.slice(0, k);
  return { indices: kept, values: kept.map((j) => row[j]) };
}
