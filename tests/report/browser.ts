/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The functions given to page.evaluate run in the browser, on its DOM.
/**
 * Real headless Chromium (Debian's package) driven by playwright-core, for the report and dashboard
 * tests. Outside CI a machine without /usr/bin/chromium skips the tests with a message; under
 * CI=true a missing browser fails them.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const SKIP_REASON = HAVE_CHROMIUM ? '' : `no ${CHROMIUM} (apt-get install -y chromium); browser tests skipped outside CI`;

/** Where screenshots go: kept after the run as test artefacts (gitignored). */
export const ARTEFACTS = join(__dirname, '..', '..', 'test-results', 'report');

export function requireChromium(): void {
  if (!HAVE_CHROMIUM && process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing: install Debian's chromium package`);
  if (!HAVE_CHROMIUM) console.warn(SKIP_REASON);
}

export interface Browser {
  page: Page;
  close(): Promise<void>;
}

export async function openBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'rlmesh-chromium-'));
  // A persistent context is how playwright takes a given (empty) user data directory.
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTEFACTS, { recursive: true });
  const path = join(ARTEFACTS, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * What a chart holds and shows: points per dataset (from Chart.js's own instance) and `dataInk`, the
 * canvas pixels drawn in a dataset's colour. Axes, grid and labels are grey, so an empty chart has
 * no data ink however much of its frame is drawn.
 */
export interface ChartState {
  id: string;
  type: string;
  points: number[];
  dataInk: number;
}

/** Every Chart.js chart on the page, read in the browser. */
export async function chartStates(page: Page): Promise<ChartState[]> {
  return page.evaluate(() => {
    type Dataset = { data: unknown[]; borderColor?: unknown; backgroundColor?: unknown };
    const Chart = (window as unknown as { Chart: { getChart(c: HTMLCanvasElement): unknown } }).Chart;
    const rgb = (c: unknown) => (typeof c === 'string' ? (c.match(/\d+/g) ?? []).slice(0, 3).map(Number) : []);
    return [...document.querySelectorAll('canvas')].flatMap((canvas) => {
      const chart = Chart.getChart(canvas) as { config: { type: string }; data: { datasets: Dataset[] } } | undefined;
      const ctx = canvas.getContext('2d');
      if (!chart || !ctx) return [];
      const colours = chart.data.datasets.flatMap((d) => [rgb(d.borderColor), rgb(d.backgroundColor)]).filter((c) => c.length === 3);
      const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
      let dataInk = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] === 0) continue;
        if (colours.some(([r, g, b]) => Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 40)) dataInk++;
      }
      return [
        {
          id: canvas.id,
          type: chart.config.type,
          points: chart.data.datasets.map((d) => d.data.filter((p) => p !== null).length),
          dataInk,
        },
      ];
    });
  });
}
