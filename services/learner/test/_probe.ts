import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseRunConfig, trainEmbedded } from '../src';
const raw = parseYaml(readFileSync('configs/ppo-cartpole.yaml', 'utf8'));
async function go() {
for (const seed of [1, 2]) {
  const cfg = parseRunConfig({ ...raw, run: { ...raw.run, seed, out_dir: mkdtempSync(join(tmpdir(), 'p-')) }, train: { ...raw.train, total_env_steps: 60000, checkpoint_every: 0 } });
  const s = await trainEmbedded(cfg);
  console.log(seed, s.return_mean, s.seconds);
}
}
go();
