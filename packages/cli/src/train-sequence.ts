/**
 * `rlmesh train <config>` when the config's env is a text env: RL on token sequences (GRPO) from a
 * Hugging Face GPT-2 checkpoint, embedded (services/learner/src/run/sequence-run.ts). A bad config,
 * checkpoint or tokenizer file prints one line and exits 2.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './args';
import { Progress } from './progress';

export async function trainSequenceCommand(raw: Record<string, unknown>, resume: string | undefined): Promise<number> {
  if (resume !== undefined && !existsSync(join(resume, 'rl_state.json')))
    throw new UsageError(`--resume: ${resume} is not a checkpoint written by a sequence run (no rl_state.json)`);
  const { parseSequenceRunConfig, sequenceAlgorithmSpec, trainSequences } = await import('@rlmesh/learner');
  const cfg = parseSequenceRunConfig(raw);
  const shown = sequenceAlgorithmSpec(cfg.algo.name).progressMetrics;
  let bar: Progress | null = null;
  try {
    const s = await trainSequences(cfg, {
      resumeFrom: resume,
      onStart: (i) => {
        console.log(
          `rlmesh train: ${cfg.algo.name} on ${cfg.env.id} from ${cfg.init_from} (GPT-2, ${i.parameters} parameters), ` +
            `${i.prompts} prompts x ${i.generations} completions per update, ${i.total} updates, seed ${cfg.run.seed}` +
            (i.start > 0 ? `, resuming at update ${i.start}` : ''),
        );
        bar = new Progress(i.total, cfg.run.name);
      },
      onUpdate: (r) => {
        const fields: Record<string, string> = { success: `${(100 * r.success_mean).toFixed(1)}%` };
        for (const m of shown) if (r.metrics[m] !== undefined) fields[m] = r.metrics[m].toPrecision(3);
        bar?.update(r.update, fields);
      },
    });
    console.log(
      `done: ${s.updates} updates, ${s.env_steps} completions in ${s.seconds.toFixed(1)} s (${s.updates_per_s.toFixed(3)} updates/s); ` +
        `mean reward ${s.reward_start.toFixed(3)} over the first updates -> ${s.reward_end.toFixed(3)} over the last, success ${(100 * s.final_success).toFixed(1)}%`,
    );
    console.log(`checkpoint ${s.final_checkpoint}`);
    console.log(`run directory ${s.run_dir}`);
    return 0;
  } catch (e) {
    // A checkpoint or tokenizer the run cannot read is the user's input: one line, exit 2.
    const name = (e as Error).name;
    if (name === 'TokenizerFormatError' || name === 'InvalidUtf8Error') throw new UsageError(`train: ${(e as Error).message}`);
    throw e;
  }
}
