/**
 * The thread behind WorkerSession (src/worker-session.ts): one onnxruntime-node InferenceSession.
 * ORT's run() occupies the thread that calls it, so a service that trains or infers here keeps its
 * own event loop (gRPC, NATS) free. Plain CommonJS so that it runs unbuilt, from vitest and dist alike.
 *   { id, type: 'create', model: Uint8Array, options }  -> { id, inputNames, outputNames }
 *   { id, type: 'run', feeds: { name: { type, data, shape } }, fetch? }  -> { id, outputs: { name: { data, shape } } }
 *   { id, type: 'release' }  -> { id }
 * Carried values stay in this thread between runs (a trainer's parameters and optimiser state, so
 * that a step sends only its batch): a run feeds each carried value to the input of its name unless
 * the feeds give it, and `carry` { output: input } stores those outputs as the next run's inputs.
 *   { id, type: 'carry', values: { name: { type, data, shape } } }  -> { id }
 *   { id, type: 'run', feeds, fetch?, carry? }  -> { id, outputs: every output not carried }
 *   { id, type: 'carried', names }  -> { id, values: { name: { data, shape } } }  (copies)
 * A failure answers { id, error }.
 */
const { parentPort } = require('node:worker_threads');
const ort = require('onnxruntime-node');

let session = null;
/** name -> ort.Tensor fed to the input of that name when a run's feeds leave it out. */
const carried = new Map();

/** A typed array that owns its whole buffer, so it can be transferred without copying. */
function owned(a) {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice();
}

const handlers = {
  async create(msg) {
    session = await ort.InferenceSession.create(msg.model, msg.options);
    return { inputNames: session.inputNames, outputNames: session.outputNames };
  },
  async carry(msg) {
    for (const [name, t] of Object.entries(msg.values)) carried.set(name, new ort.Tensor(t.type, t.data, t.shape));
    return {};
  },
  async carried(msg) {
    const values = {};
    const transfer = [];
    for (const name of msg.names) {
      const t = carried.get(name);
      if (!t) throw new Error(`no carried value ${name}`);
      const data = t.data.slice();
      values[name] = { data, shape: t.dims };
      transfer.push(data.buffer);
    }
    return { values, transfer };
  },
  async run(msg) {
    if (!session) throw new Error('no session created');
    const feeds = {};
    for (const name of session.inputNames) if (carried.has(name)) feeds[name] = carried.get(name);
    for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.shape);
    const results = msg.fetch ? await session.run(feeds, msg.fetch) : await session.run(feeds);
    const outputs = {};
    const transfer = [];
    for (const [name, t] of Object.entries(results)) {
      const into = msg.carry?.[name];
      if (into !== undefined) {
        carried.set(into, t);
        continue;
      }
      const data = owned(t.data);
      outputs[name] = { data, shape: t.dims };
      transfer.push(data.buffer);
    }
    return { outputs, transfer };
  },
  async release() {
    await session?.release();
    session = null;
    carried.clear();
    return {};
  },
};

// One message at a time, in arrival order: a run never overlaps another on the same session.
let queue = Promise.resolve();
parentPort.on('message', (msg) => {
  queue = queue.then(async () => {
    try {
      const { transfer, ...reply } = await handlers[msg.type](msg);
      parentPort.postMessage({ id: msg.id, ...reply }, transfer ?? []);
    } catch (e) {
      parentPort.postMessage({ id: msg.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
});
