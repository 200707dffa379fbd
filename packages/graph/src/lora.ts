/**
 * LoRA (Hu et al. 2021) as PEFT implements it, on the Linear layers of any module by name:
 *
 *   y = x W^T + b + (alpha / r) * B A dropout(x),    A [r, in], B [out, r]
 *
 * A starts as nn.Linear does (kaiming_uniform_ with a = sqrt(5)), B at zero, so the adapted model
 * starts as the base. The adapters are children of the layer they adapt (`q_proj.lora_A.weight`,
 * `q_proj.lora_B.weight`, PEFT's names without its adapter name), so a train step built with
 * `frozen: (n) => !isLoraParam(n)` trains only them: the base weights are its `frozen` input and
 * the optimiser state covers the adapters alone. mergeLora folds them into the base for serving.
 * PEFT's directory layout is in lora-peft.ts.
 */
import type { Value } from './graph';
import * as init from './init';
import { Dropout, Linear } from './layers/basic';
import type { Module } from './module';
import { add, mul } from './ops/elementwise';

export interface LoraConfig {
  /** The adapters' rank. */
  r: number;
  /** The update is scaled by alpha / r. */
  alpha: number;
  /** Dropout on the adapter's input, in [0, 1). */
  dropout: number;
  /**
   * Which Linear layers to adapt, as PEFT reads target_modules: a list matches a module whose name
   * is an entry or ends with `.<entry>` (e.g. q_proj); a string is a regular expression that must
   * match the whole module name (e.g. `.*\.(q_proj|v_proj)`).
   */
  targetModules: readonly string[] | string;
}

/** Throws naming the key (`key('r')` etc.; lora.r by default) when a setting is out of range. */
export function checkLoraConfig(
  c: LoraConfig,
  key: (k: 'r' | 'alpha' | 'dropout' | 'target_modules') => string = (k) => `lora.${k}`,
): void {
  if (!(Number.isInteger(c.r) && c.r >= 1)) throw new Error(`${key('r')}: must be an integer >= 1, got ${c.r}`);
  if (!(Number.isFinite(c.alpha) && c.alpha > 0)) throw new Error(`${key('alpha')}: must be a number > 0, got ${c.alpha}`);
  if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`${key('dropout')}: must be in [0, 1), got ${c.dropout}`);
  const t = c.targetModules;
  if (typeof t === 'string') {
    try {
      new RegExp(t);
    } catch (e) {
      throw new Error(`${key('target_modules')}: not a regular expression: ${(e as Error).message}`);
    }
  } else if (t.length === 0 || t.some((m) => typeof m !== 'string' || m === ''))
    throw new Error(`${key('target_modules')}: must list at least one module name (or be a regular expression)`);
}

export const loraScale = (c: LoraConfig): number => c.alpha / c.r;

/** Whether module `name` is a target (PEFT's check_target_module_exists for list and string forms). */
export function isLoraTarget(name: string, targets: LoraConfig['targetModules']): boolean {
  if (typeof targets === 'string') return new RegExp(`^(?:${targets})$`).test(name);
  return targets.some((t) => name === t || name.endsWith(`.${t}`));
}

/** An adapter's parameter names end in `.lora_A.weight` or `.lora_B.weight`. */
export const isLoraParam = (name: string): boolean => /\.lora_[AB]\.weight$/.test(name);

/**
 * Attaches an adapter to every Linear of `root` whose name is a target; returns their names in
 * module order. Throws when none matches (naming the Linear layers there are), or when a layer
 * already has one.
 */
export function applyLora(root: Module, c: LoraConfig): string[] {
  checkLoraConfig(c);
  const linears = root.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear && e[0] !== '');
  const adapted: string[] = [];
  const scale = loraScale(c);
  for (const [name, layer] of linears) {
    if (!isLoraTarget(name, c.targetModules)) continue;
    if (layer.adapter) throw new Error(`lora: ${name} already has an adapter`);
    const a = layer.attach('lora_A', new Linear(layer.inFeatures, c.r, false));
    const b = layer.attach('lora_B', new Linear(c.r, layer.outFeatures, false));
    b.reinit('weight', () => init.zeros([layer.outFeatures, c.r]));
    const drop = layer.attach('lora_dropout', new Dropout(c.dropout));
    layer.adapter = (x: Value, y: Value) => add(y, mul(b.forward(a.forward(drop.forward(x))), scale));
    adapted.push(name);
  }
  if (adapted.length === 0) {
    const names = [...new Set(linears.map(([n]) => n.split('.').at(-1)))].join(', ');
    throw new Error(`lora.target_modules: ${JSON.stringify(c.targetModules)} matches no Linear layer; this model's are named ${names}`);
  }
  return adapted;
}

/**
 * The base parameters with every adapter folded in, W + (alpha / r) B A, and no adapter entries:
 * what the adapted model computes in eval mode, as plain weights a server loads.
 */
export function mergeLora(params: ReadonlyMap<string, Float32Array>, c: LoraConfig, adapted: readonly string[]): Map<string, Float32Array> {
  const out = new Map([...params].filter(([n]) => !isLoraParam(n)));
  const scale = loraScale(c);
  for (const m of adapted) {
    const [w, a, b] = [`${m}.weight`, `${m}.lora_A.weight`, `${m}.lora_B.weight`].map((n) => {
      const v = params.get(n);
      if (!v) throw new Error(`mergeLora: no value for ${n}`);
      return v;
    });
    const r = c.r;
    const inF = a.length / r;
    const outF = b.length / r;
    if (w.length !== inF * outF) throw new Error(`mergeLora: ${m}.weight has ${w.length} values, the adapters imply [${outF}, ${inF}]`);
    const merged = Float32Array.from(w);
    for (let o = 0; o < outF; o++)
      for (let i = 0; i < inF; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += b[o * r + k] * a[k * inF + i];
        merged[o * inF + i] += scale * s;
      }
    out.set(`${m}.weight`, merged);
  }
  return out;
}
