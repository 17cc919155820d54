/**
 * Post-training full-integer quantisation. Activation ranges are measured on target-domain frames by
 * the TFLite runtime itself (the float model's calibration form, convert/tflite.ts), or, where that
 * form would hold too many activations at once, by the same float graph run node by node in tfjs
 * (convert/reference.ts; TFLITE_CALIBRATION_BYTES), then every
 * tensor gets one int8 scale and zero point. Ops whose int8 kernels copy or interpolate values
 * without rescaling (CONCATENATION, PAD, pools, RESHAPE, RESIZE_BILINEAR) need their inputs and
 * output to share parameters, so those tensors are grouped and share the union of their ranges.
 *
 * Per-tensor parameters hurt where one tensor's channels span very different ranges and a per-channel
 * scale follows: DenseNet's concatenated block features feed batch norms (pre-activation) that
 * amplify the narrow channels along with their rounding error. `equalise` rescales each such channel
 * at the conv that produces it and divides the consuming per-channel affines by the same factor, an
 * exact identity in float (ReLU, pools, zero padding and concatenation commute with positive channel
 * scales), so that every channel of a shared group uses the whole int8 range.
 */
import { UserError } from '../core/errors';
import * as tf from '../core/tf';
import type { Graph, Node } from './graph';
import { outChannels } from '../train/models/ir';
import { graphReference } from './reference';
import { loadTflite } from '../runtime/tflite';
import { quantizeSymmetric, writeTflite, type TensorQuant } from './tflite';

/** Per-channel minima and maxima of every IR tensor over the calibration frames. */
export interface Ranges { min: Float32Array[]; max: Float32Array[]; mean: Float32Array[]; frames: number }

/**
 * Above this many bytes of activations, ranges are measured node by node in tfjs instead of in
 * TFLite's calibration form: that form reads every tensor at its end, so TFLite keeps all of them
 * alive at once (DenseNet121: 2.8 GiB at 512x1024, 11.2 GiB at 1024x2048, per pass), where the
 * node-by-node run holds one dense block's concatenation (72 MiB and 288 MiB).
 */
export const TFLITE_CALIBRATION_BYTES = 2 ** 30;
/** Bytes of every IR tensor of `g` (float32): what TFLite's calibration form holds at once. */
export const activationBytes = (g: Graph) => g.shapes.reduce((a, s) => a + 4 * s.reduce((p, d) => p * d, 1), 0);
export type RangeRuntime = 'tflite' | 'tfjs';
/** TFLite (the deployment runtime) where its calibration form fits, else tfjs node by node: the same float function. */
export const rangeRuntime = (g: Graph): RangeRuntime => (activationBytes(g) <= TFLITE_CALIBRATION_BYTES ? 'tflite' : 'tfjs');

/** Per-channel range statistics accumulated frame by frame, measured by `runtime`. */
function rangeMeter(g: Graph, nFrames: number, threads: number, runtime: RangeRuntime) {
  if (nFrames === 0) throw new UserError('int8 calibration needs at least one frame.', 'Pass --calibrate <target frames> with --calibration-frames N >= 1.');
  const min = g.shapes.map((s) => new Float32Array(s[s.length - 1]).fill(Infinity));
  const max = g.shapes.map((s) => new Float32Array(s[s.length - 1]).fill(-Infinity));
  const mean = g.shapes.map((s) => new Float32Array(s[s.length - 1]));
  const accumulate = (t: number, lo: ArrayLike<number>, hi: ArrayLike<number>, mu: ArrayLike<number>) => {
    for (let c = 0; c < lo.length; c++) { min[t][c] = Math.min(min[t][c], lo[c]); max[t][c] = Math.max(max[t][c], hi[c]); mean[t][c] += mu[c] / nFrames; }
  };
  let add: (x: Float32Array) => void, dispose: () => void;
  if (runtime === 'tflite') {
    const model = loadTflite(writeTflite(g, { rangeOutputs: true }), { threads });
    add = (x) => {
      const outs = model.runAll(x);
      g.shapes.forEach((_, t) => accumulate(t, outs[1 + 3 * t], outs[2 + 3 * t], outs[3 + 3 * t]));
    };
    dispose = () => model.dispose();
  } else {
    const ref = graphReference(g);
    add = (x) => {
      ref.run(x, (t, y) => {
        const axes = y.shape.slice(0, -1).map((_, d) => d);
        const stats = tf.tidy(() => [tf.min(y, axes), tf.max(y, axes), tf.mean(y, axes)]);
        try { accumulate(t, stats[0].dataSync(), stats[1].dataSync(), stats[2].dataSync()); } finally { tf.dispose(stats); }
      });
    };
    dispose = () => ref.dispose();
  }
  return {
    add,
    result(): Ranges {
      const bad = g.shapes.findIndex((_, t) => !min[t].every(Number.isFinite) || !max[t].every(Number.isFinite));
      if (bad >= 0) throw new UserError(`Calibration saw non-finite activations (tensor t${bad}): the checkpoint's weights are not usable.`, 'Convert a checkpoint whose training losses stayed finite.');
      return { min, max, mean, frames: nFrames };
    },
    dispose,
  };
}

export function measureRanges(g: Graph, frames: Float32Array[], threads = 1, runtime: RangeRuntime = 'tflite'): Ranges {
  const meter = rangeMeter(g, frames.length, threads, runtime);
  try {
    for (const x of frames) meter.add(x);
    return meter.result();
  } finally { meter.dispose(); }
}

/**
 * measureRanges for long calibrations: `afterFrame` runs after each frame and is awaited (convert
 * reports progress there, and an interruption gets its turn between frames).
 */
export async function measureRangesAsync(g: Graph, frames: Float32Array[], o: { threads?: number; runtime?: RangeRuntime; afterFrame?: (i: number) => Promise<void> | void } = {}): Promise<Ranges> {
  const meter = rangeMeter(g, frames.length, o.threads ?? 1, o.runtime ?? rangeRuntime(g));
  try {
    for (const [i, x] of frames.entries()) { meter.add(x); await o.afterFrame?.(i); }
    return meter.result();
  } finally { meter.dispose(); }
}

/** Asymmetric int8 parameters for [min, max], widened to hold 0 exactly (zero padding, ReLU). */
export function affineInt8(min: number, max: number): TensorQuant {
  const lo = Math.min(min, 0), hi = Math.max(max, 0);
  const scale = Math.max(hi - lo, 1e-6) / 255;
  return { scale, zeroPoint: Math.max(-128, Math.min(127, Math.round(-128 - lo / scale))) + 0 };  // + 0: no -0
}

const PASS_THROUGH = new Set<Node['op']>(['pad', 'avgpool', 'maxpool', 'reshape', 'resize']);

/** Tensors that must share int8 parameters: a representative per tensor. */
export function sharedGroups(g: Graph): number[] {
  const parent = g.shapes.map((_, i) => i);
  const find = (i: number): number => { while (parent[i] !== i) i = parent[i] = parent[parent[i]]; return i; };
  const union = (a: number, b: number) => { parent[find(a)] = find(b); };
  for (const n of g.nodes) {
    if (n.op === 'concat') n.inputs.forEach((i) => union(i, n.output));
    else if (PASS_THROUGH.has(n.op)) union((n as { input: number }).input, n.output);
  }
  return parent.map((_, i) => find(i));
}

/** int8 parameters for every IR tensor; the input's range is the normalisation's own [-1, 1]. */
export function int8Params(g: Graph, r: Ranges): TensorQuant[] {
  const group = sharedGroups(g);
  const lo = new Map<number, number>(), hi = new Map<number, number>();
  const widen = (t: number, a: number, b: number) => {
    lo.set(group[t], Math.min(lo.get(group[t]) ?? a, a));
    hi.set(group[t], Math.max(hi.get(group[t]) ?? b, b));
  };
  g.shapes.forEach((_, t) => widen(t, Math.min(...r.min[t]), Math.max(...r.max[t])));
  widen(g.input, -1, 1);
  return g.shapes.map((_, t) => affineInt8(lo.get(group[t])!, hi.get(group[t])!));
}

const inputsOf = (n: Node): number[] => (n.op === 'concat' || n.op === 'add' ? n.inputs : [n.input]);

/**
 * Channel equalisation of shared groups (see the file comment). A group qualifies when every channel
 * traces back, through pools, padding and concatenation, to a conv's output channel, and everything
 * outside the group that reads it is a per-channel affine. Returns a new graph; the input is kept.
 */
export function equalise(g: Graph, r: Ranges, maxGain = 1000): Graph {
  const producer = new Map(g.nodes.map((n) => [n.output, n]));
  const group = sharedGroups(g);
  /** The conv output channel a tensor channel carries, if any. */
  const source = (t: number, c: number): [number, number] | undefined => {
    const n = producer.get(t);
    if (!n) return undefined;
    if (n.op === 'conv2d' || n.op === 'depthwise2d') return [t, c];
    if (n.op === 'pad' || n.op === 'avgpool' || n.op === 'maxpool') return source(n.input, c);
    if (n.op === 'concat') {
      let off = 0;
      for (const i of n.inputs) { const k = g.shapes[i][3]; if (c < off + k) return source(i, c - off); off += k; }
    }
    return undefined;
  };
  const members = new Map<number, number[]>();
  group.forEach((root, t) => { if (!members.has(root)) members.set(root, []); members.get(root)!.push(t); });
  const gain = new Map<string, number>();  // "tensor:channel" of a conv output -> factor
  for (const ts of members.values()) {
    const inGroup = new Set(ts);
    if (ts.includes(g.output) || ts.includes(g.input) || g.shapes[ts[0]].length !== 4) continue;
    const consumers = g.nodes.filter((n) => inputsOf(n).some((i) => inGroup.has(i)) && !inGroup.has(n.output));
    if (consumers.length === 0 || !consumers.every((n) => n.op === 'affine')) continue;
    const sources = ts.flatMap((t) => Array.from({ length: g.shapes[t][3] }, (_, c) => source(t, c)));
    if (sources.some((s) => s === undefined)) continue;
    const amp = (s: [number, number]) => Math.max(Math.abs(r.min[s[0]][s[1]]), Math.abs(r.max[s[0]][s[1]]));
    const R = Math.max(...sources.map((s) => amp(s!)));
    for (const s of sources) { const a = amp(s!); gain.set(`${s![0]}:${s![1]}`, a > 0 ? Math.min(R / a, maxGain) : 1); }
  }
  return {
    ...g,
    nodes: g.nodes.map((n) => {
      if ((n.op === 'conv2d' || n.op === 'depthwise2d') && [...Array(outChannels(n)).keys()].some((c) => gain.has(`${n.output}:${c}`))) {
        const co = outChannels(n), k = (c: number) => gain.get(`${n.output}:${c}`) ?? 1;
        return { ...n, weights: n.weights.map((w, i) => w * k(i % co)), bias: n.bias.map((b, c) => b * k(c)) };
      }
      if (n.op === 'affine') {
        const k = (c: number) => { const s = source(n.input, c); return s ? gain.get(`${s[0]}:${s[1]}`) ?? 1 : 1; };
        return { ...n, scale: n.scale.map((a, c) => a / k(c)) };
      }
      return n;
    }),
  };
}

/**
 * Bias correction (Nagel et al. 2019, empirical form): int8 weights shift each conv output's mean by
 * sum_i (W_q - W)[., i, o] E[x_i]; subtracting that shift from the bias, with the input channel means
 * measured in calibration, removes the systematic part of the weight rounding error.
 */
export function correctBiases(g: Graph, r: Ranges): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => {
      if (n.op !== 'conv2d' && n.op !== 'depthwise2d') return n;
      // conv2d: weight i joins input channel floor(i / CO) % CI to output channel i % CO; depthwise: channel i % C to itself.
      const co = outChannels(n), inputOf = n.op === 'conv2d' ? (i: number) => Math.floor(i / co) % n.kernel[2] : (i: number) => i % co;
      const { q, scale } = quantizeSymmetric(n.weights, co, (i) => i % co);
      const mu = r.mean[n.input], bias = Float32Array.from(n.bias);
      for (let i = 0; i < n.weights.length; i++) { const o = i % co; bias[o] -= (q[i] * scale[o] - n.weights[i]) * mu[inputOf(i)]; }
      return { ...n, bias };
    }),
  };
}

/** Calibrate, equalise, re-calibrate, correct biases: the graph to write as int8 and its tensor parameters. */
export function quantizeGraph(g: Graph, frames: Float32Array[], threads = 1): { graph: Graph; params: TensorQuant[]; ranges: Ranges } {
  const eq = equalise(g, measureRanges(g, frames, threads));
  return finish(eq, measureRanges(eq, frames, threads));
}

/** quantizeGraph frame by frame: `afterFrame(pass, i)` after each of the two passes' frames (pass 1: ranges to equalise, 2: ranges of the equalised graph). */
export async function quantizeGraphAsync(g: Graph, frames: Float32Array[], o: { threads?: number; runtime?: RangeRuntime; afterFrame?: (pass: 1 | 2, i: number) => Promise<void> | void } = {}): Promise<{ graph: Graph; params: TensorQuant[]; ranges: Ranges }> {
  const runtime = o.runtime ?? rangeRuntime(g);
  const eq = equalise(g, await measureRangesAsync(g, frames, { threads: o.threads, runtime, afterFrame: (i) => o.afterFrame?.(1, i) }));
  return finish(eq, await measureRangesAsync(eq, frames, { threads: o.threads, runtime, afterFrame: (i) => o.afterFrame?.(2, i) }));
}

function finish(eq: Graph, ranges: Ranges): { graph: Graph; params: TensorQuant[]; ranges: Ranges } {
  const out = correctBiases(eq, ranges);
  return { graph: out, params: int8Params(out, ranges), ranges };
}
