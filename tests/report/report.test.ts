/// <reference lib="dom" />
// The functions given to page.evaluate run in the browser, on its DOM.
/**
 * `rlmesh report` in real headless Chromium: the page made from a real short training run and
 * evaluation results draws every chart with its data (points counted on Chart.js's own instances,
 * and pixels in the datasets' colours on the canvases), opens from a file with no network, and
 * highlights the frontier the evaluator's rule gives.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '@rlmesh/cli';
import { trainEmbedded } from '@rlmesh/learner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, chartStates, HAVE_CHROMIUM, openBrowser, requireChromium, screenshot } from './browser';
import { EVALUATIONS, patternEchoConfig, writeEvaluation } from './fixtures';

requireChromium();
const UPDATES = 24;

describe.skipIf(!HAVE_CHROMIUM && process.env.CI !== 'true')('report in Chromium', () => {
  let dir: string;
  let runDir: string;
  let browser: Browser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-report-'));
    const cfg = patternEchoConfig(dir, 64 * UPDATES);
    const summary = await trainEmbedded(cfg);
    runDir = summary.run_dir;
    for (const e of Object.values(EVALUATIONS)) writeEvaluation(runDir, e);
    browser = await openBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('draws the curves, the interval bars and the frontier with their data, offline', async () => {
    const out = join(dir, 'report.html');
    expect(await main(['report', runDir, '--out', out])).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
    const { page } = browser;
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`file://${out}`);
    await page.waitForSelector('body[data-ready="true"]');
    expect(errors).toEqual([]);
    expect(requests).toEqual([`file://${out}`]);

    const charts = await chartStates(page);
    const byId = new Map(charts.map((c) => [c.id, c]));
    // Every logged quantity has a curve with one point per update, and its line is on the canvas.
    const metrics = JSON.parse(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').split('\n')[0]).metrics as Record<string, number>;
    const curves = charts.filter((c) => c.id.startsWith('curve-'));
    const titles = await page.$$eval('#curves h3', (hs) => hs.map((h) => h.textContent));
    expect(titles).toEqual(expect.arrayContaining(['return_mean', 'success', 'entropy', 'loss', 'reward', 'grad_norm']));
    const series = await page.$$eval('#curves canvas', (cs) => cs.length);
    expect(series).toBe(curves.length);
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

    // Interval bars: per evaluation an interval and a rate marker over the 3 environments.
    const bars = byId.get('intervals');
    expect(bars?.type).toBe('bar');
    expect(bars?.points).toEqual([3, 3, 3, 3, 3, 3]);
    expect(bars?.dataInk).toBeGreaterThan(1000);
    const labels = await page.evaluate(() => {
      const w = window as unknown as { Chart: { getChart(id: string): { data: { labels: string[] } } } };
      return w.Chart.getChart('intervals').data.labels;
    });
    expect(labels).toEqual(['echo-8 [ID]', 'next [ID]', 'echo-16 [OOD]']);

    // Frontier: ID against OOD by default; good and ood-specialist on it, initial dominated.
    const frontier = byId.get('frontier');
    expect(frontier?.points).toEqual([2, 1]);
    expect(frontier?.dataInk).toBeGreaterThan(100);
    expect(await page.inputValue('#frontier-x')).toBe('split:ID');
    expect(await page.inputValue('#frontier-y')).toBe('split:OOD');
    const onFrontier = await page.evaluate(() => {
      const w = window as unknown as { Chart: { getChart(id: string): { data: { datasets: { data: { id: string }[] }[] } } } };
      return w.Chart.getChart('frontier').data.datasets[0].data.map((p) => p.id);
    });
    expect(onFrontier.sort()).toEqual(['eval-good', 'eval-ood-specialist']);
    await screenshot(page, 'report.png');

    // Another pair of axes: the same frontier membership, drawn on two environments.
    await page.selectOption('#frontier-x', 'env:echo-8');
    await page.selectOption('#frontier-y', 'env:next');
    expect((await chartStates(page)).find((c) => c.id === 'frontier')?.points).toEqual([2, 1]);
  });

  it('reports evaluation files alone, and a bad one in one line with exit 2', async () => {
    const files = Object.values(EVALUATIONS).map((e) => {
      const f = join(dir, `${e.id}.json`);
      writeFileSync(f, JSON.stringify(e));
      return f;
    });
    const out = join(dir, 'evals.html');
    expect(await main(['report', ...files, '--out', out])).toBe(0);
    await browser.page.goto(`file://${out}`);
    await browser.page.waitForSelector('body[data-ready="true"]');
    const charts = await chartStates(browser.page);
    expect(charts.map((c) => c.id)).toEqual(['intervals', 'frontier']);
    expect(charts.every((c) => c.dataInk > 100)).toBe(true);

    const bad = join(dir, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({
        ...EVALUATIONS.good,
        environments: [{ ...EVALUATIONS.good.environments[0], interval: { low: 0.9, high: 0.2, level: 0.8 } }],
      }),
    );
    const lines: string[] = [];
    const error = console.error;
    console.error = (l: string) => lines.push(l);
    try {
      expect(await main(['report', bad, '--out', join(dir, 'x.html')])).toBe(2);
    } finally {
      console.error = error;
    }
    expect(lines).toEqual([`rlmesh: report: ${bad}: environments[0].interval: low must be <= high`]);
  });
});
