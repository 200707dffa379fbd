/**
 * `rlmesh sae hooks | capture | train`: a policy's hook points, offline activation capture into an
 * activation store, and SAE training on a store (the SAE service's own Train, run in this process,
 * writing <root>/saes/<id>). Bad arguments and unusable inputs print one line and exit 2.
 */
import { existsSync, statSync } from 'node:fs';
import { parseArgs, UsageError } from './args';

export const SAE_USAGE = `rlmesh sae hooks --checkpoint <policy file | GPT-2 dir>
  rlmesh sae capture --checkpoint <policy file | GPT-2 dir> --hook NAME (--episodes N [--env ID] [--level L] [--seed S] | --data FILE.jsonl) --out DIR
  rlmesh sae train --activations DIR [--root DIR] [--id ID] [--steps N] [--batch-size N] [--config.key value ...]
  rlmesh sae loss-recovered --checkpoint <policy file | GPT-2 dir> --sae DIR --activations DIR [--rows N]
  rlmesh sae follow --nats URL --run ID --hook NAME [--root DIR] [--id ID] [--steps N] [--batch-size N] [--warmup-rows N] [--config.key value ...]
    hooks lists the hook points of a trained policy (a checkpoint or a run's model.safetensors, or a
    GPT-2 directory) with their shapes. capture runs the policy over episodes of its env at curriculum level L (default 0;
    actions sampled from it; --env names another) or over JSONL lines {"obs": [...], "labels": {...}}
    (for a GPT-2 directory: {"prompt" or "text": "...", "labels": {...}}, as rlmesh data cards writes,
    one row per token) and writes DIR/activations.safetensors (F32 [rows, d]) and DIR/context.jsonl
    (one line per row). train trains an SAE on a store (path
    relative to --root, default .) with SAELens's config keys (--config.architecture topk --config.k 20
    --config.d_sae 256 ...), writes <root>/saes/<id> in SAELens's layout with rlmesh_sae.json
    (metrics on held-out rows) and analysis.json, and prints the metrics. loss-recovered splices an SAE
    (a directory in SAELens's layout) into the policy at the store's hook and prints the policy's loss
    (cross-entropy against its clean action distribution, or next-token distribution at every token)
    clean, with the SAE and zero-ablated, on the store's first N rows (default 4096), and the
    fraction recovered. follow trains an SAE on the activation batches a mesh run's learner publishes
    (a run started with mesh.capture_hooks naming the hook) as they arrive, and stores it as train does.`;

function int(options: Record<string, string>, key: string, fallback?: number): number | undefined {
  const raw = options[key];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`sae: --${key}: must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

function only(options: Record<string, string>, allowed: readonly string[], sub: string): void {
  for (const k of Object.keys(options))
    if (!allowed.includes(k) && !(sub === 'train' && k.startsWith('config.')))
      throw new UsageError(`sae ${sub}: unknown option --${k} (known: ${allowed.map((a) => `--${a}`).join(', ')})`);
}

function need(options: Record<string, string>, key: string, sub: string): string {
  const v = options[key];
  if (!v) throw new UsageError(`sae ${sub}: --${key} is required`);
  return v;
}

/** `--config.k 20` -> { k: 20 }: numbers and booleans as such, other values as strings. */
function configOverrides(options: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (!k.startsWith('config.')) continue;
    out[k.slice('config.'.length)] = v === 'true' ? true : v === 'false' ? false : v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

/** An input the command cannot use is the user's: one line, exit 2. */
async function asUsage<T>(sub: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const err = e as Error & { code?: number };
    if (err.name === 'ConfigError') throw e;
    throw new UsageError(`sae ${sub}: ${err.message}`);
  }
}

export async function saeCommand(argv: readonly string[]): Promise<number> {
  const { positionals, options } = parseArgs(argv);
  const sub = positionals[0];
  if (positionals.length !== 1 || !['hooks', 'capture', 'train', 'loss-recovered', 'follow'].includes(sub))
    throw new UsageError(`sae needs one of hooks, capture, train, loss-recovered, follow\n${SAE_USAGE}`);
  if (sub === 'follow') return (await import('./sae-follow')).saeFollow(options, configOverrides(options));
  if (sub === 'loss-recovered') {
    only(options, ['checkpoint', 'sae', 'activations', 'rows'], sub);
    const [checkpoint, saeDir, activations] = ['checkpoint', 'sae', 'activations'].map((k) => need(options, k, sub));
    const limit = int(options, 'rows', 4096) as number;
    const { loadPolicyFile } = await import('@rlmesh/learner');
    const { gpt2Policy, loadSaeLens, lossRecovered, openGpt2Directory, readActivationStore } = await import('@rlmesh/sae');
    const r = await asUsage(sub, async () => {
      const store = await readActivationStore(activations);
      const seen = store.observations;
      if (!seen) throw new Error(`${activations} holds no observations (it was not written by rlmesh sae capture)`);
      const rows = Math.min(limit, store.rows);
      const obs = seen.data.subarray(0, rows * seen.d);
      let policy: Parameters<typeof lossRecovered>[0];
      if (existsSync(checkpoint) && statSync(checkpoint).isDirectory()) {
        const g = await openGpt2Directory(checkpoint);
        policy = { model: gpt2Policy(g.config, seen.d, g.padId), params: g.params };
      } else policy = await loadPolicyFile(checkpoint);
      return lossRecovered(policy, store.metadata.hook ?? '', await loadSaeLens(saeDir), obs, rows);
    });
    console.log(
      `loss (cross-entropy to the clean policy) on ${r.rows} observations or positions: clean ${r.clean.toFixed(4)}  sae ${r.sae.toFixed(4)}  zero-ablated ${r.zero.toFixed(4)}  recovered ${r.recovered.toFixed(4)}  KL ${r.kl.toExponential(3)}`,
    );
    return 0;
  }
  if (sub === 'hooks') {
    only(options, ['checkpoint'], sub);
    const checkpoint = need(options, 'checkpoint', sub);
    const { loadPolicyFile, modelHooks } = await import('@rlmesh/learner');
    const { gpt2DirectoryHooks } = await import('@rlmesh/sae');
    // A directory is a GPT-2 checkpoint in Hugging Face's layout, its positions up to n_positions.
    const dir = existsSync(checkpoint) && statSync(checkpoint).isDirectory();
    const hooks = await asUsage(sub, async () =>
      dir ? gpt2DirectoryHooks(checkpoint) : modelHooks((await loadPolicyFile(checkpoint)).model),
    );
    for (const h of hooks) console.log(`${h.name.padEnd(36)} [${h.shape.join(', ')}]`);
    return 0;
  }
  if (sub === 'capture') {
    only(options, ['checkpoint', 'hook', 'env', 'episodes', 'level', 'seed', 'data', 'out'], sub);
    const checkpoint = need(options, 'checkpoint', sub);
    const hook = need(options, 'hook', sub);
    const out = need(options, 'out', sub);
    const episodes = int(options, 'episodes');
    if (options.data !== undefined) {
      if (options.episodes !== undefined || options.env !== undefined || options.level !== undefined)
        throw new UsageError('sae capture: --data and --env/--episodes exclude each other');
    } else if (!episodes)
      throw new UsageError('sae capture: give --episodes N >= 1 (with --env ID to play another env) or --data FILE.jsonl');
    const { captureActivations } = await import('@rlmesh/sae');
    const source = options.data
      ? { data: options.data }
      : { env: { id: options.env, episodes: episodes as number, seed: int(options, 'seed', 0), level: int(options, 'level', 0) } };
    const r = await asUsage(sub, () => captureActivations(checkpoint, hook, source, out));
    console.log(`captured ${r.rows} rows of ${r.hook} (d ${r.d}) into ${r.dir}`);
    return 0;
  }
  only(options, ['activations', 'root', 'id', 'steps', 'batch-size'], sub);
  const activations = need(options, 'activations', sub);
  const { SaeServiceCore } = await import('@rlmesh/sae');
  const core = await asUsage(sub, async () => new SaeServiceCore(options.root ?? '.'));
  const started = performance.now();
  const sae = await asUsage(sub, () =>
    core.train({
      activations,
      config: configOverrides(options),
      steps: int(options, 'steps'),
      batch_size: int(options, 'batch-size'),
      id: options.id,
      onProgress: (step, steps, m) =>
        process.stderr.write(
          `  step ${String(step).padStart(6)}/${steps}  loss ${m.loss.toFixed(4)}  mse ${m.mse_loss.toFixed(4)}  l0 ${m.l0.toFixed(1)}  dead ${m.dead_fraction.toFixed(3)}\n`,
        ),
    }),
  );
  await core.close();
  const m = sae.metrics;
  console.log(
    `sae ${sae.id}: ${sae.architecture}, d_in ${sae.d_in}, d_sae ${sae.d_sae}, trained in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  console.log(
    `  held-out rows ${m.rows}: l0 ${m.l0.toFixed(2)}  mse ${m.mse.toFixed(4)}  normalized_mse ${m.normalized_mse.toFixed(4)}  explained_variance ${m.explained_variance.toFixed(4)}  dead ${m.dead_fraction.toFixed(3)}  dense ${m.dense_fraction.toFixed(3)}`,
  );
  console.log(
    `  density (log10 firing frequency): ${m.density.map((b) => `${b.lo === Number.NEGATIVE_INFINITY ? 'dead' : b.lo}:${b.count}`).join(' ')}`,
  );
  console.log(`written to ${options.root ?? '.'}/saes/${sae.id}`);
  return 0;
}
