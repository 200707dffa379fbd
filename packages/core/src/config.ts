/**
 * A small schema validator for run configs. Every error names the dotted key and the rule, e.g.
 * `algo.lr: must be a number > 0, got "fast"`, so a bad YAML file or --key override is fixed at once.
 */

export type Field =
  | { kind: 'number'; default?: number; min?: number; max?: number; exclusiveMin?: boolean; doc?: string }
  | { kind: 'int'; default?: number; min?: number; max?: number; doc?: string }
  | { kind: 'string'; default?: string; oneOf?: readonly string[]; doc?: string }
  | { kind: 'bool'; default?: boolean; doc?: string }
  | { kind: 'numberRecord'; default?: Record<string, number>; doc?: string }
  | { kind: 'section'; fields: Schema; doc?: string }
  /** A mapping whose keys another schema checks later (an env's options, a model's or algorithm's section). */
  | { kind: 'open'; doc?: string };

export type Schema = Record<string, Field>;

/** The validated value of a field: what `validate` returns for it, with defaults filled in. */
export type InferField<F> = F extends { kind: 'number' | 'int' }
  ? number
  : F extends { kind: 'string'; oneOf: readonly (infer U)[] }
    ? U
    : F extends { kind: 'string' }
      ? string
      : F extends { kind: 'bool' }
        ? boolean
        : F extends { kind: 'numberRecord' }
          ? Record<string, number>
          : F extends { kind: 'section'; fields: infer S }
            ? Infer<S>
            : F extends { kind: 'open' }
              ? Record<string, unknown>
              : never;

/** The config type a schema describes: declare schemas `as const satisfies Schema` and derive types with this. */
export type Infer<S> = { -readonly [K in keyof S]: InferField<S[K]> };

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly rule: string,
  ) {
    super(`${key}: ${rule}`);
    this.name = 'ConfigError';
  }
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'nothing' : JSON.stringify(v));

/** YAML 1.2 reads `1e-3` as a number but `1e-3` written as a string stays one; accept numeric strings. */
function asNumber(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return null;
}

function checkField(key: string, f: Field, v: unknown): unknown {
  switch (f.kind) {
    case 'number':
    case 'int': {
      const n = asNumber(v);
      const what = f.kind === 'int' ? 'an integer' : 'a number';
      const range = [
        f.min !== undefined ? `${f.kind === 'number' && f.exclusiveMin ? '>' : '>='} ${f.min}` : '',
        f.max !== undefined ? `<= ${f.max}` : '',
      ]
        .filter(Boolean)
        .join(' and ');
      const rule = `must be ${what}${range ? ` ${range}` : ''}, got ${show(v)}`;
      if (n === null || !Number.isFinite(n)) throw new ConfigError(key, rule);
      if (f.kind === 'int' && !Number.isInteger(n)) throw new ConfigError(key, rule);
      if (f.min !== undefined && (n < f.min || (f.kind === 'number' && f.exclusiveMin && n === f.min))) throw new ConfigError(key, rule);
      if (f.max !== undefined && n > f.max) throw new ConfigError(key, rule);
      return n;
    }
    case 'string':
      if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(key, `must be a string, got ${show(v)}`);
      if (f.oneOf && !f.oneOf.includes(String(v))) throw new ConfigError(key, `must be one of ${f.oneOf.join(', ')}, got ${show(v)}`);
      return String(v);
    case 'bool':
      if (v === true || v === 'true') return true;
      if (v === false || v === 'false') return false;
      throw new ConfigError(key, `must be true or false, got ${show(v)}`);
    case 'numberRecord': {
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw new ConfigError(key, `must be a mapping of names to numbers, got ${show(v)}`);
      const out: Record<string, number> = {};
      for (const [k, x] of Object.entries(v)) {
        const n = asNumber(x);
        if (n === null) throw new ConfigError(`${key}.${k}`, `must be a number, got ${show(x)}`);
        out[k] = n;
      }
      return out;
    }
    case 'section':
      return validate(f.fields, v, key);
    case 'open':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(key, `must be a mapping, got ${show(v)}`);
      return structuredClone(v);
  }
}

/** Validates `value` against `schema`, filling defaults; throws ConfigError on the first problem. */
export function validate<S extends Schema>(schema: S, value: unknown, prefix = ''): Infer<S> {
  const at = (k: string) => (prefix ? `${prefix}.${k}` : k);
  const obj = value === undefined || value === null ? {} : value;
  if (typeof obj !== 'object' || Array.isArray(obj)) throw new ConfigError(prefix || '(root)', `must be a mapping, got ${show(value)}`);
  const input = obj as Record<string, unknown>;
  for (const k of Object.keys(input)) {
    if (!(k in schema)) throw new ConfigError(at(k), `unknown key (known keys here: ${Object.keys(schema).join(', ')})`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(schema)) {
    const v = input[k];
    if (v === undefined || v === null) {
      if (f.kind === 'section') out[k] = validate(f.fields, {}, at(k));
      else if (f.kind === 'open') out[k] = {};
      else if (f.default !== undefined) out[k] = structuredClone(f.default);
      else throw new ConfigError(at(k), 'is required');
    } else {
      out[k] = checkField(at(k), f, v);
    }
  }
  return out as Infer<S>;
}

/**
 * Applies `--a.b.c value` style overrides onto a parsed config object (before validation). Values are
 * parsed as JSON when they look like JSON (numbers, true/false, {..}), otherwise kept as strings.
 */
export function applyOverrides(config: Record<string, unknown>, overrides: Record<string, string>): Record<string, unknown> {
  const out = structuredClone(config);
  for (const [path, raw] of Object.entries(overrides)) {
    const parts = path.split('.');
    let node: Record<string, unknown> = out;
    for (const p of parts.slice(0, -1)) {
      const next = node[p];
      if (next === undefined || next === null) node[p] = {};
      else if (typeof next !== 'object' || Array.isArray(next))
        throw new ConfigError(path, `cannot set a key inside ${p}, which is not a mapping`);
      node = node[p] as Record<string, unknown>;
    }
    let v: unknown = raw;
    try {
      v = JSON.parse(raw);
    } catch {
      // keep as a string
    }
    node[parts[parts.length - 1]] = v;
  }
  return out;
}
