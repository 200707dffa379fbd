/**
 * Babylon's loop, the archive half: agents call a tiny GPT-2 through the OpenAI-compatible endpoint
 * (OpenAI's own client), the archive's call recorder writes each call (PGlite), agents' trajectories
 * go in beside them, and GRPO by window reads them back. The checks that make it fail when a link is
 * wrong: the recorded call equals the answer the agent got, field for field; the rollout's prompt and
 * completion ids equal the ids the endpoint generated; the learner's first update, on the very
 * weights that generated, sees importance ratios of 1 (the behaviour log-probs line up token for
 * token); the batch and the trained model are recorded; dropout thins a batch that holds too many.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Archive, archiveAgentId, archiveCallRecorder, openArchive } from '@rlmesh/archive';
import { Rng as GraphRng, initParameters } from '@rlmesh/graph';
import {
  GPT2_124M,
  type Gpt2Config,
  Gpt2LMHeadModel,
  parseSequenceRunConfig,
  publishSequenceVersion,
  SequenceLearnerRun,
  saveGpt2Directory,
  trainOnWindows,
  windowRollout,
} from '@rlmesh/learner';
import { MemoryBus } from '@rlmesh/mesh';
import { type ChatMessage, type OpenAiServer, PolicyCore, type RecordedCall, renderChat, startOpenAiServer } from '@rlmesh/policy';
import { saveTokenizer, trainBpe } from '@rlmesh/text';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const CORPUS = [
  'System: You trade ACME.\nUser: ACME is at 101.5, up 2%. News: guidance raised.\nAssistant: BUY 3 ACME',
  'User: ACME is at 97.2, down 1%. News: none.\nAssistant: SELL 2 ACME',
  'User: ACME is at 99.0, flat. Cash 1000.\nAssistant: HOLD',
];
const AGENTS = ['lm agent#0', 'lm-agent-1', 'lm agent#2', 'lm-agent-3', 'lm agent#4', 'lm-agent-5'];
const CALLS_PER_AGENT = 3;
const AT = new Date('2026-12-02T07:30:00Z');

let dir: string;
let archive: Archive;
let bus: MemoryBus;
let core: PolicyCore;
let server: OpenAiServer;
let learner: SequenceLearnerRun;
/** What the endpoint handed the recorder, by call id: the ids it generated. */
const endpointCalls = new Map<string, RecordedCall>();
const answers: { agent: string; res: OpenAI.Chat.Completions.ChatCompletion }[] = [];
const trajectoryOf = new Map<string, string>();

const encodePrompt = (messages: { role: string; content: string }[]) => learner.tokenizer.encode(renderChat(messages as ChatMessage[]));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rlmesh-babylon-'));
  const tok = trainBpe(CORPUS, { vocab_size: 300 });
  const config: Gpt2Config = {
    ...GPT2_124M,
    vocab_size: tok.vocabSize,
    n_positions: 96,
    n_embd: 16,
    n_layer: 1,
    n_head: 2,
    bos_token_id: tok.bosId ?? -1,
    eos_token_id: tok.eosId ?? -1,
    pad_token_id: tok.padId ?? -1,
  };
  await saveGpt2Directory(join(dir, 'init'), config, initParameters(new Gpt2LMHeadModel(config), new GraphRng(1)));
  saveTokenizer(tok, join(dir, 'init'), { modelMaxLength: config.n_positions });
  const cfg = parseSequenceRunConfig(
    {
      run: { name: 'babylon', seed: 1, out_dir: dir },
      init_from: join(dir, 'init'),
      algo: {
        name: 'grpo',
        num_generations: 8,
        prompts_per_update: 1,
        micro_batch_size: 8,
        max_completion_length: 8,
        reward_weights: { judge: 1 },
        // TRL's default 1e-6 moves the weights so little that the off-policy ratio checked below
        // can land within 5e-7 of 1 by chance; 1e-3 makes the second window's ratio clearly off 1.
        learning_rate: 1e-3,
      },
      train: { total_updates: 4, threads: 1 },
    },
    { env: false },
  );
  learner = await SequenceLearnerRun.create(cfg, { runDir: join(dir, 'run'), rewardComponents: ['judge'] });
  // One fixed instant for the archive and the recorder, so no run straddles two windows.
  archive = await openArchive('memory', { windowHours: 1, now: () => AT });
  bus = new MemoryBus();
  await publishSequenceVersion(bus, 'trader', learner, true);
  core = new PolicyCore({ bus, logger: quiet });
  const toArchive = archiveCallRecorder(archive, { at: () => AT });
  const recorder = {
    async record(call: RecordedCall) {
      endpointCalls.set(call.id, call);
      await toArchive.record(call);
    },
  };
  server = await startOpenAiServer({ core, bus, logger: quiet, recorder });

  // Six agents in one window, three decisions each, then their trajectories with a P&L.
  for (const [a, agent] of AGENTS.entries()) {
    const id = archive.startTrajectory({ agentId: archiveAgentId(agent), modelVersion: 'trader@v1' });
    trajectoryOf.set(agent, id);
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0, defaultHeaders: { 'x-rlmesh-agent': agent } });
    for (let k = 0; k < CALLS_PER_AGENT; k++) {
      const messages = [
        { role: 'system' as const, content: 'You trade ACME.' },
        { role: 'user' as const, content: `ACME is at ${(97 + a + k).toFixed(1)}, up ${k}%. Cash 1000.` },
      ];
      const res = await client.chat.completions.create({ model: 'trader', messages, max_tokens: 8, logprobs: true, seed: 10 * a + k });
      answers.push({ agent, res });
      archive.appendStep(id, { observation: { price: 97 + a + k }, action: res.choices[0].message.content ?? '', reward: 0 });
    }
    await archive.endTrajectory(id, { finalPnl: 10 * a - 25 });
  }
  // The recorder runs after each answer; wait until the archive holds every call.
  const want = AGENTS.length * CALLS_PER_AGENT;
  for (let i = 0; i < 200 && endpointCalls.size < want; i++) await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setTimeout(r, 100));
}, 60_000);

afterAll(async () => {
  await server?.close();
  await core?.close();
  await archive?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The judge stand-in: a window's trajectories ranked by P&L onto [0, 1]. */
async function rankScores(_window: string, trajectories: { id: string }[]): Promise<Map<string, number>> {
  const pnl = new Map<string, number>();
  for (const [agent, id] of trajectoryOf) pnl.set(id, AGENTS.indexOf(agent));
  const sorted = [...trajectories].sort((a, b) => (pnl.get(a.id) ?? 0) - (pnl.get(b.id) ?? 0));
  return new Map(sorted.map((t, i) => [t.id, i / Math.max(1, sorted.length - 1)]));
}

describe("Babylon's archive loop", () => {
  it('maps endpoint agent ids into the archive charset, keeping distinct ids distinct', () => {
    expect(archiveAgentId('lm-agent-1')).toBe('lm-agent-1');
    expect(archiveAgentId('lm agent#0')).toMatch(/^lm_agent_0-[0-9a-f]{12}$/);
    expect(archiveAgentId('lm agent#0')).not.toBe(archiveAgentId('lm_agent_0'));
    expect(archiveAgentId('x'.repeat(256))).toHaveLength(200);
  });

  it('records every call an agent makes with the openai client, in its window, field for field', async () => {
    const stored = await archive.llmCallsInWindow('2026-12-02T07:00Z');
    expect(stored).toHaveLength(AGENTS.length * CALLS_PER_AGENT);
    for (const { agent, res } of answers) {
      const call = stored.find((c) => c.id === res.id);
      expect(call, res.id).toBeDefined();
      if (!call) continue;
      expect(call.agentId).toBe(archiveAgentId(agent));
      expect(call.model).toBe('trader@v1');
      expect(call.trajectoryId).toBeNull();
      expect(call.completion).toBe(res.choices[0].message.content);
      expect(call.promptTokens).toBe(res.usage?.prompt_tokens);
      expect(call.messages.map((m) => m.role)).toEqual(['system', 'user']);
      const lps = res.choices[0].logprobs?.content ?? [];
      expect(call.logprobs?.map((l) => [l.token, l.logprob])).toEqual(lps.map((l) => [l.token, l.logprob]));
    }
  });

  it("rebuilds the endpoint's prompt and completion token ids from the archive", async () => {
    const groups = await archive.trainingGroups({ minAgents: 5, target: 1000, seed: 1 });
    expect(groups.windows).toHaveLength(1);
    const { windowId, members } = groups.windows[0];
    const calls = new Map();
    for (const t of members) {
      const own = (await archive.llmCallsInWindow(windowId)).filter((c) => c.agentId === t.agentId);
      calls.set(t.id, own);
    }
    const scores = await rankScores(windowId, members);
    const built = windowRollout({
      windowId,
      trajectories: members,
      calls,
      scores,
      tokenizer: learner.tokenizer,
      encodePrompt,
      callsPerTrajectory: CALLS_PER_AGENT,
      seed: 3,
      currentVersion: 1,
    });
    expect(built.skipped).toEqual({});
    const r = built.rollout;
    if (!r) throw new Error('no rollout');
    expect(r.groupSize).toBe(AGENTS.length * CALLS_PER_AGENT);
    // Every row is one of the endpoint's calls, ids exact.
    const generated = [...endpointCalls.values()].map((c) => JSON.stringify([c.promptTokenIds, c.choices[0].tokens]));
    for (let i = 0; i < r.groupSize; i++) {
      const prompt = Array.from(r.promptIds.subarray(i * r.promptLength, i * r.promptLength + r.promptLengths[i]));
      let n = 0;
      while (n < r.completionLength && r.completionMask[i * r.completionLength + n]) n++;
      const completion = Array.from(r.completionIds.subarray(i * r.completionLength, i * r.completionLength + n));
      expect(generated).toContain(JSON.stringify([prompt, completion]));
    }
  });

  it('trains GRPO by window on the recorded behaviour log-probs and records the batch and the model', async () => {
    const out = await trainOnWindows(archive, learner, rankScores, encodePrompt, {
      minAgents: 5,
      target: 1000,
      callsPerTrajectory: 2,
      seed: 1,
      versionPrefix: 'trader',
    });
    expect(out.trainedWindows).toBe(1);
    expect(out.trajectories).toBe(AGENTS.length);
    expect(out.rows).toBe(AGENTS.length * 2);
    expect(out.skipped).toEqual({});
    expect(out.scoreSpread).toBe(1);
    const m = out.updates[0].metrics;
    // The learner holds the weights that generated: the importance ratio is 1 on every token.
    expect(m.ratio_mean).toBeCloseTo(1, 4);
    expect(m.clip_ratio_region).toBe(0);
    expect(out.updates[0].policy_lag).toBe(0);
    expect(Number.isFinite(m.loss)).toBe(true);
    expect(out.version).toBe('trader-v2');
    expect(out.checkpoint && existsSync(join(out.checkpoint, 'config.json'))).toBe(true);
    const batch = await archive.trainingBatch(out.batchId as string);
    expect(batch?.status).toBe('trained');
    expect(batch?.trajectoryIds).toHaveLength(AGENTS.length);
    const [model] = await archive.trainedModels();
    expect(model).toMatchObject({ version: 'trader-v2', path: out.checkpoint, batchId: out.batchId });

    // The endpoint serves the trained version; the next iteration is off-policy against v1's log-probs.
    await publishSequenceVersion(bus, 'trader', learner, false);
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
    const res = await client.chat.completions.create({ model: 'trader', messages: [{ role: 'user', content: 'ACME?' }], max_tokens: 4 });
    expect(res.system_fingerprint).toBe('rlmesh-trader-v2');
    const again = await trainOnWindows(archive, learner, rankScores, encodePrompt, {
      minAgents: 5,
      target: 4,
      callsPerTrajectory: 2,
      seed: 1,
      versionPrefix: 'trader',
    });
    // 6 trajectories for a target of 4: dropout at its 0.3 cap drops floor(0.3 * 6) = 1.
    expect(again.dropoutRate).toBeCloseTo(0.3);
    expect(again.trajectories).toBe(AGENTS.length - 1);
    expect(again.updates[0].policy_lag).toBe(1);
    expect(again.updates[0].metrics.ratio_mean).not.toBeCloseTo(1, 6);
  });
});
