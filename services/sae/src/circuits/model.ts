/**
 * A GPT-2 checkpoint opened for circuit analysis: its weights packed for the circuit programs, its
 * tokenizer, the programs built so far (one per hook set), and slot activations captured in batches.
 */
import { Gpt2LMHeadModel } from '@rlmesh/learner';
import type { Tokenizer } from '@rlmesh/text';
import { openGpt2Directory } from '../capture-text';
import { type CardRecord, type TokenizedRecord, tokenizeRecord } from './examples';
import { CircuitProgram, tokenBatch, traceHooks } from './program';

export const BATCH_ROWS = 32;

export class CircuitModel {
  private readonly programs = new Map<string, Promise<CircuitProgram>>();
  private hookShapes: Map<string, (number | string)[]> | null = null;
  private packed: Float32Array | null = null;

  private constructor(
    readonly dir: string,
    readonly model: Gpt2LMHeadModel,
    readonly params: Map<string, Float32Array>,
    readonly tokenizer: Tokenizer,
    readonly eosId: number,
  ) {}

  static async open(dir: string): Promise<CircuitModel> {
    const g = await openGpt2Directory(dir);
    const eos = g.tokenizer.eosId ?? g.config.eos_token_id;
    return new CircuitModel(dir, new Gpt2LMHeadModel(g.config), g.params, g.tokenizer, eos ?? -1);
  }

  get layers(): number {
    return this.model.config.n_layer;
  }

  get heads(): number {
    return this.model.config.n_head;
  }

  hooks(): Map<string, (number | string)[]> {
    this.hookShapes ??= traceHooks(this.model);
    return this.hookShapes;
  }

  /** Refuses hooks the model lacks, naming them and the model's hooks. */
  requireHooks(names: readonly string[]): void {
    const known = this.hooks();
    const missing = names.filter((n) => !known.has(n));
    if (missing.length > 0)
      throw new Error(
        `${this.dir}: no hook ${missing.map((m) => JSON.stringify(m)).join(', ')} (this model's: ${[...known.keys()].join(', ')})`,
      );
  }

  tokenize(records: readonly CardRecord[]): TokenizedRecord[] {
    const n = this.model.config.n_positions;
    return records.map((r) => {
      const t = tokenizeRecord(r, this.tokenizer, this.eosId);
      if (t.ids.length > n) throw new Error(`line ${r.line}: ${t.ids.length} tokens, more than the model's n_positions ${n}`);
      return t;
    });
  }

  /** The program for this hook set, built once. */
  program(o: { patch?: readonly string[]; capture?: readonly string[] }): Promise<CircuitProgram> {
    const key = JSON.stringify([o.patch ?? [], o.capture ?? []]);
    let p = this.programs.get(key);
    if (!p) {
      p = CircuitProgram.build(this.model, o);
      this.programs.set(key, p);
    }
    return p;
  }

  /** The flat parameter vector every program of this model takes. */
  flat(program: CircuitProgram): Float32Array {
    this.packed ??= program.layout.pack(this.params);
    return this.packed;
  }

  /**
   * Each record's activations of `hooks` at its slots (slot -> values of the hook's inner size),
   * from clean runs of `seqs(record)` (default: the prompt alone).
   */
  async captureSlots(
    items: readonly TokenizedRecord[],
    hooks: readonly string[],
    seqs: (t: TokenizedRecord) => readonly number[] = (t) => t.ids.slice(0, t.promptLength),
  ): Promise<Map<string, Map<string, Float32Array>>[]> {
    const program = await this.program({ capture: hooks });
    const out: Map<string, Map<string, Float32Array>>[] = [];
    for (let s = 0; s < items.length; s += BATCH_ROWS) {
      const chunk = items.slice(s, s + BATCH_ROWS);
      const batch = tokenBatch(chunk.map(seqs));
      const run = await program.run(this.flat(program), batch);
      for (const [r, t] of chunk.entries()) {
        const perHook = new Map<string, Map<string, Float32Array>>();
        for (const h of hooks) {
          const size = program.rowSize(h, 1);
          const bySlot = new Map<string, Float32Array>();
          for (const [slot, pos] of t.slots) {
            const at = (r * batch.width + pos) * size;
            bySlot.set(slot, run.hooks[h].slice(at, at + size));
          }
          perHook.set(h, bySlot);
        }
        out.push(perHook);
      }
    }
    return out;
  }

  async release(): Promise<void> {
    for (const p of this.programs.values()) await (await p).release();
    this.programs.clear();
  }
}
