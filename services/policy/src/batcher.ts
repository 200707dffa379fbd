/**
 * Dynamic batching, as SEED RL's central inference does it: concurrent requests wait in a queue and
 * run as one inference when the queued rows reach `maxRows` or the oldest request has waited
 * `maxWaitMs`, whichever comes first. One large forward pass costs little more than a small one, so
 * many callers with small batches get the throughput of one caller with a large batch.
 *
 * At most `maxInFlight` batches run at once (the policy core uses 1: one worker runs one batch at a
 * time anyway). While a batch runs, new requests keep queueing and leave together as the next batch
 * when it finishes, so the batch size grows with the load instead of the queue.
 *
 * Pure logic: the inference is the injected `run`, which gets the inputs of one batch in queue order
 * and returns one output per input.
 */

export interface BatcherOptions<I, O> {
  /** Rows that trigger a batch at once; a batch never holds more, except a single larger request. */
  maxRows: number;
  /** How long the first queued request may wait for company. */
  maxWaitMs: number;
  /** Batches running at the same time (default 1). */
  maxInFlight?: number;
  run: (inputs: I[], rows: number) => Promise<O[]>;
}

interface Waiter<I, O> {
  input: I;
  rows: number;
  queuedAt: number;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class Batcher<I, O> {
  private readonly queue: Waiter<I, O>[] = [];
  private queuedRows = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The oldest queued request has waited maxWaitMs: the next free slot takes whatever is queued. */
  private due = false;
  private inFlight = 0;
  private closed: Error | null = null;
  private readonly maxInFlight: number;

  constructor(private readonly opts: BatcherOptions<I, O>) {
    if (!(opts.maxRows >= 1)) throw new Error(`Batcher: maxRows must be >= 1, got ${opts.maxRows}`);
    if (!(opts.maxWaitMs >= 0)) throw new Error(`Batcher: maxWaitMs must be >= 0, got ${opts.maxWaitMs}`);
    this.maxInFlight = opts.maxInFlight ?? 1;
  }

  /** Rows waiting for a batch. */
  get pendingRows(): number {
    return this.queuedRows;
  }

  submit(input: I, rows: number): Promise<O> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ input, rows, queuedAt: performance.now(), resolve, reject });
      this.queuedRows += rows;
      if (this.queue.length === 1) this.arm(this.opts.maxWaitMs);
      this.pump();
    });
  }

  /** Fails every queued request with `reason`; batches already running still settle. */
  close(reason: Error): void {
    this.closed = reason;
    this.disarm();
    for (const w of this.queue.splice(0)) w.reject(reason);
    this.queuedRows = 0;
  }

  private arm(ms: number): void {
    this.disarm();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.due = true;
      this.pump();
    }, ms);
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private pump(): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight && (this.due || this.queuedRows >= this.opts.maxRows)) {
      this.dispatch(this.take());
    }
  }

  /** The longest queue prefix within maxRows (at least one request, however large). */
  private take(): Waiter<I, O>[] {
    let rows = 0;
    let n = 0;
    while (n < this.queue.length && (n === 0 || rows + this.queue[n].rows <= this.opts.maxRows)) rows += this.queue[n++].rows;
    const batch = this.queue.splice(0, n);
    this.queuedRows -= rows;
    // The requests left behind keep their own deadline: the wait counts from when each head arrived.
    this.disarm();
    this.due = false;
    if (this.queue.length > 0) {
      const left = this.queue[0].queuedAt + this.opts.maxWaitMs - performance.now();
      if (left <= 0) this.due = true;
      else this.arm(left);
    }
    return batch;
  }

  private dispatch(batch: Waiter<I, O>[]): void {
    this.inFlight++;
    const rows = batch.reduce((n, w) => n + w.rows, 0);
    Promise.resolve()
      .then(() =>
        this.opts.run(
          batch.map((w) => w.input),
          rows,
        ),
      )
      .then((outs) => {
        if (outs.length !== batch.length) throw new Error(`batch run returned ${outs.length} results for ${batch.length} requests`);
        for (const [i, w] of batch.entries()) w.resolve(outs[i]);
      })
      .catch((e) => {
        for (const w of batch) w.reject(e);
      })
      .finally(() => {
        this.inFlight--;
        this.pump();
      });
  }
}
