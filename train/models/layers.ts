/**
 * Minimal parameter store and layers on tfjs-core ops. Each network owns a Store: trainable
 * variables and non-trainable buffers (batch-norm running statistics), named "<net>/<layer>/<param>"
 * so checkpoints and the optimiser address them by stable logical names.
 *
 * Why not tfjs-layers: the I2I objective needs exact control of which variables each gradient
 * reaches, shared layers across two decoders, a second-order gradient through the critics, and
 * space-to-batch dilated convs; plain ops keep all of that visible.
 *
 * Layers of the inference path (`ExportLayer`) also emit themselves into the inference IR (ir.ts),
 * so a network is written once: the composition that trains is the one that exports.
 */
import * as tf from '../../core/tf';
import { deriveSeed } from '../../core/rng';
import type { GraphBuilder } from './ir';

let uid = 0;

/** How normalisation layers behave in a forward pass. */
export type Mode =
  | 'train'          // batch statistics, update running statistics
  | 'train-no-stats' // batch statistics, leave running statistics alone (e.g. on translated images)
  | 'eval';          // running statistics

export class Store {
  readonly trainable = new Map<string, tf.Variable>();
  readonly buffers = new Map<string, tf.Variable>();
  /** Running-statistic updates computed during a forward pass, applied after the step. */
  private pending: [tf.Variable, tf.Tensor][] = [];

  constructor(readonly net: string, readonly seed: number) {}

  private tfName(name: string): string {
    return `${this.net}/${name}#${uid++}`;
  }

  param(name: string, shape: number[], init: 'he' | 'glorot' | 'zeros' | 'ones', fanIn = 1, fanOut = 1): tf.Variable {
    const key = `${this.net}/${name}`;
    if (this.trainable.has(key)) throw new Error(`duplicate parameter ${key}`);
    const value = tf.tidy(() => {
      const seed = deriveSeed(this.seed, key) % 2147483647;
      switch (init) {
        case 'zeros': return tf.zeros(shape);
        case 'ones': return tf.ones(shape);
        case 'he': return tf.truncatedNormal(shape, 0, Math.sqrt(2 / fanIn), 'float32', seed);
        case 'glorot': {
          const lim = Math.sqrt(6 / (fanIn + fanOut));
          return tf.randomUniform(shape, -lim, lim, 'float32', seed);
        }
      }
    });
    const v = tf.variable(value, true, this.tfName(name));
    value.dispose();
    this.trainable.set(key, v);
    return v;
  }

  buffer(name: string, shape: number[], fill: number): tf.Variable {
    const key = `${this.net}/${name}`;
    const init = tf.fill(shape, fill);
    const v = tf.variable(init, false, this.tfName(name));
    init.dispose();
    this.buffers.set(key, v);
    return v;
  }

  queueUpdate(v: tf.Variable, value: tf.Tensor): void {
    this.pending.push([v, tf.keep(value)]);
  }

  /** Applies and releases queued running-statistic updates. */
  flushUpdates(): void {
    for (const [v, t] of this.pending) {
      v.assign(t);
      t.dispose();
    }
    this.pending = [];
  }

  dropUpdates(): void {
    for (const [, t] of this.pending) t.dispose();
    this.pending = [];
  }

  variables(): tf.Variable[] {
    return [...this.trainable.values()];
  }

  dispose(): void {
    this.dropUpdates();
    for (const v of this.trainable.values()) v.dispose();
    for (const v of this.buffers.values()) v.dispose();
  }
}

/**
 * Copies one network's weights and running statistics into another of the same architecture whose
 * store has another name (ADDA's f_t from f, the self-training teacher from the student).
 */
export function copyStore(from: Store, to: Store): void {
  for (const [k, v] of from.trainable) to.trainable.get(k.replace(/^[^/]+/, to.net))!.assign(v);
  for (const [k, v] of from.buffers) to.buffers.get(k.replace(/^[^/]+/, to.net))!.assign(v);
}

/** A forward pass: batch statistics in training, running statistics in evaluation. */
export interface Layer {
  apply(x: tf.Tensor4D, mode: Mode): tf.Tensor4D;
}

/**
 * A layer of the inference path: it also writes itself into the IR after tensor `x` (one node per
 * training op, from its variables' current values) and returns its output tensor. Export is thus
 * derived from the very composition that trains.
 */
export interface ExportLayer extends Layer {
  emit(g: GraphBuilder, x: number): number;
}

/** A variable's current values, copied (graph passes fold into them in place). */
function values(v: tf.Variable): Float32Array {
  return Float32Array.from(v.dataSync() as Float32Array);
}

/**
 * `pad`: 'same' (default), or an explicit symmetric zero padding followed by a 'valid' conv, as
 * Keras' ResNet50 stem does (ZeroPadding2D(3) then a 7x7 stride-2 conv, which 'same' would pad 2/3).
 */
export function conv2d(s: Store, name: string, cin: number, cout: number, k: number, stride: number, opts: { bias?: boolean; dilation?: number; pad?: 'same' | number } = {}): ExportLayer {
  const w = s.param(`${name}/w`, [k, k, cin, cout], 'he', k * k * cin);
  const b = opts.bias === false ? undefined : s.param(`${name}/b`, [cout], 'zeros');
  const d = opts.dilation ?? 1;
  const pad = opts.pad ?? 'same';
  if (d > 1 && (stride !== 1 || pad !== 'same')) throw new Error(`${name}: a dilated conv must be stride 1 with 'same' padding`);
  return {
    apply: (x) => {
      const y = d > 1 ? atrousConv2d(x, w as tf.Tensor4D, d)
        : pad === 'same' ? tf.conv2d(x, w as tf.Tensor4D, stride, 'same')
        : tf.conv2d(tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]), w as tf.Tensor4D, stride, 'valid');
      return b ? tf.add(y, b) : y;
    },
    // The space-to-batch form is a training device: export a native dilated conv.
    emit: (g, x) => g.conv2d(pad === 'same' ? x : g.pad(x, pad), {
      weights: values(w), bias: b ? values(b) : new Float32Array(cout), kernel: [k, k, cin, cout], stride, dilation: d, padding: pad === 'same' ? 'same' : 'valid',
    }),
  };
}

/**
 * A 'same' dilated conv that trains on every backend: tfjs cannot differentiate conv2d with
 * dilation > 1, so run a stride-1 conv on the space-to-batch form (TensorFlow's atrous_conv2d).
 * The weights are exactly those of the native dilated conv, so export writes a native one.
 */
export function atrousConv2d(x: tf.Tensor4D, w: tf.Tensor4D, rate: number): tf.Tensor4D {
  const [, h, wd] = x.shape;
  const k = w.shape[0];
  const padTotal = (k - 1) * rate;
  const p0 = Math.floor(padTotal / 2);
  // Pad so that (padded size) is a multiple of rate, then 'valid' conv on each phase.
  const extraH = (rate - ((h + padTotal) % rate)) % rate;
  const extraW = (rate - ((wd + padTotal) % rate)) % rate;
  const s2b = tf.spaceToBatchND(x, [rate, rate], [[p0, padTotal - p0 + extraH], [p0, padTotal - p0 + extraW]]) as tf.Tensor4D;
  const y = tf.conv2d(s2b, w, 1, 'valid');
  return tf.batchToSpaceND(y, [rate, rate], [[0, extraH], [0, extraW]]) as tf.Tensor4D;
}

export function convTranspose(s: Store, name: string, cin: number, cout: number, k: number, stride: number, opts: { bias?: boolean } = {}): Layer {
  // conv2dTranspose filters are [k, k, out, in].
  const w = s.param(`${name}/w`, [k, k, cout, cin], 'he', k * k * cin / (stride * stride));
  const b = opts.bias === false ? undefined : s.param(`${name}/b`, [cout], 'zeros');
  return {
    apply: (x) => {
      const [n, h, wd] = x.shape;
      const y = tf.conv2dTranspose(x, w as tf.Tensor4D, [n, h * stride, wd * stride, cout], stride, 'same');
      return b ? tf.add(y, b) : y;
    },
  };
}

/** Batch norm; exported with running statistics as a per-channel affine (convert/ folds it into a conv before it). */
export function batchNorm(s: Store, name: string, c: number, momentum = 0.9, eps = 1e-5): ExportLayer {
  const gamma = s.param(`${name}/gamma`, [c], 'ones');
  const beta = s.param(`${name}/beta`, [c], 'zeros');
  const runMean = s.buffer(`${name}/mean`, [c], 0);
  const runVar = s.buffer(`${name}/var`, [c], 1);
  return {
    apply: (x, mode) => {
      if (mode === 'eval') {
        const scale = tf.mul(gamma, tf.rsqrt(tf.add(runVar, eps)));
        return tf.add(tf.mul(x, scale), tf.sub(beta, tf.mul(runMean, scale))) as tf.Tensor4D;
      }
      const n = x.size / c;
      return batchNormTrain(x, gamma, beta, eps, mode === 'train' ? (mean, variance) => {
        s.queueUpdate(runMean, tf.add(tf.mul(runMean, momentum), tf.mul(mean, 1 - momentum)));
        // Running variance is the unbiased estimate, as in PyTorch and Keras.
        s.queueUpdate(runVar, tf.add(tf.mul(runVar, momentum), tf.mul(variance, (1 - momentum) * n / Math.max(n - 1, 1))));
      } : undefined);
    },
    emit: (g, x) => {
      const v = values(runVar), m = values(runMean), bt = values(beta);
      const scale = values(gamma).map((gi, i) => gi / Math.sqrt(v[i] + eps));
      return g.affine(x, scale, bt.map((bi, i) => bi - m[i] * scale[i]));
    },
  };
}

/**
 * Batch norm with batch statistics as ONE node on the gradient tape, with the hand-derived backward
 *   dx = gamma * rstd / N * (N dy - sum(dy) - xhat * sum(dy xhat)),  dgamma = sum(dy xhat),  dbeta = sum(dy)
 * saving only x and per-channel vectors. Written out in elementary ops, the tape kept about five
 * activation-sized tensors per BN (DenseNet121 at 256x256 ran out of wasm's 4 GB heap), and tfjs's
 * FusedBatchNorm gradient tiles its statistics with wasm's slow Tile. First-order only: no critic
 * (the only second-order path, WGAN-GP) uses batch norm. `onStats` sees the batch mean and
 * (biased) variance inside the forward pass, off the tape.
 */
export function batchNormTrain(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, eps: number, onStats?: (mean: tf.Tensor1D, variance: tf.Tensor1D) => void): tf.Tensor4D {
  const axes = [0, 1, 2];
  const op = tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const mean = tf.mean(xi, axes) as tf.Tensor1D;
    const centered = tf.sub(xi, mean);
    const variance = tf.mean(tf.square(centered), axes) as tf.Tensor1D;
    onStats?.(mean, variance);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    save([xi, mean, rstd, g]);
    return {
      value: tf.add(tf.mul(centered, tf.mul(rstd, g)), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, m, r, gs] = saved;
        const count = xs.size / xs.shape[3]!;
        const xhat = tf.mul(tf.sub(xs, m), r);
        const dbeta = tf.sum(dy, axes);
        const dgamma = tf.sum(tf.mul(dy, xhat), axes);
        const dx = tf.mul(tf.sub(tf.sub(tf.mul(dy, count), dbeta), tf.mul(xhat, dgamma)), tf.div(tf.mul(gs, r), count));
        return [dx, dgamma, dbeta];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, gamma, beta) as tf.Tensor4D;
}

/** Instance norm (per sample, per channel) with a learned affine; safe under WGAN-GP. */
export function instanceNorm(s: Store, name: string, c: number, eps = 1e-5): Layer {
  const gamma = s.param(`${name}/gamma`, [c], 'ones');
  const beta = s.param(`${name}/beta`, [c], 'zeros');
  return {
    apply: (x) => {
      const mean = tf.mean(x, [1, 2], true);
      const centered = tf.sub(x, mean);
      const variance = tf.mean(tf.square(centered), [1, 2], true);
      return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), gamma), beta) as tf.Tensor4D;
    },
  };
}

export interface DenseLayer {
  apply(x: tf.Tensor2D): tf.Tensor2D;
  emit(g: GraphBuilder, x: number): number;
}

export function dense(s: Store, name: string, cin: number, cout: number, init: 'he' | 'glorot' = 'glorot'): DenseLayer {
  const w = s.param(`${name}/w`, [cin, cout], init, cin, cout);
  const b = s.param(`${name}/b`, [cout], 'zeros');
  return {
    apply: (x) => tf.add(tf.matMul(x, w as tf.Tensor2D), b),
    emit: (g, x) => g.dense(x, values(w), values(b), cout),
  };
}

export const relu: ExportLayer = { apply: (x) => tf.relu(x), emit: (g, x) => g.relu(x) };
/**
 * Leaky ReLU (slope 0.2) as relu(x) - 0.2 relu(-x): tfjs's LeakyRelu gradient uses Greater, which
 * has no gradient, so WGAN-GP's second-order pass through the critics fails with tf.leakyRelu.
 */
export const leaky = <T extends tf.Tensor>(x: T): T => tf.sub(tf.relu(x), tf.mul(tf.relu(tf.neg(x)), 0.2)) as T;
export const leakyLayer: Layer = { apply: (x) => leaky(x) };
export const tanhLayer: Layer = { apply: (x) => tf.tanh(x) };
export const identity: ExportLayer = { apply: (x) => x, emit: (_g, x) => x };

export function maxPool(size: number, stride: number, padding: 'same' | 'valid'): ExportLayer {
  return { apply: (x) => tf.maxPool(x, size, stride, padding), emit: (g, x) => g.pool('maxpool', x, size, stride, padding) };
}

export function avgPool(size: number, stride: number, padding: 'same' | 'valid'): ExportLayer {
  return { apply: (x) => tf.avgPool(x, size, stride, padding), emit: (g, x) => g.pool('avgpool', x, size, stride, padding) };
}

export function zeroPad(p: number): ExportLayer {
  return { apply: (x) => tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]), emit: (g, x) => g.pad(x, p) };
}

/** DenseNet's connection: the input, concatenated with what `branch` makes of it. */
export function denseConnect(branch: ExportLayer): ExportLayer {
  return {
    apply: (x, mode) => tf.concat([x, branch.apply(x, mode)], 3),
    emit: (g, x) => g.concat([x, branch.emit(g, x)]),
  };
}

/** ResNet's connection: body(x) + shortcut(x) (identity when absent). */
export function residual(body: ExportLayer, shortcut?: ExportLayer): ExportLayer {
  return {
    apply: (x, mode) => tf.add(body.apply(x, mode), shortcut ? shortcut.apply(x, mode) : x) as tf.Tensor4D,
    emit: (g, x) => g.add(body.emit(g, x), shortcut ? shortcut.emit(g, x) : x),
  };
}

const exportable = (l: Layer): l is ExportLayer => 'emit' in l;

export function sequential(...layers: ExportLayer[]): ExportLayer;
export function sequential(...layers: Layer[]): Layer;
export function sequential(...layers: Layer[]): Layer {
  const apply = (x: tf.Tensor4D, mode: Mode) => layers.reduce((h, l) => l.apply(h, mode), x);
  if (!layers.every(exportable)) return { apply };
  const chain: ExportLayer = { apply, emit: (g, x) => layers.reduce((t, l) => l.emit(g, t), x) };
  return chain;
}

/**
 * Gradient checkpointing: `body` runs off the tape in the forward pass (its intermediates are freed
 * at once) and is recomputed in the backward pass, where its own gradient is taken. Memory for a
 * dense block then costs its input instead of every concatenation inside it (DenseNet121 keeps
 * O(layers^2) activations), for one more forward of the block. `variables` are the trainable
 * variables the body reads: they must be explicit inputs so the outer gradient reaches them.
 * Batch-norm running statistics are updated once, in the first forward. Inference is `body` itself.
 */
export function recomputed(body: ExportLayer, variables: tf.Variable[]): ExportLayer {
  const apply = (x: tf.Tensor4D, mode: Mode): tf.Tensor4D => {
    if (mode === 'eval') return body.apply(x, mode);
    const op = tf.customGrad(((...args: unknown[]) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const xi = args[0] as tf.Tensor4D;
      save([xi]);
      return {
        value: body.apply(xi, mode),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => withOwnTape(() => {
          const replay: Mode = mode === 'train' ? 'train-no-stats' : mode;
          return tf.grads((xx: tf.Tensor) => tf.sum(tf.mul(body.apply(xx as tf.Tensor4D, replay), dy)))([saved[0], ...variables]);
        }),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return op(x, ...variables) as tf.Tensor4D;
  };
  return { apply, emit: body.emit };
}

/**
 * A gradient computed inside another gradient's backward pass: tfjs's engine starts a fresh tape
 * for it and, when it ends, drops the engine's active tape, which the outer pass still owns (its
 * saved tensors are released from it at the end). Restore the outer tape afterwards.
 */
function withOwnTape<T>(f: () => T): T {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  try { return f(); } finally { state.activeTape = outer; }
}

/**
 * The anti-gridding head of the dilated encoders (Yu et al.; Murez et al. 5.3): a dilation-2 then a
 * dilation-1 3x3 conv, each with BN and ReLU, randomly initialised. `channels` 0 omits it.
 */
export const CONTEXT_DILATIONS = [2, 1] as const;
export function contextHead(s: Store, cin: number, channels: number): { layer: ExportLayer; channels: number } {
  if (channels === 0) return { layer: identity, channels: cin };
  const units = CONTEXT_DILATIONS.map((d, i) => sequential(
    conv2d(s, `context${i + 1}/conv`, i === 0 ? cin : channels, channels, 3, 1, { bias: false, dilation: d }),
    batchNorm(s, `context${i + 1}/bn`, channels),
    relu,
  ));
  return { layer: sequential(...units), channels };
}
