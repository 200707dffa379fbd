/**
 * `rlmesh babylon`: Babylon's loop in one process (the design in babylon-config.ts's usage):
 *
 *   init       scripted traders' decisions (prompt -> action line) -> rlmesh sft -> a tiny GPT-2
 *   serve      PolicyCore + the OpenAI-compatible endpoint on loopback; the archive records every call
 *   iterate    market hours (scripted + LM traders) -> each 1-hour window: trajectories, market
 *              outcomes and judge scores into the archive -> GRPO by window -> publish the new version
 *   evaluate   held-out market seeds: the initial and the trained model each in its own market of
 *              the seed, under the training-time trader names (babylon-eval.ts)
 *
 * With a persistent archive a re-run of the same config resumes after the last finished iteration
 * (babylon-resume.ts).
 *
 * Simulated time runs as fast as the agents answer (Simulation.run); the archive and the recorder
 * read the market's clock, so windows are the market's hours.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { archiveCallRecorder, openArchive } from '@rlmesh/archive';
import { ConfigError, Rng } from '@rlmesh/core';
import { CachedJudge, ChatJudge, HeuristicJudge, type Judge } from '@rlmesh/judge';
import {
  parseSequenceRunConfig,
  parseSftConfig,
  publishSequenceVersion,
  runSft,
  SequenceLearnerRun,
  trainOnWindows,
} from '@rlmesh/learner';
import {
  type Action,
  type Agent,
  actionText,
  DEFAULT_TRADER_SYSTEM,
  lmAgent,
  Market,
  renderPrompt,
  Simulation,
  STRATEGIES,
  type StrategyName,
  type WindowReport,
  windowIdOf,
  windowReport,
} from '@rlmesh/market';
import { MemoryBus } from '@rlmesh/mesh';
import { type ChatMessage, PolicyCore, renderChat, startOpenAiServer } from '@rlmesh/policy';
import { parseArgs, UsageError } from './args';
import { type BabylonConfig, parseBabylonConfig } from './babylon-config';
import { heldOutPnl } from './babylon-eval';
import { type BabylonResults, type IterationMetrics, type PnlInterval, reportPage } from './babylon-report';
import {
  appendIteration,
  earlierRun,
  ITERATION_METRIC,
  keepIterations,
  lastFinished,
  readSft,
  recordConfig,
  restoreMarket,
  type SftOutcome,
  writeSft,
} from './babylon-resume';
import { loadConfig } from './main';

export type { BabylonResults, IterationMetrics, PnlInterval } from './babylon-report';

const HOUR = 3_600_000;
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

export async function babylonCommand(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  if (positionals.length !== 1) throw new UsageError('babylon needs exactly one config file');
  const cfg = parseBabylonConfig(loadConfig(positionals[0], options));
  const r = await runBabylon(cfg, (line) => console.log(line));
  const e = r.eval;
  console.log(
    `held-out P&L per LM trader-hour (${e.interval}): initial ${fmtI(e.initial)}, trained ${fmtI(e.trained)}, difference ${fmtI(e.difference)}`,
  );
  console.log(`wrote ${join(cfg.out_dir, 'results.json')} and ${join(cfg.out_dir, 'report.html')}`);
  return 0;
}

const fmtI = (x: PnlInterval) => `${x.mean.toFixed(2)} [${x.lo.toFixed(2)}, ${x.hi.toFixed(2)}]`;
const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

function strategiesOf(cfg: BabylonConfig): StrategyName[] {
  const names = cfg.agents.scripted.split(',').map((s) => s.trim());
  for (const n of names)
    if (!(n in STRATEGIES))
      throw new ConfigError('agents.scripted', `unknown strategy ${JSON.stringify(n)} (strategies: ${Object.keys(STRATEGIES).join(', ')})`);
  if (names.length + cfg.agents.lm < cfg.loop.min_agents)
    throw new ConfigError(
      'loop.min_agents',
      `${names.length} scripted + ${cfg.agents.lm} LM traders can never make a window of ${cfg.loop.min_agents} agents`,
    );
  return names as StrategyName[];
}

const scripted = (names: readonly StrategyName[], seed: number, paceMs: number): Agent[] =>
  names.map((n, i) => STRATEGIES[n]({ id: n, paceMs, seed: seed + i }));

const messagesOf = (prompt: string): ChatMessage[] => [
  { role: 'system', content: DEFAULT_TRADER_SYSTEM },
  { role: 'user', content: prompt },
];

/** Scripted traders' decisions as SFT records: the endpoint's prompt for their observation -> their action line. */
async function sftRecords(cfg: BabylonConfig, names: readonly StrategyName[], seed: number, hours: number) {
  const market = new Market({ ...(cfg.market as object), seed });
  const records: { prompt: string; completion: string }[] = [];
  const sim = new Simulation(market);
  for (const agent of scripted(names, seed, cfg.agents.pace_ms))
    sim.add({
      id: agent.id,
      paceMs: agent.paceMs,
      async act(obs) {
        const out = await agent.act(obs);
        const text = typeof out === 'string' ? out : actionText(out as Action | null);
        if (text) records.push({ prompt: renderChat(messagesOf(renderPrompt(obs))), completion: ` ${text}` });
        return out;
      },
    });
  await sim.run(hours * HOUR);
  return records;
}

/** A percentile bootstrap interval (95%) of the mean. */
export function bootstrapMean(xs: readonly number[], resamples: number, seed: number): PnlInterval {
  const rng = new Rng(seed);
  const means: number[] = [];
  for (let b = 0; b < resamples && xs.length > 0; b++) {
    let s = 0;
    for (let i = 0; i < xs.length; i++) s += xs[rng.int(xs.length)];
    means.push(s / xs.length);
  }
  means.sort((a, b) => a - b);
  const at = (q: number) => (means.length ? means[Math.min(means.length - 1, Math.floor(q * means.length))] : 0);
  return { mean: mean(xs), lo: at(0.025), hi: at(0.975), n: xs.length };
}

const isLm = (agentId: string) => /^lm-\d+$/.test(agentId);
const lmIds = (cfg: BabylonConfig) => Array.from({ length: cfg.agents.lm }, (_, k) => `lm-${k}`);

/** For tests: called after each window is archived, as an interruption would strike. */
export interface BabylonHooks {
  afterWindow?(windowId: string, iteration: number): void | Promise<void>;
}

export async function runBabylon(
  cfg: BabylonConfig,
  log: (line: string) => void = () => {},
  hooks: BabylonHooks = {},
): Promise<BabylonResults> {
  const t0 = performance.now();
  const names = strategiesOf(cfg);
  const out = resolve(cfg.out_dir);
  mkdirSync(join(out, 'sft-data'), { recursive: true });
  // Only an archive that outlives the process can say where an interrupted run stopped.
  const resumable = cfg.archive !== 'memory';
  const rerun = earlierRun(out, cfg, resumable);

  // 1. The market, the archive, and where the loop starts.
  const market = new Market({ ...(cfg.market as object), seed: cfg.seed });
  const clock = () => market.timeOf(market.now);
  const archive = await openArchive(cfg.archive, { windowHours: 1, now: clock });
  let closeAll = () => archive.close();
  try {
    const resume = resumable ? await lastFinished(archive, out) : null;
    const done = Math.min(resume?.iteration ?? 0, cfg.loop.iterations);
    if (resumable) {
      const cut = windowIdOf(market, done * cfg.loop.hours * HOUR);
      // Windows this out_dir's runs did not record belong to another loop: never discard those.
      const held = rerun ? [] : await archive.windowsWithAgents(1, { from: cut });
      if (held.length > 0)
        throw new ConfigError(
          'archive',
          `${cfg.archive} holds windows from ${held[0].windowId} on that no run in ${out} recorded; a loop needs an archive of its own`,
        );
      const discarded = await archive.discardFrom(cut);
      if (discarded.trajectories + discarded.llmCalls > 0)
        log(`resume: discarded what an interrupted run recorded from ${cut} on (${JSON.stringify(discarded)})`);
    }
    recordConfig(out, cfg);

    // 2. The initial model: SFT on scripted traders' decisions (markets of their own seeds).
    const sft = (resumable ? readSft(out) : null) ?? (await initialModel(cfg, names, out, log));
    const iterations = resumable ? keepIterations(out, done) : [];
    const agentIds = [...names, ...lmIds(cfg)];
    if (done > 0) {
      const replayed = await restoreMarket(archive, market, agentIds, done * cfg.loop.hours * HOUR);
      log(`resume: iterations 1-${done} finished (${resume?.checkpoint}); ${replayed} archived decisions replayed into the market`);
    }

    // 3. The learner (from the last finished iteration's checkpoint when resuming) and the served
    // models: run `trader`, and `initial` kept for the evaluation.
    const grpoConfig = parseSequenceRunConfig(
      {
        run: { name: 'grpo', seed: cfg.seed, out_dir: out },
        init_from: sft.final_checkpoint,
        algo: {
          name: 'grpo',
          num_generations: 8,
          prompts_per_update: 1,
          micro_batch_size: 8,
          max_completion_length: cfg.agents.max_tokens,
          reward_weights: { judge: 1 },
          ...(cfg.algo as object),
        },
        train: { total_updates: cfg.loop.iterations * cfg.loop.hours, threads: cfg.threads },
      },
      { env: false },
    );
    const learnerOf = (runDir: string, resumeFrom?: string) =>
      SequenceLearnerRun.create(grpoConfig, { runDir: join(out, runDir), rewardComponents: ['judge'], resumeFrom });
    const bus = new MemoryBus();
    const learner = await learnerOf('grpo', done > 0 ? resume?.checkpoint : undefined);
    if (done > 0) {
      const initial = await learnerOf('initial');
      await publishSequenceVersion(bus, 'initial', initial, true);
      await initial.release();
    } else await publishSequenceVersion(bus, 'initial', learner, true);
    await publishSequenceVersion(bus, 'trader', learner, true);
    const core = new PolicyCore({ bus, logger: quiet });
    // A call the archive failed to record is missing from GRPO's rows: say so in the run's output.
    const warnings = { ...quiet, warn: (msg: string, fields?: object) => log(`warning: ${msg} ${JSON.stringify(fields ?? {})}`) };
    const server = await startOpenAiServer({ core, bus, logger: warnings, recorder: archiveCallRecorder(archive, { at: clock }) });
    const evalServer = await startOpenAiServer({ core, bus, logger: quiet });
    closeAll = async () => {
      await server.close();
      await evalServer.close();
      await core.close();
      await learner.release();
      await archive.close();
    };
    const judge: Judge = new CachedJudge(cfg.loop.judge === 'chat' ? new ChatJudge() : new HeuristicJudge(), archive.scoreCache);
    const encodePrompt = (m: { role: string; content: string }[]) => learner.tokenizer.encode(renderChat(m as ChatMessage[]));
    const lmTrader = (id: string, baseURL: string, model: string) =>
      lmAgent({
        id,
        baseURL,
        model,
        paceMs: cfg.agents.pace_ms,
        maxTokens: cfg.agents.max_tokens,
        temperature: cfg.agents.temperature,
      });

    // 4. The loop on one continuous market.
    const sim = new Simulation(market);
    for (const a of scripted(names, cfg.seed, cfg.agents.pace_ms)) sim.add(a);
    for (const id of lmIds(cfg)) sim.add(lmTrader(id, server.baseURL, 'trader'));
    const horizon = market.config.outcome_horizon_ms;
    for (let i = done; i < cfg.loop.iterations; i++) {
      const tIt = performance.now();
      const version = learner.version;
      const from = i * cfg.loop.hours * HOUR;
      const to = (i + 1) * cfg.loop.hours * HOUR;
      const scores = new Map<string, number>();
      const spreads: number[] = [];
      const lmPnl: number[] = [];
      const lmScores: number[] = [];
      const scriptedPnl: number[] = [];
      let decisions = 0;
      let refused = 0;
      let promptTokens = 0;
      let completionTokens = 0;
      for (let w = from; w < to; w += HOUR) {
        // Each window is read as soon as its outcome horizon has passed (the market keeps only
        // retain_ms of data), so the judge sees what followed every decision.
        await sim.run(w + HOUR + horizon - market.now);
        await server.endpoint.drain();
        const report = windowReport(market, w, w + HOUR);
        await archiveWindow(archive, market, report, version);
        await hooks.afterWindow?.(report.windowId, i + 1);
        const judged = await judge.score(report);
        if (judged.kind === 'scored') {
          for (const s of judged.scores) scores.set(s.id, s.score);
          const vs = judged.scores.map((s) => s.score);
          spreads.push(Math.max(...vs) - Math.min(...vs));
        } else log(`window ${report.windowId}: judge skipped it (${judged.reason})`);
        for (const t of report.trajectories) {
          if (!isLm(t.agentId)) {
            scriptedPnl.push(t.finalPnl);
            continue;
          }
          lmPnl.push(t.finalPnl);
          const s = scores.get(t.id);
          if (s !== undefined) lmScores.push(s);
          decisions += t.steps.length;
          refused += t.metrics.refused;
        }
        for (const c of await archive.llmCallsInWindow(report.windowId)) {
          promptTokens += c.promptTokens ?? 0;
          completionTokens += c.completionTokens ?? 0;
        }
      }
      const grpo = await trainOnWindows(
        archive,
        learner,
        async (_w, ts) => new Map(ts.flatMap((t) => (scores.has(t.id) ? [[t.id, scores.get(t.id) as number] as const] : []))),
        encodePrompt,
        {
          minAgents: cfg.loop.min_agents,
          target: cfg.loop.target,
          callsPerTrajectory: cfg.loop.calls_per_trajectory,
          seed: cfg.seed + i,
          from: windowIdOf(market, from),
          to: windowIdOf(market, to),
          versionPrefix: 'trader',
          metrics: { [ITERATION_METRIC]: i + 1 },
        },
      );
      if (grpo.updates.length > 0) await publishSequenceVersion(bus, 'trader', learner, false);
      const { updates, ...rest } = grpo;
      const avg = (k: string) => mean(updates.map((u) => u.metrics[k] ?? 0));
      const m: IterationMetrics = {
        iteration: i + 1,
        version,
        windows: spreads.length,
        judge_spread: mean(spreads),
        lm_pnl_mean: mean(lmPnl),
        lm_score_mean: mean(lmScores),
        scripted_pnl_mean: mean(scriptedPnl),
        lm_refused_frac: decisions ? refused / decisions : 0,
        lm_decisions: decisions,
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        grpo: { ...rest, loss: avg('loss'), kl: avg('kl'), ratio_mean: avg('ratio_mean'), reward_std: avg('reward_std') },
        seconds: (performance.now() - tIt) / 1000,
      };
      iterations.push(m);
      appendIteration(out, m);
      log(
        `iteration ${m.iteration}: v${version} LM P&L ${m.lm_pnl_mean.toFixed(2)} score ${m.lm_score_mean.toFixed(3)} refused ${(100 * m.lm_refused_frac).toFixed(0)}% spread ${m.judge_spread.toFixed(3)} | GRPO ${grpo.trainedWindows} windows ${grpo.rows} rows loss ${m.grpo.loss.toFixed(4)} -> ${grpo.version ?? 'no update'} (${m.seconds.toFixed(1)} s)`,
      );
    }

    // 5. Held-out markets: the initial and the trained model each in its own market of every seed.
    const evalSeeds = Array.from({ length: cfg.eval.seeds }, (_, s) => cfg.seed + 1000 + s);
    const pnl = await heldOutPnl({
      seeds: evalSeeds,
      hours: cfg.eval.hours,
      market: (seed) => new Market({ ...(cfg.market as object), seed }),
      agents: (seed, model) => [
        ...scripted(names, seed, cfg.agents.pace_ms),
        ...lmIds(cfg).map((id) => lmTrader(id, evalServer.baseURL, model === 'initial' ? 'initial' : 'trader')),
      ],
      lmIds: lmIds(cfg),
    });
    const share = ([wrong, all]: [number, number]) => (all ? wrong / all : 0);
    const B = cfg.eval.bootstrap;
    const results: BabylonResults = {
      config: cfg,
      sft,
      resumed_after: done,
      iterations,
      eval: {
        seeds: evalSeeds,
        interval: `95% percentile bootstrap (${B} resamples) of the mean over LM trader-hours; each model in its own market of every seed under the training-time trader names; difference paired by seed, hour and trader index`,
        initial: { ...bootstrapMean(pnl.initial, B, cfg.seed), refused_frac: share(pnl.refused.initial) },
        trained: { ...bootstrapMean(pnl.trained, B, cfg.seed + 1), refused_frac: share(pnl.refused.trained) },
        difference: bootstrapMean(pnl.difference, B, cfg.seed + 2),
      },
      seconds: (performance.now() - t0) / 1000,
    };
    writeFileSync(join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(out, 'report.html'), reportPage(results));
    return results;
  } finally {
    await closeAll();
  }
}

/** SFT on scripted traders' decisions in markets of their own seeds; the outcome is kept in out_dir/sft.json. */
async function initialModel(
  cfg: BabylonConfig,
  names: readonly StrategyName[],
  out: string,
  log: (line: string) => void,
): Promise<SftOutcome> {
  const tSft = performance.now();
  const train = await sftRecords(cfg, names, cfg.seed + 10_000, cfg.sft.hours);
  const val = (await sftRecords(cfg, names, cfg.seed + 20_000, 1)).slice(0, 32);
  const jsonl = (rs: object[]) => rs.map((r) => JSON.stringify(r)).join('\n');
  writeFileSync(join(out, 'sft-data', 'train.jsonl'), jsonl(train));
  writeFileSync(join(out, 'sft-data', 'val.jsonl'), jsonl(val));
  const sft = await runSft(
    parseSftConfig({
      run: { name: 'sft', seed: cfg.seed, out_dir: out },
      data: { dir: join(out, 'sft-data'), train: 'train.jsonl', eval: 'val.jsonl', overflow: 'truncate', max_eval_examples: 32 },
      tokenizer: { kind: 'bpe', vocab_size: cfg.model.vocab_size },
      model: { ...cfg.model, vocab_size: 0, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 },
      train: {
        max_steps: cfg.sft.steps,
        lr: cfg.sft.lr,
        warmup_steps: Math.min(10, cfg.sft.steps - 1),
        micro_batch_size: cfg.sft.micro_batch_size,
        max_new_tokens: cfg.agents.max_tokens,
        log_every: Math.max(1, Math.floor(cfg.sft.steps / 5)),
        threads: cfg.threads,
      },
    }),
    { onLine: (l) => log(`sft ${JSON.stringify(l)}`) },
  );
  log(`sft: ${train.length} examples, ${sft.updates} updates in ${sft.seconds.toFixed(1)} s -> ${sft.final_checkpoint}`);
  const outcome = { examples: train.length, final_checkpoint: sft.final_checkpoint, seconds: (performance.now() - tSft) / 1000 };
  writeSft(out, outcome);
  return outcome;
}

/** One window into the archive: every agent's trajectory (steps, P&L) and every asset's outcome. */
async function archiveWindow(
  archive: Awaited<ReturnType<typeof openArchive>>,
  market: Market,
  report: WindowReport,
  version: number,
): Promise<void> {
  for (const t of report.trajectories)
    await archive.recordTrajectory({
      id: t.id,
      agentId: t.agentId,
      startedAt: market.timeOf(report.fromMs),
      endedAt: market.timeOf(report.toMs),
      steps: t.steps.map((s) => ({ observation: { time: s.time, equity: s.equity }, action: s.action, reward: 0, at: s.time })),
      finalPnl: t.finalPnl,
      metadata: { ...t.metrics },
      modelVersion: isLm(t.agentId) ? `trader@v${version}` : t.agentId,
    });
  for (const a of report.context.assets)
    await archive.recordMarketOutcome({
      windowId: report.windowId,
      asset: a.asset,
      startPrice: a.startPrice,
      endPrice: a.endPrice,
      events: a.events.map((e) => ({ time: e.time, kind: e.kind, size: e.size, headline: e.headline })),
    });
}
