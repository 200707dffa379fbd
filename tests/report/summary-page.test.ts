/// <reference lib="dom" />
// The functions given to page.evaluate run in the browser, on its DOM.
/**
 * A page with a conclusion (what `rlmesh experiment` writes) in real headless Chromium: the sentence
 * and its table come first, then the evaluations' interval bars, then the curves, which are drawn on
 * the x their run view names, each series with its own points (a sparse series with markers).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluationsView, renderPage } from '@rlmesh/report';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, chartStates, HAVE_CHROMIUM, openBrowser, requireChromium, screenshot } from './browser';
import { EVALUATIONS } from './fixtures';

requireChromium();

describe.skipIf(!HAVE_CHROMIUM && process.env.CI !== 'true')('a report page with a conclusion', () => {
  let dir: string;
  let browser: Browser;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rlmesh-summary-page-'));
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the sentence and its table first, the interval bars, and curves on their own x', async () => {
    const samples = [
      ...Array.from({ length: 30 }, (_, i) => ({ x: i + 1, v: { 'a.train': 3 / (i + 1) } })),
      { x: 15, v: { 'a.val': 0.4 } },
      { x: 30, v: { 'a.val': 0.3 } },
      ...Array.from({ length: 12 }, (_, i) => ({ x: i + 1, v: { 'b.reward': 0.3 + 0.01 * i } })),
    ];
    const file = join(dir, 'page.html');
    writeFileSync(
      file,
      renderPage({
        title: 'conclusion <first>',
        live: false,
        summary: {
          headline: 'B beats A on echo-16 <with non-overlapping intervals>.',
          columns: ['entry', 'A', 'B'],
          rows: [
            ['echo-8', '92%', '50%'],
            ['echo-16', '55%', '88%'],
          ],
          notes: ['a note'],
        },
        runs: [
          {
            name: 'two runs',
            source: 'dir',
            x_label: 'updates of each run',
            layout: [
              {
                id: 'a',
                title: 'A loss',
                series: [
                  { key: 'a.train', label: 'train' },
                  { key: 'a.val', label: 'val', points: true },
                ],
              },
              { id: 'b', title: 'B reward', series: [{ key: 'b.reward', label: 'reward' }] },
            ],
            samples,
          },
        ],
        evaluations: evaluationsView([EVALUATIONS.good, EVALUATIONS.specialist]),
        generated_at: new Date().toISOString(),
      }),
    );
    const { page } = browser;
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`file://${file}`);
    await page.waitForSelector('body[data-ready="true"]');
    expect(errors).toEqual([]);

    const layout = await page.evaluate(() => {
      const top = (sel: string) => document.querySelector(sel)?.getBoundingClientRect().top ?? Number.NaN;
      return {
        headline: document.querySelector('#summary .headline')?.textContent,
        cells: [...document.querySelectorAll('#summary td')].map((td) => td.textContent),
        order: [top('#summary'), top('#intervals'), top('#curves')],
        x: document.getElementById('curves-x')?.textContent,
      };
    });
    // Text is escaped, never markup.
    expect(layout.headline).toBe('B beats A on echo-16 <with non-overlapping intervals>.');
    expect(layout.cells).toEqual(['echo-8', '92%', '50%', 'echo-16', '55%', '88%']);
    expect(layout.order[0]).toBeLessThan(layout.order[1]);
    expect(layout.order[1]).toBeLessThan(layout.order[2]);
    expect(layout.x).toBe('(x: updates of each run)');

    const charts = await chartStates(page);
    const byId = new Map(charts.map((c) => [c.id, c]));
    expect(byId.get('curve-a')?.points).toEqual([30, 2]);
    expect(byId.get('curve-b')?.points).toEqual([12]);
    for (const id of ['curve-a', 'curve-b', 'intervals']) expect(byId.get(id)?.dataInk, id).toBeGreaterThan(50);
    const axes = await page.evaluate(() => {
      const w = window as unknown as {
        Chart: {
          getChart(id: string): { options: { scales: { x: { title: { text: string } } } }; data: { datasets: { pointRadius: number }[] } };
        };
      };
      const a = w.Chart.getChart('curve-a');
      return { x: a.options.scales.x.title.text, radii: a.data.datasets.map((d) => d.pointRadius) };
    });
    expect(axes).toEqual({ x: 'updates of each run', radii: [0, 3] });
    await screenshot(page, 'summary-page.png');
  }, 30_000);
});
