/**
 * The real TFLite runtime (tfjs-tflite-node: libtensorflowlite_c with XNNPACK). convert/ judges
 * every .tflite file it writes with it, and serve/ and streams/ run bundles on it. Only the
 * low-level runner is used: inputs and outputs are plain typed arrays.
 *
 * `infer()` is synchronous on the calling thread and the binding is not safe in a second worker
 * thread of the same process (DESIGN.md): deployment runs it in child processes (serve/engine).
 */
import { UserError } from '../core/errors';

interface TensorInfo { dataType: string; shape: string; name?: string; data(): Float32Array | Int32Array | Uint8Array | Int8Array }
interface Runner { getInputs(): TensorInfo[]; getOutputs(): TensorInfo[]; infer(): boolean; cleanUp?(): void }

export type TfliteOutput = Float32Array | Int32Array | Uint8Array | Int8Array;
export interface TfliteModel {
  /** The first output, copied. */
  run(input: Float32Array): TfliteOutput;
  /** Every output, copied, in the subgraph's order. */
  runAll(input: Float32Array): TfliteOutput[];
  inputShape: number[];
  outputShape: number[];
  outputNames: string[];
  /**
   * Zero-copy form for the serving path: write the input in place, invoke, read outputs as views
   * that stay valid until the next invoke (the 10 MB logits of a 256x512 frame are not copied).
   */
  inputView(): Float32Array;
  invoke(): void;
  outputView(i: number): TfliteOutput;
  dispose(): void;
}

export function loadTflite(bytes: Uint8Array, opts: { threads?: number } = {}): TfliteModel {
  let Ctor: new (model: ArrayBuffer, o: { threads?: number }) => Runner;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Ctor = require('tfjs-tflite-node').TFLiteNodeModelRunner;
  } catch (e) {
    throw new UserError(`The TFLite runtime (tfjs-tflite-node) did not load: ${(e as Error).message.split('\n')[0]}.`, 'Run npm install (it builds the binding with node-gyp).');
  }
  // A copy of exactly these bytes: a Buffer's .slice() is a view, its .buffer may be a larger pool.
  const copy = Uint8Array.prototype.slice.call(bytes).buffer;
  const runner = new Ctor(copy, { threads: opts.threads ?? 1 });
  const shape = (t: TensorInfo) => t.shape.split(',').map(Number);
  const input = runner.getInputs()[0];
  let live = true;
  const infer = (x: Float32Array) => {
    if (!live) throw new Error('TFLite model used after dispose');
    const dst = input.data();
    if (dst.length !== x.length) throw new UserError(`The model takes ${dst.length} input values (${input.shape}), got ${x.length}.`, 'Resize the frame to the bundle\'s input size.');
    (dst as Float32Array).set(x);
    if (!runner.infer()) throw new Error('TFLite inference failed');
  };
  return {
    inputShape: shape(input),
    outputShape: shape(runner.getOutputs()[0]),
    outputNames: runner.getOutputs().map((o, i) => o.name ?? `output${i}`),
    run(x) {
      infer(x);
      return runner.getOutputs()[0].data().slice();
    },
    runAll(x) {
      infer(x);
      return runner.getOutputs().map((o) => o.data().slice());
    },
    inputView: () => input.data() as Float32Array,
    invoke() {
      if (!live) throw new Error('TFLite model used after dispose');
      if (!runner.infer()) throw new Error('TFLite inference failed');
    },
    outputView: (i) => runner.getOutputs()[i].data(),
    dispose() { if (live) { live = false; runner.cleanUp?.(); } },
  };
}
