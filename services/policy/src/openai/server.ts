/**
 * The OpenAI-compatible HTTP adapter (plain node:http): `POST /v1/chat/completions` (JSON, or
 * server-sent events with `stream: true`), `GET /v1/models` and `GET /v1/models/{id}`. Every error is
 * answered in OpenAI's shape with its status; one that happens mid-stream is sent as an `error`
 * event, which OpenAI's clients raise. A bad request never reaches the core and never ends the process.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bus } from '@rlmesh/mesh';
import { ChatEndpoint, type ChatEndpointOptions } from './chat';
import { modelNotFound, OpenAiError, toOpenAiError } from './errors';
import { listModels, parseModelId } from './models';

export interface OpenAiServerOptions extends ChatEndpointOptions {
  /** Where the policy pointers are, for the model list. */
  bus: Bus;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body (default 4 MiB). */
  maxBodyBytes?: number;
}

export interface OpenAiServer {
  /** The base URL OpenAI's clients take: `http://host:port/v1`. */
  baseURL: string;
  host: string;
  port: number;
  endpoint: ChatEndpoint;
  /** Stops taking requests, ends open streams, and waits (briefly) for recorders. */
  close(): Promise<void>;
}

const MAX_AGENT_ID_CHARS = 256;

export async function startOpenAiServer(opts: OpenAiServerOptions): Promise<OpenAiServer> {
  const host = opts.host ?? '127.0.0.1';
  const maxBody = opts.maxBodyBytes ?? 4 << 20;
  const endpoint = new ChatEndpoint(opts);
  const key = opts.apiKey ? Buffer.from(`Bearer ${opts.apiKey}`) : null;

  const route = async (req: IncomingMessage, res: ServerResponse, gone: () => boolean): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '');
    if (key) {
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== key.length || !timingSafeEqual(got, key))
        throw new OpenAiError(
          401,
          'Incorrect or missing API key (Authorization: Bearer <key>)',
          'invalid_request_error',
          null,
          'invalid_api_key',
        );
    }
    if (path === '/v1/chat/completions') {
      allow(req, 'POST');
      const agentId = agentOf(req);
      const call = await endpoint.prepare(await readJson(req, maxBody), { agentId });
      const ctx = { agentId, isCancelled: gone };
      if (!call.req.stream) return sendJson(res, 200, await endpoint.complete(call, ctx));
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
      await endpoint.stream(call, (chunk) => res.write(`data: ${JSON.stringify(chunk)}\n\n`), ctx);
      res.end('data: [DONE]\n\n');
    } else if (path === '/v1/models') {
      allow(req, 'GET');
      sendJson(res, 200, { object: 'list', data: await listModels(opts.bus) });
    } else if (path.startsWith('/v1/models/')) {
      allow(req, 'GET');
      const id = parseModelPath(path.slice('/v1/models/'.length));
      parseModelId(id);
      const found = (await listModels(opts.bus)).find((m) => m.id === id || `${m.id}@latest` === id);
      if (!found)
        throw new OpenAiError(
          404,
          `model: no chat model ${JSON.stringify(id)} is served`,
          'invalid_request_error',
          'model',
          'model_not_found',
        );
      sendJson(res, 200, { ...found, id });
    } else {
      throw new OpenAiError(404, `Unknown request URL: ${req.method} ${path}`, 'invalid_request_error', null, 'unknown_url');
    }
  };

  const server = createServer((req, res) => {
    let left = false;
    res.on('close', () => {
      left = !res.writableFinished;
    });
    res.on('finish', () => {
      if (req.url?.startsWith('/v1/chat/completions')) endpoint.metrics.requests.add(1, { status: res.statusCode });
    });
    route(req, res, () => left).catch((e) => {
      const err = toOpenAiError(e);
      if (err.status >= 500) opts.logger.error('chat endpoint request failed', { path: req.url, error: err.message });
      if (res.headersSent) res.end(`data: ${JSON.stringify(err.body)}\n\n`);
      else if (!res.destroyed) sendJson(res, err.status, err.body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://${host}:${port}/v1`,
    host,
    port,
    endpoint,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await endpoint.drain();
    },
  };
}

function parseModelPath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw modelNotFound(raw, 'the path is not valid percent-encoding');
  }
}

function allow(req: IncomingMessage, method: string): void {
  if (req.method !== method)
    throw new OpenAiError(405, `${req.method} is not allowed here; use ${method}`, 'invalid_request_error', null, 'method_not_allowed');
}

function agentOf(req: IncomingMessage): string | undefined {
  const v = req.headers['x-rlmesh-agent'];
  if (v === undefined) return undefined;
  const id = Array.isArray(v) ? v[0] : v;
  if (id === '' || id.length > MAX_AGENT_ID_CHARS)
    throw new OpenAiError(
      400,
      `x-rlmesh-agent: must hold 1 to ${MAX_AGENT_ID_CHARS} characters`,
      'invalid_request_error',
      'x-rlmesh-agent',
    );
  return id;
}

async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const part of req as AsyncIterable<Buffer>) {
      size += part.length;
      if (size > maxBytes)
        throw new OpenAiError(413, `body: at most ${maxBytes} bytes`, 'invalid_request_error', null, 'request_too_large');
      parts.push(part);
    }
  } catch (e) {
    if (e instanceof OpenAiError) throw e;
    throw new OpenAiError(400, `body: could not be read (${(e as Error).message})`, 'invalid_request_error');
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (e) {
    throw new OpenAiError(400, `body: is not valid JSON (${(e as Error).message})`, 'invalid_request_error');
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
