/**
 * The text interface for language-model agents: an observation rendered as a prompt, and a parser
 * for the model's answer. The grammar is one action per answer:
 *
 *   BUY <size> <ASSET> | SELL <size> <ASSET> | HOLD
 *
 * Lenient about form (any case, surrounding prose, an `Action:` prefix, markdown emphasis or code
 * fences, a trailing full stop) and exact about content: a size is a plain positive decimal, the
 * asset must be listed, and an answer naming two different actions is refused rather than guessed.
 */
import type { Action } from './account';
import { actionText, type Market, type Observation } from './market';

export type Parsed = { ok: true; action: Action } | { ok: false; error: string };

const GRAMMAR = 'BUY <size> <ASSET>, SELL <size> <ASSET> or HOLD';
const LINE = /^(?:action\s*[:=-]\s*)?(buy|sell)\s+(\S+)\s+(\S+?)\.?$|^(?:action\s*[:=-]\s*)?(hold)\.?$/i;
const SIZE = /^(?:\d+(?:\.\d+)?|\.\d+)$/;

/** Reads one action from a model's answer; never throws. */
export function parseAction(text: string, symbols: readonly string[]): Parsed {
  if (typeof text !== 'string') return { ok: false, error: `expected text, got ${typeof text}` };
  const found: Parsed[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/[*_`>]/g, '').trim();
    const m = LINE.exec(line);
    if (!m) continue;
    if (m[4]) {
      found.push({ ok: true, action: { kind: 'hold' } });
      continue;
    }
    const side = m[1].toLowerCase() as 'buy' | 'sell';
    const [size, asset] = [m[2], m[3].toUpperCase()];
    if (!SIZE.test(size) || Number(size) <= 0)
      found.push({ ok: false, error: `size must be a positive number, got ${JSON.stringify(size)}` });
    else if (!symbols.includes(asset)) found.push({ ok: false, error: `unknown asset ${asset} (assets: ${symbols.join(', ')})` });
    else found.push({ ok: true, action: { kind: side, asset, size: Number(size) } });
  }
  if (found.length === 0) return { ok: false, error: `no action found: answer with one line ${GRAMMAR}` };
  const distinct = new Set(found.map((p) => (p.ok ? actionText(p.action) : p.error)));
  if (distinct.size > 1) return { ok: false, error: `more than one action (${[...distinct].join('; ')}): answer with exactly one` };
  return found[0];
}

/** Parses and acts; an unreadable answer becomes a refused decision the next observation reports. */
export function actText(market: Market, agentId: string, text: string) {
  const parsed = parseAction(text, market.symbols);
  return parsed.ok ? market.act(agentId, parsed.action) : market.refuseText(agentId, text, `unreadable action: ${parsed.error}`);
}

const fmt = (x: number) => x.toFixed(2);
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)}%`;

/** The observation as a prompt: account, prices with their recent path, headlines, the grammar. */
export function renderPrompt(obs: Observation): string {
  const minutes = Math.round(obs.historyIntervalMs / 60_000);
  const lines = [
    `You are trader ${obs.agentId} in a simulated stock market. Time: ${obs.time}.`,
    `Cash ${fmt(obs.cash)}, equity ${fmt(obs.equity)}, P&L ${fmt(obs.pnl)} (realised ${fmt(obs.realised)}, unrealised ${fmt(obs.unrealised)}, fees ${fmt(obs.fees)}).`,
    '',
    `Prices (last ${obs.assets[0].history.length} readings, ${minutes} min apart, oldest first):`,
  ];
  for (const a of obs.assets) {
    const change = a.price / a.history[0] - 1;
    lines.push(`- ${a.symbol} (${a.name}): ${fmt(a.price)} (${pct(change)}) [${a.history.map(fmt).join(' ')}]`);
  }
  lines.push('', 'Positions:');
  if (obs.positions.length === 0) lines.push('- none');
  for (const p of obs.positions) lines.push(`- ${p.asset}: ${p.size} at average cost ${fmt(p.avgCost)}, unrealised ${fmt(p.unrealised)}`);
  lines.push('', 'Recent headlines (newest first):');
  if (obs.news.length === 0) lines.push('- none');
  for (const h of obs.news) lines.push(`- ${new Date(Date.parse(obs.time) - (obs.atMs - h.atMs)).toISOString().slice(11, 16)} ${h.text}`);
  if (obs.last) lines.push('', `Your previous action: ${obs.last}`);
  lines.push('', `Answer with exactly one line: ${GRAMMAR}. No short selling; fees apply to each fill.`);
  return lines.join('\n');
}
