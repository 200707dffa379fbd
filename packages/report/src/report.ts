/**
 * `rlmesh report`: one self-contained HTML page from run directories and evaluation JSON files.
 * A run directory brings its curves and the evaluations stored in it.
 */
import { existsSync, statSync } from 'node:fs';
import { ConfigError, type EvaluationResult } from '@rlmesh/core';
import { type RunData, readEvaluationFile, readRunDir } from './data';
import { type PageData, renderPage } from './page';
import { evaluationsView, runView } from './view';

export function reportData(inputs: readonly string[], title?: string): PageData {
  if (inputs.length === 0) throw new ConfigError('inputs', 'give a run directory or evaluation JSON files');
  const runs: RunData[] = [];
  const results = new Map<string, EvaluationResult>();
  for (const input of inputs) {
    if (!existsSync(input)) throw new ConfigError(input, 'no such file or directory');
    if (statSync(input).isDirectory()) {
      const { run, evaluations } = readRunDir(input);
      runs.push(run);
      for (const e of evaluations) results.set(e.id, e);
    } else if (input.endsWith('.json')) {
      const e = readEvaluationFile(input);
      results.set(e.id, e);
    } else throw new ConfigError(input, 'must be a run directory or an evaluation .json file');
  }
  return {
    title: title ?? `rlmesh report: ${[...runs.map((r) => r.name), ...(results.size ? [`${results.size} evaluation(s)`] : [])].join(', ')}`,
    live: false,
    runs: runs.map(runView),
    evaluations: evaluationsView([...results.values()]),
    generated_at: new Date().toISOString(),
  };
}

export function renderReport(inputs: readonly string[], title?: string): string {
  return renderPage(reportData(inputs, title));
}
