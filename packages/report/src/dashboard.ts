/**
 * The dashboard's HTTP adapter (plain node:http): `/` is the live page, `/events` streams the hub's
 * events as server-sent events (the current state first), `/api/state` is the state as JSON.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DashboardHub } from './hub';
import { renderPage } from './page';

export interface DashboardServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Keeps idle connections (and proxies between) from timing out the stream. */
const HEARTBEAT_MS = 15_000;

export async function serveDashboard(
  hub: DashboardHub,
  opts: { port?: number; host?: string; title?: string } = {},
): Promise<DashboardServer> {
  const host = opts.host ?? '127.0.0.1';
  const page = renderPage({ title: opts.title ?? 'rlmesh dashboard', live: true, runs: [], evaluations: null, generated_at: '' });
  const streams = new Set<ServerResponse>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page);
    } else if (path === '/api/state') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(hub.snapshot()));
    } else if (path === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      streams.add(res);
      const unsubscribe = hub.subscribe((e) => res.write(`event: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`));
      const beat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS);
      req.on('close', () => {
        clearInterval(beat);
        unsubscribe();
        streams.delete(res);
      });
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no page at ${path}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.end();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
