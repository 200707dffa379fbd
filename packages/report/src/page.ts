/**
 * The one HTML page of reports and the dashboard: Chart.js and the page script are inlined, so a
 * report is a single file that opens without a network; the data is a JSON block the script reads.
 * A live page (the dashboard) starts without data and follows the server's event stream instead.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { EvaluationsView, RunView } from './view';

/** A conclusion shown above the charts: one sentence, a table of the numbers behind it, notes. */
export interface PageSummary {
  headline: string;
  columns: string[];
  rows: string[][];
  notes?: string[];
}

export interface PageData {
  title: string;
  summary?: PageSummary;
  /** true: the page subscribes to `events` (server-sent events) on its own origin. */
  live: boolean;
  runs: RunView[];
  evaluations: EvaluationsView | null;
  generated_at: string;
}

let assets: { chart: string; client: string } | undefined;

/** Chart.js's own UMD build from node_modules and the page script, read once. */
function pageAssets(): { chart: string; client: string } {
  if (!assets) {
    const chartDir = dirname(createRequire(__filename).resolve('chart.js'));
    assets = {
      chart: readFileSync(join(chartDir, 'chart.umd.min.js'), 'utf8'),
      // assets/ sits beside src/ and dist/, so the same path works from either.
      client: readFileSync(join(__dirname, '..', 'assets', 'client.js'), 'utf8'),
    };
  }
  return assets;
}

/** Chart.js's UMD build, for other self-contained pages (static-page.ts). */
export function chartJsSource(): string {
  return pageAssets().chart;
}

/** Inline script text must not close its own tag; JSON keeps its meaning with `<` escaped. */
export function inlineJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

export function inlineScript(code: string): string {
  if (/<\/script/i.test(code)) throw new Error('an inlined script contains </script');
  return code;
}

export const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
header h1 { font-size: 17px; margin: 0; font-weight: 600; }
header .meta { opacity: 0.75; font-size: 12px; }
main { padding: 12px 20px 40px; }
h2 { font-size: 15px; margin: 22px 0 8px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 8px 10px; }
.card h3 { font-size: 13px; margin: 0 0 4px; font-weight: 600; }
.plot { position: relative; height: 240px; }
.wide .plot { height: 320px; }
.note { color: #5b6475; font-size: 12px; margin: 4px 0; }
.headline { font-size: 17px; font-weight: 600; margin: 14px 0 10px; }
table { border-collapse: collapse; background: #fff; font-size: 12px; }
td, th { border: 1px solid #dde1e7; padding: 3px 8px; text-align: left; }
select { font: inherit; }
`;

const CURVES = `<h2>Learning curves <span class="note" id="curves-x"></span></h2>
  <p class="note" id="curves-note"></p>
  <div class="grid" id="curves"></div>`;

const EVALUATIONS = `<h2>Evaluations</h2>
  <p class="note" id="evaluations-note"></p>
  <div id="evaluations-table"></div>
  <div class="grid">
    <div class="card wide"><h3>Success rate per environment and split, with its interval</h3><div class="plot"><canvas id="intervals"></canvas></div></div>
    <div class="card wide"><h3>Pareto frontier
      <select id="frontier-x" aria-label="x axis"></select> vs <select id="frontier-y" aria-label="y axis"></select></h3>
      <p class="note" id="frontier-note"></p>
      <div class="plot"><canvas id="frontier"></canvas></div></div>
  </div>`;

function summaryHtml(s: PageSummary): string {
  const cells = (row: string[], tag: string) => `<tr>${row.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join('')}</tr>`;
  return `<section id="summary">
  <p class="headline">${escapeHtml(s.headline)}</p>
  <table>${cells(s.columns, 'th')}${s.rows.map((r) => cells(r, 'td')).join('')}</table>
  ${(s.notes ?? []).map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n  ')}
</section>`;
}

export function renderPage(data: PageData): string {
  const { chart, client } = pageAssets();
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>${escapeHtml(data.title)}</h1>
  <label>run <select id="run-select"></select></label>
  <span class="meta" id="status"></span>
</header>
<main>
  ${
    // A page with a conclusion shows its evidence (the evaluations) next, then how training went.
    data.summary ? `${summaryHtml(data.summary)}\n${EVALUATIONS}\n${CURVES}` : `${CURVES}\n${EVALUATIONS}`
  }
</main>
<script id="rlmesh-data" type="application/json">${inlineJson(data)}</script>
<script>${inlineScript(chart)}</script>
<script>${inlineScript(client)}</script>
</body>
</html>
`;
}
