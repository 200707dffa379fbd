/** Command-line parsing: positionals plus `--key value` / `--key=value` / `--flag`. */
export class UsageError extends Error {}

export interface ParsedArgs {
  positionals: string[];
  options: Record<string, string>;
}

export function parseArgs(argv: readonly string[], flags: readonly string[] = []): ParsedArgs {
  const positionals: string[] = [];
  const options: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    if (eq > 0) {
      options[a.slice(2, eq)] = a.slice(eq + 1);
    } else if (flags.includes(a.slice(2)) || a === '--help') {
      options[a.slice(2)] = 'true';
    } else {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`option ${a} needs a value`);
      options[a.slice(2)] = v;
      i++;
    }
  }
  return { positionals, options };
}
