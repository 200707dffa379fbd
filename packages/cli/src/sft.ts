/**
 * `rlmesh sft <config.yaml>`: supervised fine-tuning of a GPT-2-architecture model on
 * prompt/completion JSONL (services/learner/src/sft). Bad configs, data and checkpoints print one
 * line and exit 2.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, UsageError } from './args';
import { loadConfig } from './main';
import { Progress } from './progress';

export const SFT_USAGE = `rlmesh sft <config.yaml> [--section.key value ...] [--resume <checkpoint dir>]
    Supervised fine-tuning of a GPT-2-architecture model on prompt/completion JSONL (loss on the
    completion tokens only): writes runs/<name>/metrics.jsonl, evaluations (loss, exact match) per
    split, and Hugging Face GPT-2 checkpoints with their tokenizer. For the card game, write the data
    first: rlmesh data cards --out data/cards --seed 0. --resume continues from checkpoints/step_<n>.`;

export async function sftCommand(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  if (positionals.length !== 1) throw new UsageError('sft needs exactly one config file');
  const { resume, ...overrides } = options;
  if (resume !== undefined && !existsSync(join(resume, 'trainer_state.json')))
    throw new UsageError(`--resume: ${resume} is not a checkpoint written by rlmesh sft (no trainer_state.json)`);
  return sftFromConfig(loadConfig(positionals[0], overrides), resume);
}

/** Runs SFT on a loaded config (rlmesh sft, and rlmesh experiment's sft stage), printing its progress. */
export async function sftFromConfig(raw: Record<string, unknown>, resume?: string): Promise<number> {
  // Loaded lazily so that usage and config errors do not pay for onnxruntime start-up.
  const { parseSftConfig, runSft } = await import('@rlmesh/learner');
  const cfg = parseSftConfig(raw);
  let bar: Progress | null = null;
  let last: Record<string, string> = {};
  try {
    const summary = await runSft(cfg, {
      resumeFrom: resume,
      onStart: (s) => {
        console.log(
          `rlmesh sft: ${cfg.run.name}: ${s.architecture} ${cfg.init_from ? `from ${cfg.init_from}` : 'from scratch'} with ${s.parameters} parameters, ` +
            `vocabulary ${s.vocabSize}, ${s.trainExamples} training examples, ${s.total} updates` +
            (s.start > 0 ? `, resuming at update ${s.start}` : ''),
        );
        bar = new Progress(s.total, cfg.run.name);
      },
      onLine: (line) => {
        if (line.kind === 'train') {
          last = {
            loss: line.metrics.loss.toFixed(4),
            lr: line.metrics.lr.toExponential(2),
            'tok/s': line.metrics.tokens_per_s.toFixed(0),
          };
          bar?.update(line.update, last);
        } else {
          const m = line.metrics;
          process.stderr.write(
            `  eval ${line.split.padEnd(20)} update ${String(line.update).padStart(6)}  loss ${m.loss.toFixed(4)}  exact match ${(100 * m.exact_match).toFixed(1)}% (n ${m.n})\n`,
          );
        }
      },
    });
    console.log(`done: ${summary.updates} updates (${summary.epochs.toFixed(2)} epochs) in ${summary.seconds.toFixed(1)} s`);
    for (const [split, m] of Object.entries(summary.eval))
      console.log(`  ${split.padEnd(20)} loss ${m.loss.toFixed(4)}  exact match ${(100 * m.exact_match).toFixed(2)}% (n ${m.n})`);
    console.log(`checkpoint ${summary.final_checkpoint}`);
    console.log(`run directory ${summary.run_dir}`);
    return 0;
  } catch (e) {
    // A dataset, tokenizer or checkpoint the run cannot use is the user's input: one line, exit 2.
    const name = (e as Error).name;
    if (name === 'SftDataError' || name === 'TokenizerFormatError' || name === 'InvalidUtf8Error') {
      const missing = /: cannot read \(ENOENT\)$/.test((e as Error).message);
      throw new UsageError(`sft: ${(e as Error).message}${missing ? ' (the card game data: rlmesh data cards --out DIR --seed N)' : ''}`);
    }
    throw e;
  }
}
