/**
 * The policy service's inference thread: one onnxruntime-node InferenceSession and the current flat
 * parameter vector. ORT's run() occupies the thread that calls it, so it runs here and the service's
 * event loop stays free to take requests and form the next batch.
 *
 * Plain CommonJS so that it runs unbuilt, from vitest and from dist alike.
 *
 * Messages are handled strictly one after another, in arrival order. That order is the hot-swap
 * guarantee: a `run` posted before a `swap` uses the old weights, one posted after uses the new ones,
 * and each reply says which version it ran.
 *   { id, type: 'swap', version, params: Float32Array, program?: Uint8Array }  -> { id, version }
 *   { id, type: 'run', obs: Float32Array, rows }  -> { id, version, outputs: { value, ...distribution heads } }
 * A failure answers { id, error } and leaves the previous program and parameters in place.
 */

const { parentPort, workerData } = require('node:worker_threads');
const ort = require('onnxruntime-node');

const IO = { params: 'params', obs: 'obs', value: 'value' };
const threads = workerData?.threads || 1;
// 'cpu' or 'cuda'; the service checked at start that the provider can load, so there is no fallback here.
const device = workerData?.device || 'cpu';

let session = null;
let params = null;
let version = 0;

async function createSession(bytes) {
  const s = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    executionProviders: [device],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  for (const name of [IO.params, IO.obs]) {
    if (!s.inputNames.includes(name)) throw new Error(`policy program has no input "${name}" (inputs: ${s.inputNames.join(', ')})`);
  }
  if (!s.outputNames.includes(IO.value)) throw new Error(`policy program has no output "value" (outputs: ${s.outputNames.join(', ')})`);
  return s;
}

async function swap(msg) {
  const next = msg.program ? await createSession(msg.program) : session;
  if (!next) throw new Error('no policy program loaded');
  if (next !== session && session) await session.release();
  session = next;
  params = msg.params;
  version = msg.version;
  return { version };
}

/** A typed array that owns its whole buffer, so it can be transferred without copying. */
function owned(a) {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice();
}

async function run(msg) {
  if (!session || !params) throw new Error('no policy loaded');
  const cols = msg.obs.length / msg.rows;
  const out = await session.run({
    [IO.params]: new ort.Tensor('float32', params, [params.length]),
    [IO.obs]: new ort.Tensor('float32', msg.obs, [msg.rows, cols]),
  });
  const outputs = {};
  for (const [name, t] of Object.entries(out)) {
    if (t.dims[0] !== msg.rows) throw new Error(`policy program returned ${name} [${t.dims}] for ${msg.rows} rows`);
    outputs[name] = owned(t.data);
  }
  return { reply: { version, outputs }, transfer: Object.values(outputs).map((a) => a.buffer) };
}

const handlers = { swap: async (m) => ({ reply: await swap(m), transfer: [] }), run };

let chain = Promise.resolve();
parentPort.on('message', (msg) => {
  chain = chain.then(async () => {
    try {
      const handler = handlers[msg.type];
      if (!handler) throw new Error(`unknown message type ${msg.type}`);
      const { reply, transfer } = await handler(msg);
      parentPort.postMessage({ id: msg.id, ...reply }, transfer);
    } catch (e) {
      parentPort.postMessage({ id: msg.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
});
