/**
 * A real OpenAI-compatible HTTP server on 127.0.0.1 for the chat judge's tests. Each request takes
 * the next behaviour from a queue (the last one repeats): a good answer scoring the trajectories it
 * finds in the prompt, garbage, a wrong id, a score out of range, an HTTP status, or silence.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Behaviour = 'good' | 'fenced' | 'garbage' | 'wrong-id' | 'out-of-range' | 'missing-id' | 'silent' | 401 | 500;

export interface Received {
  headers: IncomingMessage['headers'];
  body: { model: string; messages: { role: string; content: string }[]; response_format?: unknown; temperature?: number };
}

export interface FakeOpenAI {
  url: string;
  received: Received[];
  queue: Behaviour[];
  close(): Promise<void>;
}

export const USAGE = { prompt_tokens: 1000, completion_tokens: 50 };

/** Ids in the prompt's `<trajectory id="...">` blocks, in order. */
export function idsIn(content: string): string[] {
  return [...content.matchAll(/<trajectory id="([^"]+)">/g)].map((m) => m[1]);
}

function completion(content: string) {
  return JSON.stringify({
    id: 'c1',
    object: 'chat.completion',
    choices: [{ index: 0, message: { role: 'assistant', content } }],
    usage: USAGE,
  });
}

export async function startFakeOpenAI(queue: Behaviour[] = ['good']): Promise<FakeOpenAI> {
  const received: Received[] = [];
  const state = { queue };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      received.push({ headers: req.headers, body });
      const b = state.queue.length > 1 ? state.queue.shift()! : state.queue[0];
      if (req.url !== '/v1/chat/completions') return res.writeHead(404).end('not found');
      if (b === 'silent') return; // the client's timeout has to end it
      if (typeof b === 'number') return res.writeHead(b, { 'content-type': 'application/json' }).end('{"error":{"message":"nope"}}');
      const ids = idsIn(body.messages[1].content);
      const scores = ids.map((id, i) => ({ trajectory_id: id, explanation: `rank ${i}`, score: 1 - i / Math.max(1, ids.length) }));
      let content: string;
      if (b === 'good') content = JSON.stringify({ scores });
      else if (b === 'fenced') content = `Here are my scores:\n\`\`\`json\n${JSON.stringify({ scores })}\n\`\`\``;
      else if (b === 'garbage') content = 'I think the first trader did best.';
      else if (b === 'wrong-id')
        content = JSON.stringify({ scores: scores.map((s, i) => (i === 0 ? { ...s, trajectory_id: 'nobody' } : s)) });
      else if (b === 'out-of-range') content = JSON.stringify({ scores: scores.map((s, i) => (i === 0 ? { ...s, score: 7 } : s)) });
      else content = JSON.stringify({ scores: scores.slice(1) });
      res.writeHead(200, { 'content-type': 'application/json' }).end(completion(content));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    received,
    get queue() {
      return state.queue;
    },
    set queue(q: Behaviour[]) {
      state.queue = q;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
