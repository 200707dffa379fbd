/// <reference lib="dom" />
// The functions given to page.evaluate run in the browser, on its DOM.
/**
 * The live dashboard in real headless Chromium: a run trains in this process into the served runs
 * directory, and the page's curves grow while it trains (points counted on the Chart.js instances
 * at several moments before training ends), then hold every update; an evaluation written into the
 * run's directory appears with its interval bars.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainEmbedded } from '@rlmesh/learner';
import { DashboardHub, type DashboardServer, RunsWatcher, serveDashboard } from '@rlmesh/report';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, chartStates, HAVE_CHROMIUM, openBrowser, requireChromium, screenshot } from './browser';
import { EVALUATIONS, patternEchoConfig, writeEvaluation } from './fixtures';

requireChromium();
/** Long enough (a few seconds on 2 cores) that the page is read several times while it trains. */
const UPDATES = 200;

describe.skipIf(!HAVE_CHROMIUM && process.env.CI !== 'true')('dashboard in Chromium', () => {
  let runsDir: string;
  let watcher: RunsWatcher;
  let server: DashboardServer;
  let browser: Browser;

  beforeAll(async () => {
    runsDir = mkdtempSync(join(tmpdir(), 'rlmesh-dashboard-'));
    const hub = new DashboardHub();
    watcher = new RunsWatcher(runsDir, hub);
    watcher.start(100);
    server = await serveDashboard(hub);
    browser = await openBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    watcher?.stop();
    await server?.close();
    rmSync(runsDir, { recursive: true, force: true });
  });

  it('shows a run training, its curves growing, and its evaluations', async () => {
    const { page } = browser;
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live');
    expect(await page.$$eval('#curves canvas', (c) => c.length)).toBe(0);

    /** Points of the return curve as the browser's chart holds them (-1: no chart yet). */
    const shown = () =>
      page.evaluate(() => {
        const w = window as unknown as { Chart: { getChart(c: Element): { data: { datasets: { data: unknown[] }[] } } | undefined } };
        const canvas = document.getElementById('curve-row:return');
        const chart = canvas && w.Chart.getChart(canvas);
        return chart ? chart.data.datasets[0].data.length : -1;
      });

    let trained = 0;
    let done = false;
    const training = trainEmbedded(patternEchoConfig(runsDir, 64 * UPDATES, 'live-echo'), {
      onUpdate: (r) => {
        trained = r.update;
      },
    }).finally(() => {
      done = true;
    });
    // Read the page while the run trains: each reading taken before the end is one the page showed live.
    const seen: { points: number; trained: number }[] = [];
    while (!done) {
      const points = await shown();
      if (!done && points > 0) {
        seen.push({ points, trained });
        if (seen.length === 3) await screenshot(page, 'dashboard-training.png');
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await training;
    const live = seen.filter((s) => s.points < UPDATES);
    expect(live.length, JSON.stringify(seen)).toBeGreaterThanOrEqual(3);
    expect(new Set(live.map((s) => s.points)).size).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < live.length; i++) expect(live[i].points).toBeGreaterThanOrEqual(live[i - 1].points);
    // The page never shows more than the learner has written.
    for (const s of seen) expect(s.points).toBeLessThanOrEqual(s.trained);

    await page.waitForFunction((n) => document.getElementById('curves-note')?.textContent?.startsWith(`live-echo: ${n} updates`), UPDATES);
    expect(await shown()).toBe(UPDATES);
    const curves = (await chartStates(page)).filter((c) => c.id.startsWith('curve-'));
    expect(curves.length).toBeGreaterThanOrEqual(8);
    for (const c of curves) {
      expect(
        c.points.every((n) => n === UPDATES),
        c.id,
      ).toBe(true);
      expect(c.dataInk, c.id).toBeGreaterThan(100);
    }

    // Evaluations arrive as they are written.
    writeEvaluation(join(runsDir, 'live-echo'), EVALUATIONS.good);
    writeEvaluation(join(runsDir, 'live-echo'), EVALUATIONS.initial);
    await page.waitForFunction(() => document.getElementById('evaluations-note')?.textContent === '2 evaluation(s).');
    const byId = new Map((await chartStates(page)).map((c) => [c.id, c]));
    expect(byId.get('intervals')?.points).toEqual([3, 3, 3, 3]);
    expect(byId.get('intervals')?.dataInk).toBeGreaterThan(1000);
    // good beats initial on every environment: it alone is on the frontier.
    expect(byId.get('frontier')?.points).toEqual([1, 1]);
    await screenshot(page, 'dashboard-done.png');
    expect(errors).toEqual([]);
  });
});
