/**
 * A self-contained HTML page for analyses (feature tables, heatmaps, bar charts) that are not a
 * training run's curves: sections of text, tables and Chart.js charts, with Chart.js inlined as in
 * reports, so the page opens without a network. A chart is a Chart.js config given as plain JSON
 * (no functions), so what the page draws is exactly the data in it.
 */
import { chartJsSource, escapeHtml, inlineJson, inlineScript } from './page';

export interface StaticTable {
  columns: string[];
  rows: (string | number)[][];
}

export interface StaticSection {
  title: string;
  /** Paragraphs of plain text (escaped). */
  notes?: string[];
  tables?: StaticTable[];
  /** Chart.js configs ({type, data, options}); each gets its own canvas. */
  charts?: { title: string; config: Record<string, unknown>; height?: number }[];
}

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 10px 20px; }
header h1 { font-size: 17px; margin: 0; font-weight: 600; }
main { padding: 12px 20px 40px; }
h2 { font-size: 15px; margin: 22px 0 8px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 12px; margin: 8px 0; }
.card { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 8px 10px; }
.card h3 { font-size: 13px; margin: 0 0 4px; font-weight: 600; }
.note { color: #5b6475; font-size: 12px; margin: 4px 0; }
table { border-collapse: collapse; background: #fff; font-size: 12px; margin: 6px 0; }
td, th { border: 1px solid #dde1e7; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
`;

const SCRIPT = `(() => {
  const charts = JSON.parse(document.getElementById('rlmesh-charts').textContent);
  for (const [i, c] of charts.entries()) new window.Chart(document.getElementById('chart-' + i), c);
})();`;

function tableHtml(t: StaticTable): string {
  const head = `<tr>${t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>`;
  const body = t.rows
    .map((r) => `<tr>${r.map((v) => (typeof v === 'number' ? `<td class="num">${v}</td>` : `<td>${escapeHtml(v)}</td>`)).join('')}</tr>`)
    .join('');
  return `<table>${head}${body}</table>`;
}

export function renderStaticPage(title: string, sections: readonly StaticSection[], generatedAt = new Date().toISOString()): string {
  const configs: Record<string, unknown>[] = [];
  const body = sections
    .map((s) => {
      const charts = (s.charts ?? []).map((c) => {
        configs.push({ ...c.config, options: { maintainAspectRatio: false, animation: false, ...(c.config.options as object) } });
        return `<div class="card"><h3>${escapeHtml(c.title)}</h3><div style="position: relative; height: ${c.height ?? 260}px"><canvas id="chart-${configs.length - 1}"></canvas></div></div>`;
      });
      return `<section>
<h2>${escapeHtml(s.title)}</h2>
${(s.notes ?? []).map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}
${charts.length ? `<div class="grid">${charts.join('')}</div>` : ''}
${(s.tables ?? []).map(tableHtml).join('\n')}
</section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(title)}</h1><span class="note" style="color:#cfd5df">generated ${escapeHtml(generatedAt)}</span></header>
<main>
${body}
</main>
<script id="rlmesh-charts" type="application/json">${inlineJson(configs)}</script>
<script>${inlineScript(chartJsSource())}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
