/**
 * Modules in the shape of torch.nn.Module: parameters and children registered in order, so that
 * `namedParameters()` yields the names and order of PyTorch's state_dict for the same structure.
 * A module is bound to a ParamScope before its forward is traced; the scope decides whether a
 * parameter is a baked-in initializer (inference) or a slice of the flat parameter input (training).
 */
import type { DType, Value } from './graph';
import type { Rng } from './rng';

export type InitFn = (rng: Rng) => Float32Array;

export interface ParamSpec {
  name: string;
  shape: number[];
  init: InitFn;
}

export interface ParamScope {
  readonly dtype: DType;
  get(name: string): Value;
}

export abstract class Module {
  private readonly ownParams: ParamSpec[] = [];
  private readonly children: Array<[string, Module]> = [];
  private scope: ParamScope | null = null;
  private prefix = '';
  training = true;

  /** Declares a parameter, as nn.Parameter assignment does in a torch module's __init__. */
  protected register(name: string, shape: number[], init: InitFn): void {
    this.ownParams.push({ name, shape, init });
  }

  /** Replaces the initialiser of an own parameter, as a parent's reset_parameters() would. */
  reinit(name: string, fn: InitFn): void {
    const spec = this.ownParams.find((p) => p.name === name);
    if (!spec) throw new Error(`${this.constructor.name}: no parameter ${name}`);
    spec.init = fn;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this.children.push([name, m]);
    return m;
  }

  /**
   * Adds a child after construction (an adapter PEFT-style methods attach to an existing layer);
   * its parameters follow the module's own ones, named under `name`.
   */
  attach<M extends Module>(name: string, m: M): M {
    if (this.children.some(([n]) => n === name)) throw new Error(`${this.constructor.name}: a child ${name} is already attached`);
    return this.child(name, m);
  }

  /** This module and every descendant with its dotted name ('' for this one), as torch's named_modules(). */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix, this]];
    for (const [name, m] of this.children) out.push(...m.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Parameters with dotted PyTorch names: own first, then each child in registration order. */
  namedParameters(prefix = ''): ParamSpec[] {
    const out = this.ownParams.map((p) => ({ ...p, name: prefix + p.name }));
    for (const [name, m] of this.children) out.push(...m.namedParameters(`${prefix}${name}.`));
    return out;
  }

  parameterCount(): number {
    return this.namedParameters().reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  }

  /** Sets where parameters come from for the next forward trace, for this module and its children. */
  bind(scope: ParamScope, prefix = ''): this {
    this.scope = scope;
    this.prefix = prefix;
    for (const [name, m] of this.children) m.bind(scope, `${prefix}${name}.`);
    return this;
  }

  /** Train or eval mode (Dropout reads it), recursively, like torch's module.train(mode). */
  train(mode = true): this {
    this.training = mode;
    for (const [, m] of this.children) m.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** The bound tensor of an own parameter, inside forward. */
  protected param(name: string): Value {
    if (!this.scope) throw new Error(`${this.constructor.name}: bind() the module to a parameter scope before tracing it`);
    return this.scope.get(this.prefix + name);
  }

  protected get dtype(): DType {
    if (!this.scope) throw new Error(`${this.constructor.name}: not bound`);
    return this.scope.dtype;
  }
}

/** Initial parameter values, drawn in state_dict order from one seeded stream. */
export function initParameters(module: Module, rng: Rng): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const p of module.namedParameters()) {
    const data = p.init(rng);
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`init of ${p.name}: got ${data.length} values for shape [${p.shape.join(',')}]`);
    out.set(p.name, data);
  }
  return out;
}
