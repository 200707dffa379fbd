/**
 * Config text (YAML or JSON) from a file or a client, parsed with bounds. A YAML parser's time and
 * memory grow far beyond the text's size on some inputs: a few KB of nested `[` overflow its
 * recursion (and can take the whole process down), and aliases can expand exponentially. So the text
 * is bounded in bytes, flow nesting and aliases before and while it is parsed.
 */
import { parse } from 'yaml';
import { ConfigError } from './config';

export interface ConfigTextLimits {
  /** Default 256 KiB: configs and suites are a few KB. */
  maxBytes?: number;
  /** Deepest `[` / `{` nesting allowed (default 64). */
  maxFlowDepth?: number;
  /** Most alias (`*name`) expansions (default 100, the yaml package's own default). */
  maxAliases?: number;
}

export const DEFAULT_CONFIG_TEXT_LIMITS = { maxBytes: 256 * 1024, maxFlowDepth: 64, maxAliases: 100 } as const;

/** The deepest nesting of flow collections, skipping quoted strings and comments. */
function flowDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      const end = text.indexOf('\n', i);
      if (end < 0) break;
      i = end;
    } else if (c === '"' || (c === "'" && (i === 0 || /[\s[{,:]/.test(text[i - 1])))) quote = c;
    else if (c === '[' || c === '{') deepest = Math.max(deepest, ++depth);
    else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return deepest;
}

/**
 * Parses `text` as YAML (JSON is YAML). Errors are ConfigError naming `field`. An empty document is
 * `null`; what the value must look like is the caller's schema's business.
 */
export function parseConfigText(text: string, field: string, limits: ConfigTextLimits = {}): unknown {
  const { maxBytes, maxFlowDepth, maxAliases } = { ...DEFAULT_CONFIG_TEXT_LIMITS, ...limits };
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) throw new ConfigError(field, `must be at most ${maxBytes} bytes, got ${bytes}`);
  const depth = flowDepth(text);
  if (depth > maxFlowDepth) throw new ConfigError(field, `nests [ ] / { } ${depth} deep; at most ${maxFlowDepth} allowed`);
  try {
    return parse(text, { maxAliasCount: maxAliases, prettyErrors: false });
  } catch (e) {
    throw new ConfigError(field, `is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}
