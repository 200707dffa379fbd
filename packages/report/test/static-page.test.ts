import { describe, expect, it } from 'vitest';
import { renderStaticPage } from '../src/static-page';

describe('renderStaticPage', () => {
  it('inlines Chart.js, each chart config in order, and escapes text', () => {
    const html = renderStaticPage('a <b> page', [
      {
        title: 'first & only',
        notes: ['x < y'],
        tables: [{ columns: ['feature', 'mi'], rows: [['<f3>', 0.5]] }],
        charts: [
          { title: 'bars', config: { type: 'bar', data: { labels: ['a'], datasets: [{ data: [1] }] } } },
          { title: 'line', config: { type: 'line', data: { labels: [], datasets: [] }, options: { responsive: true } } },
        ],
      },
    ]);
    expect(html).toContain('<title>a &lt;b&gt; page</title>');
    expect(html).toContain('first &amp; only');
    expect(html).toContain('<td>&lt;f3&gt;</td><td class="num">0.5</td>');
    expect(html).toContain('id="chart-0"');
    expect(html).toContain('id="chart-1"');
    expect(html).not.toContain('src="http');
    const json = html.match(/<script id="rlmesh-charts" type="application\/json">(.*?)<\/script>/s)?.[1] ?? '';
    const configs = JSON.parse(json) as { type: string; options: Record<string, unknown> }[];
    expect(configs.map((c) => c.type)).toEqual(['bar', 'line']);
    expect(configs[1].options).toMatchObject({ responsive: true, animation: false });
    // Chart.js itself is in the page, not fetched.
    expect(html.length).toBeGreaterThan(100_000);
  });
});
