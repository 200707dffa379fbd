/**
 * `rlmesh sae follow`: an SAE trained on a mesh run's activation stream as it arrives (the SAE
 * service core's follow, in this process), stored under <root>/saes/<id> like `sae train`.
 */
import { UsageError } from './args';
import { connectBus, NATS_OPTIONS, natsTarget } from './nats-args';

const KNOWN = ['run', 'hook', 'root', 'id', 'steps', 'batch-size', 'warmup-rows', ...NATS_OPTIONS];

function int(options: Record<string, string>, key: string, fallback: number): number {
  const raw = options[key];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`sae follow: --${key}: must be an integer >= 1, got ${JSON.stringify(raw)}`);
  return n;
}

export async function saeFollow(options: Record<string, string>, config: Record<string, unknown>): Promise<number> {
  for (const k of Object.keys(options))
    if (!KNOWN.includes(k) && !k.startsWith('config.'))
      throw new UsageError(`sae follow: unknown option --${k} (known: ${KNOWN.map((a) => `--${a}`).join(', ')}, --config.KEY)`);
  for (const k of ['run', 'hook']) if (!options[k]) throw new UsageError(`sae follow: --${k} is required`);
  const target = natsTarget(options, 'sae follow');
  if (!target) throw new UsageError('sae follow: --nats URL (or NATS_URL) is required');
  const { SaeServiceCore } = await import('@rlmesh/sae');
  let core: InstanceType<typeof SaeServiceCore>;
  try {
    core = new SaeServiceCore(options.root ?? '.');
  } catch (e) {
    throw new UsageError(`sae follow: --root: ${(e as Error).message}`);
  }
  const sizes = {
    steps: int(options, 'steps', 2000),
    batchSize: int(options, 'batch-size', 1024),
    warmupRows: int(options, 'warmup-rows', 4096),
  };
  const bus = await connectBus(target, 'rlmesh-sae-follow');
  const started = performance.now();
  try {
    const sae = await core
      .follow(bus, {
        run: options.run,
        hook: options.hook,
        id: options.id,
        config,
        ...sizes,
        onProgress: (step, m, s) =>
          process.stderr.write(
            `  step ${String(step).padStart(6)}  loss ${m.loss.toFixed(4)}  l0 ${m.l0.toFixed(1)}  rows ${s.rows}  versions ${s.versions[0]}-${s.versions[1]}\n`,
          ),
      })
      .catch((e: Error) => {
        throw e.name === 'ConfigError' ? e : new UsageError(`sae follow: ${e.message}`);
      });
    const m = sae.metrics;
    console.log(
      `sae ${sae.id}: ${sae.architecture}, d_in ${sae.d_in}, d_sae ${sae.d_sae}, from ${sae.activations}, trained in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    console.log(
      `  held-out rows ${m.rows}: l0 ${m.l0.toFixed(2)}  mse ${m.mse.toFixed(4)}  explained_variance ${m.explained_variance.toFixed(4)}  dead ${m.dead_fraction.toFixed(3)}`,
    );
    return 0;
  } finally {
    await core.close();
    await bus.close();
  }
}
