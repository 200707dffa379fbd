import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lmAgent, Market, Simulation } from '@rlmesh/market';
import { afterAll, beforeAll, expect, it } from 'vitest';

/** A real chat completions server on 127.0.0.1 that answers from a queue (the last entry repeats). */
const seen: { headers: IncomingHttpHeaders; body: { user: string; messages: { role: string; content: string }[] } }[] = [];
let answers: (string | number)[] = [];
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    seen.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
    const a = answers.length > 1 ? answers.shift()! : answers[0];
    if (typeof a === 'number') return res.writeHead(a).end('overloaded');
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: a } }] }));
  });
});
let url: string;
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

it('trades through an OpenAI-compatible endpoint; a failed request passes the turn', async () => {
  answers = ['I like Acme.\nBUY 2 ACME', 500, 'SELL 5 ACME', 'HOLD'];
  const market = new Market({ seed: 1 });
  const agent = lmAgent({ id: 'lm-1', baseURL: url, model: 'policy', paceMs: 60_000 });
  const decisions = await new Simulation(market).add(agent).run(4.4 * 60_000);
  expect(seen.length).toBe(4);
  expect(seen[0].headers['x-rlmesh-agent']).toBe('lm-1');
  expect(seen[0].body.user).toBe('lm-1');
  expect(seen[0].body.messages[1].content).toMatch(/^You are trader lm-1 in a simulated stock market/);
  expect(agent.failures).toBe(1);
  expect(agent.lastError).toBe('HTTP 500: overloaded');
  expect(decisions).toBe(3);
  expect(market.decisions().map((d) => d.status)).toEqual(['filled', 'refused', 'held']);
  expect(market.decisions()[1].reason).toBe('cannot sell 5 ACME: holding 2 (no short selling)');
  // The refusal is what the model reads next.
  expect(seen[3].body.messages[1].content).toContain('Your previous action: SELL 5 ACME refused: cannot sell 5 ACME: holding 2');
});
