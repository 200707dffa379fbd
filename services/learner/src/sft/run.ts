/**
 * The SFT loop, top to bottom:
 *
 *   tokenizer (trained on the training text, GPT-2's, a directory's, or the checkpoint's)
 *   -> model (GPT-2 architecture from the config, or a Hugging Face GPT-2 / Llama / Qwen2 directory) -> tokenised datasets
 *   -> for each update: k micro-batches -> summed gradient -> AdamW at the scheduled lr
 *      (linear warm-up then cosine to min_lr) -> a metrics.jsonl line every log_every updates,
 *      evaluation (loss, exact match per split) and checkpoints at their intervals and at the end.
 *
 * runs/<name>/ holds config.json (this config, resolved), metrics.jsonl (one JSON line per logged
 * update, `kind: "train"`, and per evaluated split, `kind: "eval"`), checkpoints/step_<n>/ (Hugging
 * Face GPT-2 directories with tokenizer and optimizer state) and summary.json. A resumed run
 * continues from a checkpoint's update with the same data order and learning rate as the
 * uninterrupted run, and metrics.jsonl keeps the lines up to that update.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, Rng } from '@rlmesh/core';
import { initParameters, mergeLora, ParamLayout, scheduledLr } from '@rlmesh/graph';
import { gpt2Tokenizer, loadTokenizer, type Tokenizer, trainBpe } from '@rlmesh/text';
import type { CausalLm } from '../models/causal-lm';
import { checkGpt2Config, type Gpt2Config, Gpt2LMHeadModel } from '../models/gpt2';
import { Gpt2Generator } from '../models/gpt2-generate';
import { causalLmArchitecture, causalLmContextKey } from '../models/hf-causal-lm';
import { loadLoraState, loraOf, loraTrained, saveLoraCheckpoint, withLora } from '../run/lora';
import { loadCausalLmCheckpoint, saveCausalLmCheckpoint } from './checkpoint';
import { evalFiles, evalName, type SftConfig } from './config';
import { collate, EpochSampler, readSftJsonl, type SftRecord, tokenizeRecords } from './data';
import { evaluateSplit, LossEvaluator, type SplitMetrics } from './eval';
import { SftTrainer } from './step';

export interface SftTrainLine {
  kind: 'train';
  update: number;
  epoch: number;
  seconds: number;
  metrics: Record<string, number>;
}

export interface SftEvalLine {
  kind: 'eval';
  update: number;
  split: string;
  metrics: SplitMetrics;
}

export type SftLine = SftTrainLine | SftEvalLine;

export interface SftSummary {
  run_dir: string;
  updates: number;
  total_updates: number;
  epochs: number;
  parameters: number;
  train_examples: number;
  seconds: number;
  final_checkpoint: string;
  /** The last evaluation of each split. */
  eval: Record<string, SplitMetrics>;
}

export interface SftRunOptions {
  /** A checkpoint directory written by an SFT run (checkpoints/step_<n>). */
  resumeFrom?: string;
  onLine?: (line: SftLine) => void;
  /** Called once the data, tokenizer and model are ready, before the first update. */
  onStart?: (info: {
    start: number;
    total: number;
    /** GPT-2, Llama, Qwen2 or Qwen3. */
    architecture: string;
    parameters: number;
    trainExamples: number;
    vocabSize: number;
  }) => void;
}

/** The tokenizer a fresh run uses; EOS is required (it ends completions), PAD falls back to EOS. */
function makeTokenizer(cfg: SftConfig, train: readonly SftRecord[]): Tokenizer {
  const t = cfg.tokenizer;
  if (t.kind === 'gpt2') return gpt2Tokenizer();
  if (t.kind === 'dir') return loadTokenizer(t.path);
  return trainBpe(
    train.flatMap((r) => [r.prompt, r.completion]),
    { vocab_size: t.vocab_size, min_frequency: t.min_frequency },
  );
}

/** The model config of a fresh run: the model section, with the tokenizer's vocabulary and special ids filled in. */
function modelConfig(cfg: SftConfig, tok: Tokenizer): Gpt2Config {
  const m = { ...cfg.model };
  if (m.vocab_size === 0) m.vocab_size = tok.vocabSize;
  if (m.vocab_size < tok.vocabSize)
    throw new ConfigError('model.vocab_size', `must hold the tokenizer's ${tok.vocabSize} ids, got ${m.vocab_size}`);
  if (m.bos_token_id === -1 && tok.bosId !== null) m.bos_token_id = tok.bosId;
  if (m.eos_token_id === -1 && tok.eosId !== null) m.eos_token_id = tok.eosId;
  if (m.pad_token_id === -1 && tok.padId !== null) m.pad_token_id = tok.padId;
  checkGpt2Config(m);
  return m;
}

/** A checkpoint that cannot be read is a bad setting: the error names the key that pointed at it. */
async function loadCheckpoint(dir: string, resumable: boolean, key: string) {
  try {
    return await loadCausalLmCheckpoint(dir, resumable);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(key, (e as Error).message);
  }
}

export function sftTotalUpdates(cfg: SftConfig, trainSize: number): number {
  if (cfg.train.max_steps > 0) return cfg.train.max_steps;
  const perEpoch = Math.ceil(trainSize / cfg.train.micro_batch_size);
  return Math.ceil((cfg.train.epochs * perEpoch) / cfg.train.grad_accum);
}

export async function runSft(cfg: SftConfig, opts: SftRunOptions = {}): Promise<SftSummary> {
  const started = Date.now();
  const t = cfg.train;
  const runDir = join(cfg.run.out_dir, cfg.run.name);
  const dataPath = (f: string) => (cfg.data.dir ? join(cfg.data.dir, f) : f);
  const trainFile = dataPath(cfg.data.train);
  const trainRecords = readSftJsonl(trainFile, cfg.data.max_train_examples);
  const evalSets = evalFiles(cfg).map((f) => ({ name: evalName(f), file: dataPath(f) }));
  const evalRecords = evalSets.map((s) => readSftJsonl(s.file, cfg.data.max_eval_examples));

  // Model, parameters and tokenizer: a checkpoint's, a Hugging Face directory's, or new. With LoRA
  // the base is always init_from (frozen) and a checkpoint holds the adapters' state (run/lora.ts).
  const lora = loraOf(cfg.lora);
  const resume = opts.resumeFrom && !lora ? await loadCheckpoint(opts.resumeFrom, true, 'resume') : null;
  const init = !resume && cfg.init_from ? await loadCheckpoint(cfg.init_from, false, 'init_from') : null;
  const loaded = resume ?? init;
  const tokenizer = loaded ? loaded.tokenizer : makeTokenizer(cfg, trainRecords);
  // A directory's model keeps its own architecture (GPT-2, Llama, Qwen2); a new one is the model section's GPT-2.
  const model: CausalLm = loaded ? loaded.model : new Gpt2LMHeadModel(modelConfig(cfg, tokenizer));
  const context = model.dims.context;
  const eosId = tokenizer.eosId;
  if (eosId === null) throw new ConfigError('tokenizer', 'has no EOS token; SFT ends every completion with it');
  const padId = tokenizer.padId ?? eosId;
  const maxLength = cfg.data.max_length || context;
  if (maxLength > context)
    throw new ConfigError('data.max_length', `must be <= the model context ${causalLmContextKey(model)} (${context}), got ${maxLength}`);
  const tokenize = (records: readonly SftRecord[], file: string) =>
    tokenizeRecords(records, tokenizer, file, { maxLength, overflow: cfg.data.overflow, eosId });
  const train = tokenize(trainRecords, trainFile);
  const evals = evalSets.map((s, i) => ({ ...s, examples: tokenize(evalRecords[i], s.file) }));

  const params = loaded ? loaded.params : initParameters(model, new Rng(cfg.run.seed));
  const adapted = lora ? withLora(model, lora, params, cfg.run.seed) : null;
  const trainer = await SftTrainer.create(
    adapted?.model ?? model,
    adapted?.params ?? params,
    { beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weight_decay, maxGradNorm: t.max_grad_norm },
    t.threads,
    lora ? (n) => !loraTrained(n) : undefined,
  );
  if (resume?.trainer) trainer.restore(resume.trainer.state);
  if (lora && opts.resumeFrom) trainer.restore(await loadLoraState(opts.resumeFrom, trainer.layout.total));
  // The model's own weights: with LoRA, the base with the adapters merged in.
  const weights = () => (lora && adapted ? mergeLora(trainer.parameters(), lora, adapted.names) : trainer.parameters());
  const lossEval = await LossEvaluator.create(model, t.threads);

  const total = sftTotalUpdates(cfg, train.length);
  const sampler = new EpochSampler(train.length, t.micro_batch_size, cfg.run.seed);
  const schedule = { kind: 'cosine' as const, lr: t.lr, totalSteps: total, warmupSteps: t.warmup_steps, minLr: t.min_lr };
  const updatesPerEpoch = sampler.batchesPerEpoch / t.grad_accum;
  const start = trainer.stepCount;

  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  const metricsPath = join(runDir, 'metrics.jsonl');
  keepLinesUpTo(metricsPath, start, opts.resumeFrom);
  const log = (line: SftLine) => {
    appendFileSync(metricsPath, `${JSON.stringify(line)}\n`);
    opts.onLine?.(line);
  };

  opts.onStart?.({
    start,
    total,
    architecture: causalLmArchitecture(model),
    parameters: model.parameterCount(),
    trainExamples: train.length,
    vocabSize: model.dims.vocabSize,
  });
  const lastEval: Record<string, SplitMetrics> = {};
  const evaluate = async (update: number) => {
    const named = weights();
    const flat = lora ? new ParamLayout(model).pack(named) : trainer.snapshot().params;
    const gen = await Gpt2Generator.create(model, named, { threads: t.threads });
    try {
      for (const s of evals) {
        const m = await evaluateSplit(gen, flat, lossEval, s.examples, {
          tokenizer,
          eosId,
          padId,
          maxNewTokens: t.max_new_tokens,
          batchSize: t.eval_batch_size,
        });
        lastEval[s.name] = m;
        log({ kind: 'eval', update, split: s.name, metrics: m });
      }
    } finally {
      await gen.release();
    }
  };
  const checkpoint = async (update: number) => {
    const dir = join(runDir, 'checkpoints', `step_${update}`);
    if (lora)
      await saveLoraCheckpoint(dir, {
        saved: model,
        merged: weights(),
        tokenizer,
        lora,
        baseModel: cfg.init_from,
        trained: trainer.parameters(),
        state: trainer.snapshot(),
      });
    else await saveCausalLmCheckpoint(dir, model, tokenizer, trainer.snapshot(), { total_steps: total, seed: cfg.run.seed });
    return dir;
  };

  let finalCheckpoint = '';
  try {
    let window: Record<string, number>[] = [];
    let windowStart = Date.now();
    for (let u = start; u < total; u++) {
      const micro = [];
      for (let k = 0; k < t.grad_accum; k++)
        micro.push(
          collate(
            sampler.microBatch(u * t.grad_accum + k).map((i) => train[i]),
            padId,
          ),
        );
      const m = await trainer.step(micro, scheduledLr(schedule, u));
      window.push(m);
      const done = u + 1;
      if (done % t.log_every === 0 || done === total) {
        const seconds = (Date.now() - windowStart) / 1000;
        log({
          kind: 'train',
          update: done,
          epoch: done / updatesPerEpoch,
          seconds: (Date.now() - started) / 1000,
          metrics: meanMetrics(window, seconds),
        });
        window = [];
        windowStart = Date.now();
      }
      const epochEnd = Math.floor(done / updatesPerEpoch) > Math.floor(u / updatesPerEpoch);
      if (done < total && (t.eval_every > 0 ? done % t.eval_every === 0 : epochEnd)) await evaluate(done);
      if (done < total && t.checkpoint_every > 0 && done % t.checkpoint_every === 0) await checkpoint(done);
    }
    await evaluate(total);
    finalCheckpoint = await checkpoint(total);
  } finally {
    await trainer.release();
    await lossEval.release();
  }
  const summary: SftSummary = {
    run_dir: runDir,
    updates: total - start,
    total_updates: total,
    epochs: total / updatesPerEpoch,
    parameters: model.parameterCount(),
    train_examples: train.length,
    seconds: (Date.now() - started) / 1000,
    final_checkpoint: finalCheckpoint,
    eval: lastEval,
  };
  writeFileSync(join(runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

/** Means over the window's updates, with throughput: tokens and sequences are totals, the rest means. */
function meanMetrics(window: readonly Record<string, number>[], seconds: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(window[0])) {
    const sum = window.reduce((a, m) => a + m[k], 0);
    out[k] = k === 'tokens' || k === 'sequences' ? sum : sum / window.length;
  }
  out.lr = window[window.length - 1].lr;
  out.tokens_per_s = out.tokens / Math.max(seconds, 1e-9);
  return out;
}

/**
 * A fresh run starts metrics.jsonl empty; a resumed one keeps the lines of the updates it has not
 * redone, from its own file or, in a new run directory, from the checkpoint's run.
 */
export function keepLinesUpTo(path: string, update: number, checkpoint?: string): void {
  const source = existsSync(path) ? path : checkpoint ? join(checkpoint, '..', '..', 'metrics.jsonl') : '';
  if (update === 0 || !source || !existsSync(source)) {
    writeFileSync(path, '');
    return;
  }
  const kept = readFileSync(source, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && (JSON.parse(l) as SftLine).update <= update);
  writeFileSync(path, kept.map((l) => `${l}\n`).join(''));
}
