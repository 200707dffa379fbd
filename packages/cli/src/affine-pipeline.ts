/**
 * `rlmesh experiment <config>` with `pipeline: affine`: the Affine training guide's pipeline in one
 * command, on the stage machinery of the card experiment (experiment-stages.ts: resumable stages
 * keyed by the hash of their inputs, --force to re-run one).
 *
 *   data          expert demonstrations of every env (rlmesh data affine, one line per action),
 *                 joined into data/train.jsonl; each env's last episodes are data/val.jsonl
 *   init          a small Llama with freshly drawn weights and a BPE trained on train.jsonl
 *   eval_baseline the initial model on every env (the baseline: a from-scratch model has nothing
 *                 before SFT, so the baseline is the untrained model SFT starts from)
 *   sft           rlmesh sft from init (full fine-tuning: LoRA over random weights adapts nothing)
 *   eval_sft      the SFT checkpoint on every env
 *   rl_<i>        RL (ppo_seq or grpo) on each env with rl_updates > 0, in config order, each from
 *                 the last one's final checkpoint (the first from SFT's)
 *   eval_rl       the last RL checkpoint on every env
 *
 * Then results.json and report.html (affine-results.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AFFINE_STAGES, type AffinePlan, affineEvalFile, EVALUATIONS, planAffine, type Who } from './affine-config';
import { corpusOf, writeInitialLlama } from './affine-init';
import { writeAffineResults } from './affine-results';
import { UsageError } from './args';
import { dataAffineCommand } from './data-affine';
import { evalCommand } from './eval';
import { finalCheckpoint, latestCheckpoint, exitedOk as ok, StageRunner } from './experiment-stages';
import { sftFromConfig } from './sft';
import { trainSequenceCommand } from './train-sequence';

/** Of each env's demonstration episodes, the last this fraction (at least one) are SFT's val set. */
const VAL_FRACTION = 0.05;

interface TurnRecord {
  env: string;
  seed: number;
  prompt: string;
  completion: string;
}

const readRecords = (file: string): TurnRecord[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as TurnRecord);

/** data/train.jsonl and data/val.jsonl from the envs' files: an env's last episodes by seed go to val. */
function joinDemonstrations(plan: AffinePlan): { train: number; val: number } {
  const train: string[] = [];
  const val: string[] = [];
  for (const e of plan.envs) {
    const held = Math.max(1, Math.round(VAL_FRACTION * e.demonstrations));
    const firstVal = plan.cfg.seed + e.demonstrations - held;
    for (const r of readRecords(join(plan.dataDir, `${e.id}.jsonl`)))
      (r.seed >= firstVal ? val : train).push(
        `${JSON.stringify({ env: r.env, seed: r.seed, prompt: r.prompt, completion: r.completion })}\n`,
      );
  }
  writeFileSync(join(plan.dataDir, 'train.jsonl'), train.join(''));
  writeFileSync(join(plan.dataDir, 'val.jsonl'), val.join(''));
  return { train: train.length, val: val.length };
}

export async function affinePipelineCommand(
  configPath: string,
  overrides: Record<string, string>,
  forced: ReadonlySet<string>,
): Promise<number> {
  for (const s of forced)
    if (!(AFFINE_STAGES as readonly string[]).includes(s))
      throw new UsageError(`--force: unknown stage ${JSON.stringify(s)} (stages: ${AFFINE_STAGES.join(', ')})`);
  const plan = await planAffine(configPath, overrides);
  const { cfg } = plan;
  mkdirSync(plan.evalDir, { recursive: true });
  writeFileSync(plan.suiteFile, `${JSON.stringify(plan.suite, null, 2)}\n`);
  const runner = new StageRunner(join(cfg.out_dir, 'experiment.json'), resolve(configPath), forced, 'rlmesh experiment');
  const records = runner.records;
  const stage = runner.stage.bind(runner);
  const started = Date.now();

  const dataInputs = { seed: cfg.seed, envs: plan.envs.map((e) => ({ id: e.id, options: e.options, n: e.demonstrations })) };
  await stage(
    'data',
    dataInputs,
    () => existsSync(join(plan.dataDir, 'train.jsonl')) && existsSync(join(plan.dataDir, 'val.jsonl')),
    async () => {
      for (const e of plan.envs)
        ok(
          await dataAffineCommand({
            env: e.id,
            out: plan.dataDir,
            seed: String(cfg.seed),
            n: String(e.demonstrations),
            form: 'turns',
            options: JSON.stringify(e.options),
          }),
          'data',
        );
      const n = joinDemonstrations(plan);
      console.log(`rlmesh experiment: data: ${n.train} training and ${n.val} validation turns`);
    },
  );

  const init = { model: cfg.model, vocab_size: cfg.tokenizer.vocab_size, seed: cfg.seed };
  await stage(
    'init',
    { data: records.data, init },
    () => existsSync(join(plan.initDir, 'config.json')),
    async () => {
      const params = await writeInitialLlama(plan.initDir, corpusOf([join(plan.dataDir, 'train.jsonl')]), init);
      console.log(`rlmesh experiment: init: a Llama of ${params} parameters with fresh weights in ${plan.initDir}`);
    },
  );

  const evaluate = async (who: Who, checkpoint: string, after: unknown) => {
    const e = EVALUATIONS.find((x) => x.who === who);
    if (!e) throw new Error(`no evaluation ${who}`);
    await stage(
      e.stage,
      { after, suite: plan.suite },
      () => existsSync(affineEvalFile(plan, who)),
      async () =>
        ok(
          await evalCommand([plan.suiteFile, '--checkpoint', checkpoint, '--label', e.label, '--out', affineEvalFile(plan, who)]),
          e.stage,
        ),
    );
  };
  await evaluate('baseline', plan.initDir, records.init);

  await stage(
    'sft',
    { init: records.init, config: plan.sftRaw },
    () => finalCheckpoint(plan.sftDir) !== null,
    async (resumeFrom) => ok(await sftFromConfig(plan.sftRaw, resumeFrom), 'sft'),
    (since) => latestCheckpoint(plan.sftDir, 'step', 'trainer_state.json', since),
  );
  const sftCheckpoint = finalCheckpoint(plan.sftDir);
  if (!sftCheckpoint) throw new Error(`experiment: the sft stage left no final checkpoint in ${plan.sftDir}`);
  await evaluate('sft', sftCheckpoint, records.sft);

  let from = sftCheckpoint;
  let previous = records.sft;
  const rlCheckpoints: Record<string, string> = {};
  for (const [i, r] of plan.rl.entries()) {
    const raw = { ...r.raw, init_from: from };
    const name = `rl_${i}`;
    await stage(
      name,
      { from: previous, config: raw },
      () => finalCheckpoint(r.dir) !== null,
      async (resumeFrom) => ok(await trainSequenceCommand(raw, resumeFrom), name),
      (since) => latestCheckpoint(r.dir, 'update', 'rl_state.json', since),
    );
    const ckpt = finalCheckpoint(r.dir);
    if (!ckpt) throw new Error(`experiment: the ${name} stage (${r.env}) left no final checkpoint in ${r.dir}`);
    rlCheckpoints[r.env] = ckpt;
    from = ckpt;
    previous = records[name];
  }
  if (plan.rl.length > 0) await evaluate('rl', from, previous);

  const { results, resultsFile, reportFile } = writeAffineResults(plan, { baseline: plan.initDir, sft: sftCheckpoint, rl: rlCheckpoints });
  for (const line of results.table_text) console.log(line);
  console.log(`results ${resultsFile}`);
  console.log(`report ${reportFile}`);
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}
