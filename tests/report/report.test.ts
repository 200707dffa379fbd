/// <reference lib="dom" />
// The functions given to page.evaluate run in the browser, on its DOM.
/**
 * `rlmesh report` in real headless Chromium: the page made from a real short training run and real
 * evaluations of two of its checkpoints (`rlmesh eval` on the shipped PatternEcho suite) draws every
 * chart with its data (points counted on Chart.js's own instances, and pixels in the datasets'
 * colours on the canvases), opens from a file with no network, and highlights the frontier the
 * evaluator's rule gives. Hand-built evaluations with a known frontier check the plot's axes.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '@rlmesh/cli';
import { paretoFrontier } from '@rlmesh/evaluator';
import { trainEmbedded } from '@rlmesh/learner';
import { readEvaluationDir } from '@rlmesh/report';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, chartStates, HAVE_CHROMIUM, openBrowser, requireChromium, screenshot } from './browser';
import { EVALUATIONS, patternEchoConfig } from './fixtures';

requireChromium();
const UPDATES = 24;
const SUITE = join(__dirname, '..', '..', 'configs', 'suites', 'pattern-echo.yaml');

/** Runs the CLI in this process, returning its exit code and what it printed to stderr. */
async function cli(argv: string[]): Promise<{ code: number; errors: string[] }> {
  const errors: string[] = [];
  const [error, log] = [console.error, console.log];
  console.error = (l: string) => errors.push(String(l));
  console.log = () => {};
  try {
    return { code: await main(argv), errors };
  } finally {
    [console.error, console.log] = [error, log];
  }
}

async function open(page: Page, file: string): Promise<string[]> {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`file://${file}`);
  await page.waitForSelector('body[data-ready="true"]');
  return errors;
}

/** The evaluation ids a chart's dataset holds (the frontier plot's points carry them). */
const pointIds = (page: Page, chart: string, dataset: number) =>
  page.evaluate(
    ([c, d]) => {
      const w = window as unknown as { Chart: { getChart(id: string): { data: { datasets: { data: { id: string }[] }[] } } } };
      return w.Chart.getChart(c as string).data.datasets[d as number].data.map((p) => p.id);
    },
    [chart, dataset],
  );

describe.skipIf(!HAVE_CHROMIUM && process.env.CI !== 'true')('report in Chromium', () => {
  let dir: string;
  let runDir: string;
  let browser: Browser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-report-'));
    const cfg = patternEchoConfig(dir, 64 * UPDATES);
    cfg.train.checkpoint_every = 4;
    runDir = (await trainEmbedded(cfg)).run_dir;
    for (const [checkpoint, label] of [
      ['checkpoints/update-000004.safetensors', 'update 4'],
      ['model.safetensors', 'final'],
    ])
      expect((await cli(['eval', SUITE, '--checkpoint', join(runDir, checkpoint), '--label', label])).code).toBe(0);
    browser = await openBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('draws the run curves, interval bars and frontier of real evaluations, offline', async () => {
    const out = join(dir, 'report.html');
    expect((await cli(['report', runDir, '--out', out])).code).toBe(0);
    expect(readFileSync(out, 'utf8')).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
    const { page } = browser;
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    expect(await open(page, out)).toEqual([]);
    expect(requests).toEqual([`file://${out}`]);

    const charts = await chartStates(page);
    const byId = new Map(charts.map((c) => [c.id, c]));
    // Every logged quantity has a curve with one point per update, and its line is on the canvas.
    const metrics = JSON.parse(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').split('\n')[0]).metrics as Record<string, number>;
    const curves = charts.filter((c) => c.id.startsWith('curve-'));
    const titles = await page.$$eval('#curves h3', (hs) => hs.map((h) => h.textContent));
    expect(titles).toEqual(expect.arrayContaining(['return_mean', 'success', 'entropy', 'loss', 'reward', 'grad_norm']));
    const loss = byId.get('curve-metrics:loss');
    expect(loss?.points).toEqual(
      Object.keys(metrics)
        .filter((k) => k.startsWith('loss'))
        .map(() => UPDATES),
    );
    for (const c of curves) {
      expect(
        c.points.every((n) => n === UPDATES),
        c.id,
      ).toBe(true);
      expect(c.dataInk, c.id).toBeGreaterThan(100);
    }

    // Interval bars: per evaluation an interval and a rate mark over the suite's 2 entries.
    const results = readEvaluationDir(join(runDir, 'evaluations'));
    expect(results.map((r) => r.policy.label).sort()).toEqual(['final', 'update 4']);
    const bars = byId.get('intervals');
    expect(bars?.type).toBe('bar');
    expect(bars?.points).toEqual([2, 2, 2, 2]);
    expect(bars?.dataInk).toBeGreaterThan(1000);
    const labels = await page.evaluate(() => {
      const w = window as unknown as { Chart: { getChart(id: string): { data: { labels: string[] } } } };
      return w.Chart.getChart('intervals').data.labels;
    });
    expect(labels).toEqual(['single-step [ID]', 'eight-steps [ID]']);

    // One split, two environments: the frontier is drawn on the two environments, and its
    // highlighted points are exactly the evaluator's frontier.
    expect([await page.inputValue('#frontier-x'), await page.inputValue('#frontier-y')]).toEqual(['env:single-step', 'env:eight-steps']);
    const frontier = paretoFrontier(results).map((r) => r.id);
    expect(frontier).toContain(results.find((r) => r.policy.label === 'final')?.id);
    expect((await pointIds(page, 'frontier', 0)).sort()).toEqual([...frontier].sort());
    expect(byId.get('frontier')?.points).toEqual([frontier.length, results.length - frontier.length]);
    expect(byId.get('frontier')?.dataInk).toBeGreaterThan(100);
    await screenshot(page, 'report.png');
  });

  it('draws evaluation files alone, the frontier on ID against OOD, and any two chosen axes', async () => {
    const files = Object.values(EVALUATIONS).map((e) => {
      const f = join(dir, `${e.id}.json`);
      writeFileSync(f, JSON.stringify(e));
      return f;
    });
    const out = join(dir, 'evals.html');
    expect((await cli(['report', ...files, '--out', out])).code).toBe(0);
    const { page } = browser;
    expect(await open(page, out)).toEqual([]);
    const charts = await chartStates(page);
    expect(charts.map((c) => c.id)).toEqual(['intervals', 'frontier']);
    expect(charts.every((c) => c.dataInk > 100)).toBe(true);
    expect(charts[0].points).toEqual([3, 3, 3, 3, 3, 3]);
    // good and ood-specialist each beat the other somewhere; initial is beaten everywhere.
    expect([await page.inputValue('#frontier-x'), await page.inputValue('#frontier-y')]).toEqual(['split:ID', 'split:OOD']);
    expect((await pointIds(page, 'frontier', 0)).sort()).toEqual(['eval-good', 'eval-ood-specialist']);
    expect(await pointIds(page, 'frontier', 1)).toEqual(['eval-initial']);
    await screenshot(page, 'report-evaluations.png');
    // Other axes: the same membership (dominance is over every environment), drawn on two environments.
    await page.selectOption('#frontier-x', 'env:echo-8');
    await page.selectOption('#frontier-y', 'env:next');
    expect((await chartStates(page)).find((c) => c.id === 'frontier')?.points).toEqual([2, 1]);
  });

  it('refuses a bad evaluation file in one line with exit 2', async () => {
    const bad = join(dir, 'bad.json');
    const env = { ...EVALUATIONS.good.environments[0], interval: { low: 0.9, high: 0.2, level: 0.8 } };
    writeFileSync(bad, JSON.stringify({ ...EVALUATIONS.good, environments: [env] }));
    expect(await cli(['report', bad, '--out', join(dir, 'x.html')])).toEqual({
      code: 2,
      errors: [`rlmesh: report: ${bad}: environments[0].interval: low must be <= high`],
    });
    expect(await cli(['report', '--out', join(dir, 'x.html')])).toEqual({
      code: 2,
      errors: ['rlmesh: report needs a run directory or evaluation JSON files'],
    });
  });
});
