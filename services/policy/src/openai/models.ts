/**
 * Model ids of the endpoint: a run id serves the run's latest version, `run@latest` says so
 * explicitly, and `run@promoted` serves the version its promotion gate promoted last. The list is
 * every run whose published policy can chat (a causal LM with a tokenizer), read from the pointers
 * in the bus's KV store.
 */
import { type Bus, keys, parsePolicyPointer, RUN_ID_PATTERN } from '@rlmesh/mesh';
import type { PolicyChannelName } from '../core';
import { modelNotFound } from './errors';

export interface ModelRef {
  runId: string;
  channel: PolicyChannelName;
}

export interface ModelObject {
  id: string;
  object: 'model';
  /** Pointers carry no time, so 0: unknown. */
  created: number;
  owned_by: string;
}

/** Runs listed at most, so that a bus holding every run ever trained answers quickly. */
const MAX_LISTED = 1000;
const OWNER = 'rlmesh';

export function parseModelId(model: string): ModelRef {
  const at = model.lastIndexOf('@');
  const runId = at < 0 ? model : model.slice(0, at);
  const channel = at < 0 ? 'latest' : model.slice(at + 1);
  if (channel !== 'latest' && channel !== 'promoted')
    throw modelNotFound(model, `a model id is a run id, optionally followed by @latest or @promoted, not @${channel}`);
  if (!RUN_ID_PATTERN.test(runId)) throw modelNotFound(model, `a run id matches ${RUN_ID_PATTERN}`);
  return { runId, channel };
}

export function modelObject(id: string): ModelObject {
  return { id, object: 'model', created: 0, owned_by: OWNER };
}

/** The chat-capable models on the bus: `run` for each run's latest version, `run@promoted` where one is promoted. */
export async function listModels(bus: Bus): Promise<ModelObject[]> {
  const out: ModelObject[] = [];
  for (const [prefix, suffix] of [
    [keys.policy(''), ''],
    [keys.promoted(''), '@promoted'],
  ] as const) {
    const names = (await bus.kv.keys(prefix)).slice(0, MAX_LISTED).sort();
    for (const key of names) {
      const runId = key.slice(prefix.length);
      if (RUN_ID_PATTERN.test(runId) && (await canChat(bus, key))) out.push(modelObject(`${runId}${suffix}`));
    }
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

async function canChat(bus: Bus, key: string): Promise<boolean> {
  const bytes = await bus.kv.get(key);
  if (!bytes) return false;
  try {
    const p = parsePolicyPointer(bytes);
    return Boolean(p.modelConfig && p.tokenizer);
  } catch {
    return false;
  }
}
