import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DashboardHub, type DashboardServer, serveDashboard } from '../src';

describe('serveDashboard', () => {
  let hub: DashboardHub;
  let server: DashboardServer;
  beforeAll(async () => {
    hub = new DashboardHub();
    hub.setRun({ name: 'r1', source: 'dir', rows: [{ update: 1, env_steps: 8, return_mean: 0.5 }] });
    server = await serveDashboard(hub);
  });
  afterAll(() => server.close());

  it('serves the live page on loopback with Chart.js inlined', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await fetch(server.url);
    expect(res.headers.get('content-type')).toContain('text/html');
    const html = await res.text();
    expect(html).toContain('Chart.js v4.6.1');
    expect(html).toContain('"live":true');
  });

  it('streams the current state, then changes, as server-sent events', async () => {
    const ac = new AbortController();
    const res = await fetch(new URL('events', server.url), { signal: ac.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    const until = async (s: string) => {
      while (!text.includes(s)) text += new TextDecoder().decode((await reader.read()).value);
    };
    await until('event: evaluations');
    expect(text).toMatch(/^event: run\ndata: \{"name":"r1"/);
    hub.appendRows('r1', [{ update: 2, env_steps: 16, return_mean: 0.7 }]);
    await until('event: samples');
    expect(text).toContain('data: {"name":"r1","samples":[{"x":16,"v":{"return_mean":0.7}}]}');
    ac.abort();
  });

  it('answers 404 and 405 instead of failing', async () => {
    expect((await fetch(new URL('nope', server.url))).status).toBe(404);
    expect((await fetch(server.url, { method: 'POST' })).status).toBe(405);
    expect(((await (await fetch(new URL('api/state', server.url))).json()) as { runs: unknown[] }).runs).toHaveLength(1);
  });
});
