/**
 * Runs a train-step program: holds the flat parameters, optimiser state and step count between
 * calls, feeds them in, and keeps what comes out.
 */
import { initParameters, type Module } from './module';
import type { TrainProgram } from './program';
import { TRAIN_IO } from './program';
import { Rng } from './rng';
import { type HostTensor, Session, type SessionOptions } from './session';
import { WorkerSession } from './worker-session';

export interface TrainerOptions extends SessionOptions {
  /** Run the train step in a worker thread, leaving this thread's event loop free (services do). */
  inWorker?: boolean;
  /** The frozen parameters of a program with `frozenLayout`, when `params` is a flat vector. */
  frozen?: ReadonlyMap<string, Float32Array>;
}

/** What a Trainer needs of a session: Session runs on this thread, WorkerSession on its own. */
type StepRunner = Pick<Session, 'run' | 'release'>;

type Flat = Float32Array | Float64Array;

export interface TrainerState {
  params: Flat;
  state: Record<string, Flat>;
  /** Updates taken so far. */
  step: number;
}

/**
 * In a worker, the parameters and optimiser state stay in the worker between steps (a step sends its
 * batch and gets its metrics back), because copying them both ways cost a small model's step half
 * again its time. `sync()` brings them back; reading them before that is an error, not a stale read.
 */
export class Trainer {
  /** Whether the worker holds the parameters and state (sent before the first step after a restore). */
  private held = false;
  /** Whether the worker's parameters are newer than `current` (steps since the last sync). */
  private ahead = false;

  private constructor(
    readonly program: TrainProgram,
    private readonly session: StepRunner,
    private current: TrainerState,
    /** The frozen parameters, fed unchanged to every step. */
    private readonly frozen: Flat | null,
  ) {}

  private get worker(): WorkerSession | null {
    return this.session instanceof WorkerSession ? this.session : null;
  }

  private fresh(what: string): void {
    if (this.ahead) throw new Error(`trainer: ${what} read before sync(): the worker holds newer parameters`);
  }

  /** Starts from `params` (named values or a flat vector) with zeroed optimiser state. */
  static async create(
    program: TrainProgram,
    params: ReadonlyMap<string, Float32Array> | Flat,
    options: TrainerOptions = {},
  ): Promise<Trainer> {
    const { inWorker, frozen: frozenValues, ...sessionOptions } = options;
    const session = inWorker
      ? await WorkerSession.create(program.onnx, sessionOptions)
      : await Session.create(program.onnx, sessionOptions);
    const flat = params instanceof Map ? program.layout.pack(params) : (params as Flat);
    const Ctor = program.dtype === 'float64' ? Float64Array : Float32Array;
    if (flat.length !== program.layout.total)
      throw new Error(`trainer: ${flat.length} parameters given, program expects ${program.layout.total}`);
    const state = Object.fromEntries(program.stateNames.map((s) => [s, new Ctor(program.layout.total)]));
    let frozen: Flat | null = null;
    if (program.frozenLayout) {
      const values = frozenValues ?? (params instanceof Map ? params : null);
      if (!values) throw new Error('trainer: the program has frozen parameters; pass them by name (params or options.frozen)');
      frozen = Ctor.from(program.frozenLayout.pack(values));
    }
    return new Trainer(program, session, { params: Ctor.from(flat), state, step: 0 }, frozen);
  }

  /** A fresh trainer whose parameters are the module's PyTorch-style initialisation under `seed`. */
  static async fromModule(program: TrainProgram, module: Module, seed: number, options: TrainerOptions = {}): Promise<Trainer> {
    return Trainer.create(program, initParameters(module, new Rng(seed)), options);
  }

  get stepCount(): number {
    return this.current.step;
  }

  get flatParams(): Flat {
    this.fresh('parameters');
    return this.current.params;
  }

  /** Parameters by PyTorch name, as float32. */
  parameters(): Map<string, Float32Array> {
    this.fresh('parameters');
    return this.program.layout.unpack(Float32Array.from(this.current.params));
  }

  /** Brings the parameters and optimiser state back from the worker after steps there (else nothing to do). */
  async sync(): Promise<void> {
    const worker = this.worker;
    if (!worker || !this.ahead) return;
    const names = [TRAIN_IO.params, ...this.program.stateNames.map((s) => TRAIN_IO.state(s))];
    const values = await worker.carried(names);
    const state: Record<string, Flat> = {};
    for (const s of this.program.stateNames) state[s] = values[TRAIN_IO.state(s)].data as Flat;
    this.current = { params: values[TRAIN_IO.params].data as Flat, state, step: this.current.step };
    this.ahead = false;
  }

  snapshot(): TrainerState {
    this.fresh('state');
    return {
      params: this.current.params.slice(),
      state: Object.fromEntries(Object.entries(this.current.state).map(([k, v]) => [k, v.slice()])),
      step: this.current.step,
    };
  }

  restore(s: TrainerState): void {
    if (s.params.length !== this.program.layout.total)
      throw new Error(`restore: ${s.params.length} parameters, program expects ${this.program.layout.total}`);
    for (const name of this.program.stateNames) if (!s.state[name]) throw new Error(`restore: optimiser state ${name} missing`);
    this.current = this.cloneAs(s);
    this.held = false;
    this.ahead = false;
  }

  /** One update on `batch` at learning rate `lr`; returns the program's scalar metrics. */
  async step(batch: Record<string, HostTensor>, lr: number): Promise<Record<string, number>> {
    const worker = this.worker;
    if (worker) return this.stepInWorker(worker, batch, lr);
    const P = this.program.layout.total;
    const Ctor = this.program.dtype === 'float64' ? Float64Array : Float32Array;
    const feeds: Record<string, HostTensor> = {
      ...batch,
      [TRAIN_IO.params]: { data: this.current.params, shape: [P] },
      ...(this.frozen ? { [TRAIN_IO.frozen]: { data: this.frozen, shape: [this.frozen.length] } } : {}),
      [TRAIN_IO.step]: { data: Ctor.of(this.current.step + 1), shape: [] },
      [TRAIN_IO.lr]: { data: Ctor.of(lr), shape: [] },
    };
    for (const s of this.program.stateNames) feeds[TRAIN_IO.state(s)] = { data: this.current.state[s], shape: [P] };
    const out = await this.session.run(feeds);
    const state: Record<string, Flat> = {};
    for (const s of this.program.stateNames) state[s] = out[TRAIN_IO.next(TRAIN_IO.state(s))].data as Flat;
    this.current = { params: out[TRAIN_IO.next(TRAIN_IO.params)].data as Flat, state, step: this.current.step + 1 };
    const metrics: Record<string, number> = {};
    const values = out[TRAIN_IO.metrics].data;
    this.program.metricNames.forEach((m, i) => {
      metrics[m] = Number(values[i]);
    });
    return metrics;
  }

  private async stepInWorker(worker: WorkerSession, batch: Record<string, HostTensor>, lr: number): Promise<Record<string, number>> {
    const Ctor = this.program.dtype === 'float64' ? Float64Array : Float32Array;
    const P = this.program.layout.total;
    if (!this.held) {
      const values: Record<string, HostTensor> = { [TRAIN_IO.params]: { data: this.current.params, shape: [P] } };
      if (this.frozen) values[TRAIN_IO.frozen] = { data: this.frozen, shape: [this.frozen.length] };
      for (const s of this.program.stateNames) values[TRAIN_IO.state(s)] = { data: this.current.state[s], shape: [P] };
      await worker.carry(values);
      this.held = true;
    }
    const carry: Record<string, string> = { [TRAIN_IO.next(TRAIN_IO.params)]: TRAIN_IO.params };
    for (const s of this.program.stateNames) carry[TRAIN_IO.next(TRAIN_IO.state(s))] = TRAIN_IO.state(s);
    const out = await worker.runCarrying(
      { ...batch, [TRAIN_IO.step]: { data: Ctor.of(this.current.step + 1), shape: [] }, [TRAIN_IO.lr]: { data: Ctor.of(lr), shape: [] } },
      carry,
    );
    this.current = { ...this.current, step: this.current.step + 1 };
    this.ahead = true;
    const metrics: Record<string, number> = {};
    const values = out[TRAIN_IO.metrics].data;
    this.program.metricNames.forEach((m, i) => {
      metrics[m] = Number(values[i]);
    });
    return metrics;
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  private cloneAs(s: TrainerState): TrainerState {
    const Ctor = this.program.dtype === 'float64' ? Float64Array : Float32Array;
    return {
      params: Ctor.from(s.params),
      state: Object.fromEntries(Object.entries(s.state).map(([k, v]) => [k, Ctor.from(v)])),
      step: s.step,
    };
  }
}
