/**
 * Benchmarks of packages/graph: compiled train steps against the forward-only program of the same
 * model, and the per-call overhead of our Session wrapper against raw onnxruntime-node.
 */
import * as ort from 'onnxruntime-node';
import {
  add,
  buildInferenceProgram,
  buildTrainProgram,
  crossEntropy,
  Embedding,
  Graph,
  type HostTensor,
  type InputSpec,
  initParameters,
  Linear,
  MLP,
  Module,
  Rng,
  Session,
  Trainer,
  TransformerEncoder,
  TransformerEncoderLayer,
  type Value,
} from '../packages/graph/src';
import { type BenchResult, type BenchSettings, describeTiming, settingsFromEnv, type Timing, timePair } from './harness';

const BATCH = 64;
const LR = 1e-3;

function log(msg: string): void {
  process.stderr.write(`[bench:graph] ${msg}\n`);
}

/** Compact FLOP count: 32440320 -> "32.4 MFLOP". */
function flops(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toPrecision(3)} GFLOP`;
  return `${(n / 1e6).toPrecision(3)} MFLOP`;
}

interface TrainVsForward {
  /** Model name used as the result-name prefix. */
  name: string;
  /** Human-readable model description for the notes. */
  what: string;
  module: Module;
  forward: (x: Value) => Value;
  input: InputSpec;
  target: InputSpec;
  x: HostTensor;
  y: HostTensor;
  /** Forward FLOPs per batch, with the formula used to get them. */
  forwardFlops: number;
  flopFormula: string;
}

/**
 * Trainer.step (Adam) of the model's train-step program vs Session.run of its forward-only
 * inference program, same batch, same thread count.
 */
async function trainVsForward(c: TrainVsForward, s: BenchSettings): Promise<BenchResult[]> {
  const t0 = Date.now();
  const program = buildTrainProgram({
    module: c.module,
    batch: [c.input, c.target],
    optimizer: { kind: 'adam' },
    loss: (b) => ({ loss: crossEntropy(c.forward(b[c.input.name]), b[c.target.name]) }),
    name: `${c.name}_train`,
  });
  const params = initParameters(c.module, new Rng(1));
  const inference = buildInferenceProgram({
    module: c.module,
    params,
    inputs: [c.input],
    forward: (i) => ({ logits: c.forward(i[c.input.name]) }),
    name: `${c.name}_forward`,
  });
  log(`${c.name}: built programs (${program.layout.total} parameters) in ${Date.now() - t0} ms`);

  const options = { intraOpThreads: s.threads };
  const trainer = await Trainer.create(program, params, options);
  const session = await Session.create(inference, options);
  const trainBatch = { [c.input.name]: c.x, [c.target.name]: c.y };
  const forwardFeeds = { [c.input.name]: c.x };
  let t: { subject: Timing; baseline: Timing };
  try {
    t = await timePair(
      () => trainer.step(trainBatch, LR),
      () => session.run(forwardFeeds),
      s,
    );
  } finally {
    await trainer.release();
    await session.release();
  }
  const trainPerSec = 1e9 / t.subject.medianNs;
  const forwardPerSec = 1e9 / t.baseline.medianNs;
  const timeRatio = t.subject.medianNs / t.baseline.medianNs;
  const trainFlops = 3 * c.forwardFlops;
  const trainGflops = (trainFlops * trainPerSec) / 1e9;
  const forwardGflops = (c.forwardFlops * forwardPerSec) / 1e9;
  const timings = `${describeTiming('train', t.subject)}; ${describeTiming('forward', t.baseline)}`;
  log(`${c.name}: ${trainPerSec.toFixed(1)} updates/s, ${forwardPerSec.toFixed(1)} forward/s, ratio ${timeRatio.toFixed(2)}`);
  return [
    {
      name: `${c.name}.train_step`,
      metric: 'train-step throughput (Trainer.step, Adam)',
      value: trainPerSec,
      unit: 'updates/s',
      baseline: { name: 'forward-only inference program (Session.run), passes/s', value: forwardPerSec },
      ratio: timeRatio,
      notes:
        `${c.what}; batch ${BATCH}, float32, ${s.threads} intra-op threads. ` +
        `ratio = train-step time / forward time (expected ~3-5x). ` +
        `A train step also feeds and fetches the flat parameters and both Adam moments (${program.layout.total} floats each). ${timings}`,
    },
    {
      name: `${c.name}.train_step`,
      metric: 'achieved train-step compute',
      value: trainGflops,
      unit: 'GFLOP/s',
      baseline: { name: 'forward-only inference program, GFLOP/s', value: forwardGflops },
      ratio: trainGflops / forwardGflops,
      notes:
        `${flops(trainFlops)} per train step = 3 x forward (${flops(c.forwardFlops)}); backward counted as 2x forward ` +
        `(grads wrt input and weight), element-wise ops and the optimiser ignored. Forward: ${c.flopFormula}. ` +
        `ratio = train GFLOP/s / forward GFLOP/s (= 3 / time ratio).`,
    },
  ];
}

function randomFloats(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

function randomTokens(rng: Rng, n: number, vocab: number): BigInt64Array {
  const a = new BigInt64Array(n);
  for (let i = 0; i < n; i++) a[i] = BigInt(rng.int(vocab));
  return a;
}

/** Benchmark 1: MLP [64 -> 256 -> 256 -> 10], relu, cross-entropy. */
async function mlpBenchmark(s: BenchSettings): Promise<BenchResult[]> {
  const sizes = [64, 256, 256, 10];
  const mlp = new MLP(sizes, 'relu');
  const rng = new Rng(2);
  let macs = 0;
  for (let i = 0; i + 1 < sizes.length; i++) macs += sizes[i] * sizes[i + 1];
  return trainVsForward(
    {
      name: 'mlp_64-256-256-10',
      what: 'MLP [64 -> 256 -> 256 -> 10] relu, cross-entropy',
      module: mlp,
      forward: (x) => mlp.forward(x),
      input: { name: 'x', dtype: 'float32', shape: ['batch', sizes[0]] },
      target: { name: 'y', dtype: 'int64', shape: ['batch'] },
      x: { data: randomFloats(rng, BATCH * sizes[0]), shape: [BATCH, sizes[0]] },
      y: { data: randomTokens(rng, BATCH, sizes[sizes.length - 1]), shape: [BATCH] },
      forwardFlops: 2 * BATCH * macs,
      flopFormula: `sum over layers of 2*B*in*out = 2*${BATCH}*(${sizes
        .slice(0, -1)
        .map((n, i) => `${n}*${sizes[i + 1]}`)
        .join(' + ')})`,
    },
    s,
  );
}

/** Token + position embeddings, a causal TransformerEncoder, a vocabulary head. */
class CausalLM extends Module {
  readonly tok: Embedding;
  readonly pos: Embedding;
  readonly encoder: TransformerEncoder;
  readonly head: Linear;

  constructor(
    readonly vocab: number,
    readonly seq: number,
    readonly dModel: number,
    nHead: number,
    dimFeedforward: number,
    numLayers: number,
  ) {
    super();
    this.tok = this.child('tok', new Embedding(vocab, dModel));
    this.pos = this.child('pos', new Embedding(seq, dModel));
    this.encoder = this.child(
      'encoder',
      new TransformerEncoder(() => new TransformerEncoderLayer(dModel, nHead, { dimFeedforward, dropout: 0 }), numLayers),
    );
    this.head = this.child('head', new Linear(dModel, vocab));
  }

  forward(tokens: Value): Value {
    const positions = tokens.graph.constant({
      dtype: 'int64',
      shape: [this.seq],
      data: BigInt64Array.from({ length: this.seq }, (_, i) => BigInt(i)),
    });
    const h = add(this.tok.forward(tokens), this.pos.forward(positions));
    return this.head.forward(this.encoder.forward(h, { causal: true }));
  }
}

/** Benchmark 2: 2-layer causal transformer LM, d 64, 4 heads, ff 256, vocab 64, seq 16. */
async function transformerBenchmark(s: BenchSettings): Promise<BenchResult[]> {
  const [V, T, D, H, FF, L] = [64, 16, 64, 4, 256, 2];
  const dh = D / H;
  const model = new CausalLM(V, T, D, H, FF, L);
  const rng = new Rng(3);
  const x = randomTokens(rng, BATCH * T, V);
  // Next-token targets (the last position wraps to a random token); the values do not affect timing.
  const y = new BigInt64Array(BATCH * T);
  for (let b = 0; b < BATCH; b++) for (let t = 0; t < T; t++) y[b * T + t] = t + 1 < T ? x[b * T + t + 1] : BigInt(rng.int(V));
  const B = BATCH;
  const perLayer = 2 * B * T * (4 * D * D + 2 * D * FF) + 2 * 2 * B * H * T * T * dh;
  const head = 2 * B * T * D * V;
  return trainVsForward(
    {
      name: `transformer_${L}x${D}d${H}h_seq${T}`,
      what: `token Embedding(${V}, ${D}) + position Embedding(${T}, ${D}), TransformerEncoder of ${L} post-norm layers (d_model ${D}, ${H} heads, ff ${FF}, dropout 0, causal), Linear head to vocab ${V}, cross-entropy on all ${T} positions`,
      module: model,
      forward: (tokens) => model.forward(tokens),
      input: { name: 'x', dtype: 'int64', shape: ['batch', T] },
      target: { name: 'y', dtype: 'int64', shape: ['batch', T] },
      x: { data: x, shape: [B, T] },
      y: { data: y, shape: [B, T] },
      forwardFlops: L * perLayer + head,
      flopFormula:
        `${L} layers x [2*B*T*(4*d*d + 2*d*ff) + 2*2*B*H*T*T*dh] + head 2*B*T*d*V with B=${B}, T=${T}, d=${D}, ff=${FF}, H=${H}, dh=${dh}, V=${V}` +
        ` = ${L} x ${flops(perLayer)} + ${flops(head)}`,
    },
    s,
  );
}

/** Benchmark 3: per-call overhead of Session.run vs raw InferenceSession.run on a one-Add model. */
async function sessionOverheadBenchmark(s: BenchSettings): Promise<BenchResult[]> {
  const g = new Graph('tiny_add');
  g.output('c', add(g.input('a', 'float32', [1]), g.input('b', 'float32', [1])));
  const onnx = g.toOnnx();
  const a = Float32Array.of(1);
  const b = Float32Array.of(2);

  const wrapper = await Session.create(onnx, { intraOpThreads: s.threads });
  const raw = await ort.InferenceSession.create(onnx, {
    intraOpNumThreads: s.threads,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const wrapperFeeds = { a: { data: a, shape: [1] }, b: { data: b, shape: [1] } };
  let t: { subject: Timing; baseline: Timing };
  try {
    // The raw baseline wraps the same arrays in fresh ort.Tensors each call, as any caller must.
    t = await timePair(
      () => wrapper.run(wrapperFeeds),
      () => raw.run({ a: new ort.Tensor('float32', a, [1]), b: new ort.Tensor('float32', b, [1]) }),
      s,
    );
  } finally {
    await wrapper.release();
    await raw.release();
  }
  const wrapperUs = t.subject.medianNs / 1e3;
  const rawUs = t.baseline.medianNs / 1e3;
  log(`session overhead: wrapper ${wrapperUs.toFixed(1)} us, raw ${rawUs.toFixed(1)} us`);
  return [
    {
      name: 'session.run_overhead',
      metric: 'mean time per Session.run (one Add of two [1] float32 tensors)',
      value: wrapperUs,
      unit: 'µs/call',
      baseline: { name: 'raw onnxruntime-node InferenceSession.run, µs/call', value: rawUs },
      ratio: wrapperUs / rawUs,
      notes:
        `ratio = wrapper / raw; wrapper overhead ${(wrapperUs - rawUs).toFixed(2)} µs/call. Raw baseline builds two ort.Tensor per call ` +
        `from the same arrays. ${s.threads} intra-op threads. ` +
        `${describeTiming('wrapper', t.subject)}; ${describeTiming('raw', t.baseline)}`,
    },
  ];
}

export async function runGraphBenchmarks(settings: BenchSettings = settingsFromEnv()): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  results.push(...(await mlpBenchmark(settings)));
  results.push(...(await transformerBenchmark(settings)));
  results.push(...(await sessionOverheadBenchmark(settings)));
  return results;
}
