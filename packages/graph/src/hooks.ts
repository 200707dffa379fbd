/**
 * Named hook points, after TransformerLens. A layer marks an intermediate value with
 * `hookPoint('hook_z', v)`; a caller inside `hookScope('blocks.0', ...)` gives it the full name
 * `blocks.0.hook_z`. Marking adds nothing to the graph: outside `recordHooks` it returns `v` as it
 * is, so a program traced without recording has exactly the nodes it had before it was hooked (the
 * served act program does not change). Inside `recordHooks`, every marked value is collected by
 * full name (a capture program outputs the ones asked for), and a value may be replaced (an SAE
 * spliced in at its hook point).
 */
import type { Value } from './graph';

/** A marked value, and the view it is read in (e.g. heads split out), applied only when asked for. */
export interface HookValue {
  value: Value;
  read(): Value;
}

export interface HookRecording<T> {
  result: T;
  hooks: Map<string, HookValue>;
}

interface Recorder {
  hooks: Map<string, HookValue>;
  prefix: string[];
  replace: ReadonlyMap<string, (v: Value) => Value>;
}

let recorder: Recorder | null = null;

/**
 * Marks `v` under `name` (joined to the enclosing scopes). Returns `v`, or its replacement when the
 * recording replaces this hook. `view` reshapes what a reader sees (called only when read).
 */
export function hookPoint(name: string, v: Value, view?: (v: Value) => Value): Value {
  if (!recorder) return v;
  const full = [...recorder.prefix, name].join('.');
  if (recorder.hooks.has(full)) throw new Error(`hook ${full} was marked twice in one trace`);
  const out = recorder.replace.get(full)?.(v) ?? v;
  recorder.hooks.set(full, { value: v, read: () => (view ? view(v) : v) });
  return out;
}

/** Runs `fn` with `name` prepended to the hooks it marks (TransformerLens's `blocks.0`, `attn`). */
export function hookScope<T>(name: string, fn: () => T): T {
  if (!recorder) return fn();
  recorder.prefix.push(name);
  try {
    return fn();
  } finally {
    recorder.prefix.pop();
  }
}

/**
 * Traces `fn` collecting every hook it marks. `replace` maps hook names to functions whose result
 * the model uses instead of the hooked value; a name that is never marked is an error, so a typo
 * does not silently leave the model unchanged.
 */
export function recordHooks<T>(fn: () => T, replace: ReadonlyMap<string, (v: Value) => Value> = new Map()): HookRecording<T> {
  if (recorder) throw new Error('recordHooks: already recording (hook recordings do not nest)');
  const rec: Recorder = { hooks: new Map(), prefix: [], replace };
  recorder = rec;
  let result: T;
  try {
    result = fn();
  } finally {
    recorder = null;
  }
  const missing = [...replace.keys()].filter((n) => !rec.hooks.has(n));
  if (missing.length > 0) throw unknownHooks(missing, rec.hooks);
  return { result, hooks: rec.hooks };
}

export function unknownHooks(names: readonly string[], known: ReadonlyMap<string, unknown>): Error {
  return new Error(`unknown hook ${names.map((n) => JSON.stringify(n)).join(', ')}; this model's hooks: ${[...known.keys()].join(', ')}`);
}
