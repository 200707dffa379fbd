/**
 * `rlmesh analyze <sub>`: analyses of trained policies and their SAEs. Each sub-command lives in
 * its own module (analyze-<sub>.ts), loaded when called; this file only dispatches.
 */

import { ANALYZE_CIRCUITS_USAGE } from './analyze-circuits';
import { ANALYZE_FEATURES_USAGE } from './analyze-features';
import { UsageError } from './args';

export const ANALYZE_USAGE = `${ANALYZE_FEATURES_USAGE}
  ${ANALYZE_CIRCUITS_USAGE}`;

export async function analyzeCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'features':
      return (await import('./analyze-features')).analyzeFeatures(rest);
    case 'circuits':
      return (await import('./analyze-circuits')).analyzeCircuits(rest);
    default:
      throw new UsageError(`analyze needs a sub-command (features, circuits), got ${JSON.stringify(sub ?? '')}\n${ANALYZE_USAGE}`);
  }
}
