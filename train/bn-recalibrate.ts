/**
 * Precise batch norm (and AdaBN, Li et al. 2016, when the frames come from another domain): every
 * batch-norm layer of the inference path (f, then h if it has any) gets exact population statistics
 * over N frames instead of the last momentum updates of small training batches.
 *
 * Choice (as fvcore's precise BN): ONE pass with the networks in 'train' mode, so each layer sees
 * the layers before it normalised by the current batch's own statistics, as in training; for a
 * segmenter a batch is one whole frame. (The alternative, layer l measured under the already
 * recalibrated layers 1..l-1 in 'eval' mode, costs one pass per layer.) Per layer the batches are
 * pooled exactly, as if all their pixels were one population: mean over every pixel of every frame,
 * variance E[(x - mean)^2] over the same pixels (combined per batch with Chan's formula, in float64;
 * no N/(N-1) over millions of pixels). So one batch holding every frame gives exactly the statistics
 * that batch norm computes on it in 'train' mode: the model in 'eval' mode then equals 'train' mode.
 *
 * How the statistics are read without touching layers.ts: in 'train' mode a batch-norm layer queues
 *   mean <- m * mean + (1 - m) * batchMean,   var <- m * var + (1 - m) * n/(n-1) * batchVar
 * on its Store (layers.ts batchNorm). With both buffers at 0 the queued values are the batch
 * statistics times known factors: m is measured once per layer (a second pass of the first batch
 * with the buffers at 1; rounded to 6 decimals, so 0.9 and 0.99 come out exact) and n, the pixels
 * the layer normalises, is read from the layer's input shape in the networks' own inference IR.
 * Nothing is applied while measuring; only the buffers change, in memory (a run on disk never).
 */
import * as tf from '../core/tf';
import { UserError } from '../core/errors';
import type { I2IModel } from './i2i';
import { GraphBuilder } from './models/ir';
import type { ExportNet } from './models/net';
import type { Store } from './models/layers';
import { loadSegSample, type SegItem } from './data/segmentation';
import type { ImageSource } from './data/types';

/** One batch of images in [-1, 1], NHWC; each is read once and released. */
export interface BnBatch { data: Float32Array; shape: [number, number, number, number] }

export interface BnRecalibration {
  /** Batch-norm layers re-estimated, and the networks they belong to. */
  layers: number;
  networks: string[];
  images: number;
  batches: number;
}

interface BnLayer {
  net: ExportNet;
  key: string;
  mean: tf.Variable;
  variance: tf.Variable;
  channels: number;
  /** Pooled so far (float64): pixels, mean, sum of squared deviations. */
  count: number;
  mu: Float64Array;
  m2: Float64Array;
  momentum?: number;
}

/** The batch-norm layers of a store: buffer pairs `<layer>/mean`, `<layer>/var`. */
function bnLayers(net: ExportNet): BnLayer[] {
  const s: Store = net.store;
  return [...s.buffers].filter(([k]) => k.endsWith('/mean') && s.buffers.has(k.replace(/\/mean$/, '/var'))).map(([k, mean]) => {
    const key = k.replace(/\/mean$/, '');
    const c = mean.shape[0]!;
    return { net, key, mean, variance: s.buffers.get(`${key}/var`)!, channels: c, count: 0, mu: new Float64Array(c), m2: new Float64Array(c) };
  });
}

/** The networks target images go through at inference: f (ADDA: f_t), then h. */
export function inferencePath(model: I2IModel): ExportNet[] {
  return [model.targetEncoder(), model.h];
}

/**
 * Pixels each batch-norm layer normalises per image at input size HxW, in the order the layers run:
 * the layers' own IR (emit) with every batch-norm mean set to NaN, so that exactly their affines
 * carry NaN shifts (the input normalisation's does not).
 */
function pixelsPerImage(chain: ExportNet[], layers: BnLayer[], shape: number[]): { channels: number; pixels: number }[] {
  for (const l of layers) tf.tidy(() => l.mean.assign(tf.fill([l.channels], NaN)));
  const g = new GraphBuilder();
  let t = g.input([1, shape[1], shape[2], shape[3]]);
  for (const net of chain) t = net.emit(g, t);
  return g.nodes.filter((n) => n.op === 'affine' && n.shift.some(Number.isNaN)).map((n) => {
    const s = g.shapes[(n as { input: number }).input];
    return { channels: s[3], pixels: s[1] * s[2] };
  });
}

function fill(layers: BnLayer[], v: number): void {
  for (const l of layers) tf.tidy(() => { l.mean.assign(tf.fill([l.channels], v)); l.variance.assign(tf.fill([l.channels], v)); });
}

/**
 * Re-estimates the batch-norm statistics of `chain` (networks applied in sequence; those without
 * batch norm are only run through) on `batches`. Every batch must hold images of one size; for
 * a segmenter pass one frame per batch, for a classifier batches of its training size (a single
 * small image's own statistics are far from a training batch's). On failure the buffers are restored.
 */
export async function recalibrateChain(chain: ExportNet[], batches: Iterable<BnBatch> | AsyncIterable<BnBatch>, opts: { progress?: (images: number) => void } = {}): Promise<BnRecalibration> {
  const perNet = chain.map(bnLayers);
  const last = perNet.map((l) => l.length > 0).lastIndexOf(true);
  const layers = perNet.flat();
  if (last < 0) return { layers: 0, networks: [], images: 0, batches: 0 };
  const run = chain.slice(0, last + 1);
  const byVar = new Map<tf.Variable, { layer: BnLayer; which: 'mean' | 'var' }>();
  for (const l of layers) { byVar.set(l.mean, { layer: l, which: 'mean' }); byVar.set(l.variance, { layer: l, which: 'var' }); }
  const saved = layers.map((l) => [tf.clone(l.mean), tf.clone(l.variance)] as const);
  const stores = [...new Set(run.map((n) => n.store))];

  // Each forward pass: the queued updates of every layer, in the order the layers ran.
  let seen: { layer: BnLayer; mean?: Float32Array; var?: Float32Array }[] = [];
  const intercept = (v: tf.Variable, value: tf.Tensor) => {
    const hit = byVar.get(v);
    if (!hit) throw new Error(`recalibrate: an update of ${v.name}, which is not a batch-norm buffer`);
    let rec = seen.find((r) => r.layer === hit.layer);
    if (!rec) seen.push(rec = { layer: hit.layer });
    if (rec[hit.which]) throw new Error(`recalibrate: ${hit.layer.key} ran twice in one pass; its statistics would mix two inputs`);
    rec[hit.which] = Float32Array.from(value.dataSync() as Float32Array);
  };
  const forward = (b: BnBatch) => {
    seen = [];
    tf.tidy(() => { run.reduce<tf.Tensor>((x, net) => net.apply(x as tf.Tensor4D, 'train'), tf.tensor4d(b.data, b.shape)); });
    if (seen.length !== layers.length || seen.some((r) => !r.mean || !r.var)) throw new Error(`recalibrate: ${seen.length} of ${layers.length} batch-norm layers reported their statistics`);
    return seen as { layer: BnLayer; mean: Float32Array; var: Float32Array }[];
  };

  const pixels = new Map<string, { channels: number; pixels: number }[]>();
  let images = 0, count = 0;
  for (const s of stores) s.queueUpdate = intercept;
  try {
    for await (const b of batches) {
      const key = b.shape.slice(1).join('x');
      if (!pixels.has(key)) pixels.set(key, pixelsPerImage(run, layers, b.shape));
      const sizes = pixels.get(key)!;
      if (layers.every((l) => l.momentum === undefined)) {
        // m per layer: the same batch with the buffers at 1, then at 0; the difference is m.
        fill(layers, 1);
        const ones = forward(b);
        fill(layers, 0);
        forward(b).forEach((r, i) => {
          let sum = 0;
          for (let c = 0; c < r.layer.channels; c++) sum += ones[i].mean[c] - r.mean[c] + ones[i].var[c] - r.var[c];
          const m = Math.round(sum / (2 * r.layer.channels) * 1e6) / 1e6;
          if (!(m >= 0 && m < 1)) throw new Error(`recalibrate: ${r.layer.key} queued an update that is not a momentum average (m = ${m})`);
          r.layer.momentum = m;
        });
      }
      fill(layers, 0);
      const recs = forward(b);
      if (sizes.length !== recs.length || recs.some((r, i) => r.layer.channels !== sizes[i].channels)) {
        throw new Error('recalibrate: the batch-norm layers of the inference graph do not match the ones that ran');
      }
      recs.forEach((r, i) => {
        const l = r.layer, n = b.shape[0] * sizes[i].pixels, k = 1 - l.momentum!;
        const tot = l.count + n;
        for (let c = 0; c < l.channels; c++) {
          // Undo the queued factors: (1 - m) on the mean, (1 - m) n/(n-1) on the (biased) batch variance.
          const mu = r.mean[c] / k, v = r.var[c] / (k * n / Math.max(n - 1, 1));
          const d = mu - l.mu[c];
          l.mu[c] += d * n / tot;
          l.m2[c] += n * v + d * d * l.count * n / tot;
        }
        l.count = tot;
      });
      images += b.shape[0]; count++;
      opts.progress?.(images);
    }
    if (count === 0) throw new UserError('No frames to re-estimate batch-norm statistics on.', 'Pass a folder or dataset root that holds target images.');
    for (const l of layers) {
      tf.tidy(() => {
        l.mean.assign(tf.tensor1d(Float32Array.from(l.mu)));
        l.variance.assign(tf.tensor1d(Float32Array.from(l.m2, (s) => s / l.count)));
      });
    }
  } catch (e) {
    layers.forEach((l, i) => { l.mean.assign(saved[i][0]); l.variance.assign(saved[i][1]); });
    throw e;
  } finally {
    for (const s of stores) delete (s as Partial<Store>).queueUpdate;  // the prototype's again
    tf.dispose(saved.flat());
  }
  return { layers: layers.length, networks: [...new Set(layers.map((l) => l.net.name))], images, batches: count };
}

/** Precise BN / AdaBN of a live model's inference path (f or ADDA's f_t, then h). */
export function recalibrateBatchNorm(model: I2IModel, batches: Iterable<BnBatch> | AsyncIterable<BnBatch>, opts: { progress?: (images: number) => void } = {}): Promise<BnRecalibration> {
  return recalibrateChain(inferencePath(model), batches, opts);
}

/** Whole segmentation frames, one per batch, at `scale` of their size (as i2i eval reads them). */
export async function* sceneBatches(items: SegItem[], scale: number): AsyncGenerator<BnBatch> {
  for (const it of items) {
    const s = await loadSegSample({ ...it, label: undefined }, { scale, crop: 0, flip: false, rand: () => 0 });
    yield { data: s.image, shape: [1, s.height, s.width, 3] };
  }
}

/** A classifier's images in batches of `size`. */
export function* sourceBatches(set: ImageSource, size: number): Generator<BnBatch> {
  for (let i = 0; i < set.n; i += size) {
    const end = Math.min(i + size, set.n);
    yield { data: set.slice(i, end), shape: [end - i, set.height, set.width, set.channels] };
  }
}

/** Frames read one at a time by `load` (e.g. convert's image reader at the bundle's size), one per batch. */
export async function* loadedFrames(files: string[], load: (file: string) => Promise<Float32Array>, shape: [number, number, number]): AsyncGenerator<BnBatch> {
  for (const f of files) yield { data: await load(f), shape: [1, ...shape] };
}
