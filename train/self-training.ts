/**
 * Self-training on top of the I2I objective: one module owns the teacher and the mixing, as DACS
 * (Tranheden et al., WACV 2021) keeps its whole step around a plain segmentor; train/i2i.ts adds
 * its two terms to the objective like any other.
 *
 *   teacher     f_ema, h_ema: exponential moving averages of f and h (weights and running
 *               statistics), updated after every generator step; never differentiated
 *   pseudo      the teacher's arg-max on the clean target crop, weighted by its confidence:
 *               DACS/DAFormer's per-image q = share of pixels whose max probability exceeds
 *               `threshold` (weighting 'image'), or 1 on the confident pixels and 0 elsewhere
 *               ('pixel'); one threshold, or per class from this batch's confidences (CBST's
 *               class-balanced selection; segmentation's default is per pixel and per class)
 *   ClassMix    half of the classes of each source crop (its pixels and labels) pasted onto a
 *               target crop whose other pixels carry pseudo-labels (weight q, or 1 / 0 per pixel;
 *               pasted pixels 1);
 *               the source side is the translated g_y(f(x)) when the I2I decoders exist
 *   st          weighted per-pixel cross entropy of the student on the photometrically
 *               augmented mix (colour jitter, Gaussian blur)
 *   mic         MIC (Hoyer et al., CVPR 2023): the student on the target crop with random
 *               patches masked, against the teacher's labels of the unmasked crop
 *
 * Batch norm. The mix is a third distribution: the student normalises it by its own batch and
 * leaves the running statistics alone (mode 'train-no-stats'), as every pass on images that are
 * not target frames does; the running statistics follow pure target batches, the frames the model
 * is deployed on (train/i2i.ts makes one statistics-only target pass when no other term encodes
 * y). The teacher predicts with its running statistics ('eval'): the moving average of the
 * student's target statistics, i.e. as the deployed model would.
 */
import * as tf from '../core/tf';
import { IGNORE } from '../core/labels';
import { deriveSeed, mulberry32, permutation } from '../core/rng';
import type { Config } from './config';
import { copyStore, type Store } from './models/layers';
import { evalLogits, type Encoder, type ExportNet } from './models/net';
import { createClassifier, createEncoder } from './models/registry';

/** The teacher's networks, after the student's in a checkpoint. */
export const TEACHER_NETWORKS = ['f_ema', 'h_ema'] as const;

/**
 * The moving average's rate at `step` (0-based): Mean Teacher's warm-up min(1 - 1/(t+1), rate),
 * so that early on the teacher follows a student that changes fast (at step 0 it copies it).
 */
export function emaRate(rate: number, step: number): number {
  return Math.min(1 - 1 / (step + 1), rate);
}

/** The moving average of f and h, in stores of their own (f_ema, h_ema). */
export class Teacher {
  readonly f: Encoder;
  readonly h: ExportNet<tf.Tensor4D, tf.Tensor>;

  constructor(config: Config, numClasses: number) {
    this.f = createEncoder(config, 'f_ema', deriveSeed(config.seed, 'f_ema'));
    this.h = createClassifier(config, 'h_ema', this.f, numClasses, deriveSeed(config.seed, 'h_ema'));
  }

  networks(): { name: string; store: Store }[] {
    return [this.f, this.h];
  }

  /** The teacher becomes the student (a run's start, `--from RUN`, a checkpoint without a teacher). */
  copyFrom(f: Store, h: Store): void {
    copyStore(f, this.f.store);
    copyStore(h, this.h.store);
  }

  /** teacher <- a * teacher + (1 - a) * student, weights and running statistics alike. */
  update(f: Store, h: Store, a: number): void {
    for (const [from, to] of [[f, this.f.store], [h, this.h.store]] as const) {
      for (const [src, dst] of [[from.trainable, to.trainable], [from.buffers, to.buffers]] as const) {
        for (const [k, v] of src) {
          const t = dst.get(k.replace(/^[^/]+/, to.net))!;
          tf.tidy(() => t.assign(tf.add(tf.mul(t, a), tf.mul(v, 1 - a))));
        }
      }
    }
  }

  /** Logits with running statistics; per pixel, upsampled to `outHW` when given. No gradient is taken here. */
  logits(images: tf.Tensor4D, outHW?: [number, number]): tf.Tensor {
    return evalLogits(this.f, this.h, images, outHW);
  }
}

/** Pseudo-labels of a batch: per item (pixel, or image for classifiers) its class and its weight. */
export interface PseudoLabels {
  labels: Int32Array;
  /** Per item: its image's confidence weight q (weighting 'image'), or 1 / 0 for a confident / unsure item ('pixel'). */
  weights: Float32Array;
  /** q per image. */
  confidence: Float32Array;
  /** The per-class thresholds used (the global one where no per-class one applies). */
  thresholds: Float32Array;
}

/**
 * DACS's weights from the teacher's arg-max `labels` and max probabilities `maxProb` (n images of
 * `per` items each): q_i = share of image i's items whose max probability exceeds the threshold,
 * on each of its items. `weighting` 'pixel' instead gives each confident item 1 and the others 0
 * (FixMatch's and CBST's selection): the same total weight per image, placed on the labels the
 * teacher is sure of rather than spread over all of them.
 * `classPercentile` p in (0, 100]: class c's threshold is min(threshold, the p-th percentile of the
 * max probabilities of the batch's items labelled c), so a class the teacher is rarely sure of
 * still yields labels (CBST's class-balanced selection, per batch). 0 = one threshold.
 */
export function confidenceWeights(labels: Int32Array, maxProb: Float32Array, n: number, threshold: number, numClasses: number, classPercentile = 0, weighting: 'image' | 'pixel' = 'image'): PseudoLabels {
  const per = labels.length / n;
  const thresholds = new Float32Array(numClasses).fill(threshold);
  if (classPercentile > 0) {
    const byClass: number[][] = Array.from({ length: numClasses }, () => []);
    for (let i = 0; i < labels.length; i++) byClass[labels[i]].push(maxProb[i]);
    byClass.forEach((v, c) => {
      if (v.length === 0) return;
      v.sort((a, b) => a - b);
      const at = v[Math.min(v.length - 1, Math.max(0, Math.ceil(classPercentile / 100 * v.length) - 1))];
      thresholds[c] = Math.min(threshold, at);
    });
  }
  const confidence = new Float32Array(n);
  const weights = new Float32Array(labels.length);
  for (let i = 0; i < n; i++) {
    let sure = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      if (maxProb[j] <= thresholds[labels[j]]) continue;
      sure++;
      if (weighting === 'pixel') weights[j] = 1;
    }
    confidence[i] = sure / per;
    if (weighting === 'image') weights.fill(confidence[i], i * per, (i + 1) * per);
  }
  return { labels, weights, confidence, thresholds };
}

/**
 * ClassMix's mask for each source label map (n maps of `per` pixels): 1 on the pixels of half of
 * the classes present (ignored pixels never count), chosen at random; an odd count rounds up
 * (DACS: (k + k % 2) / 2).
 */
export function classMixMask(labels: Int32Array, n: number, rand: () => number): { mask: Float32Array; chosen: number[][] } {
  const per = labels.length / n;
  const mask = new Float32Array(labels.length);
  const chosen: number[][] = [];
  for (let i = 0; i < n; i++) {
    const present = new Set<number>();
    for (let j = i * per; j < (i + 1) * per; j++) if (labels[j] !== IGNORE) present.add(labels[j]);
    const classes = [...present].sort((a, b) => a - b);
    const order = permutation(classes.length, rand);
    const pick = new Set(Array.from(order.subarray(0, (classes.length + classes.length % 2) / 2), (k) => classes[k]));
    chosen.push([...pick].sort((a, b) => a - b));
    for (let j = i * per; j < (i + 1) * per; j++) if (pick.has(labels[j])) mask[j] = 1;
  }
  return { mask, chosen };
}

/** MIC's mask: 1 keeps a pixel; each `patch` x `patch` cell of each image is masked with probability `ratio`. */
export function patchKeepMask(n: number, h: number, w: number, patch: number, ratio: number, rand: () => number): Float32Array {
  const keep = new Float32Array(n * h * w);
  const gh = Math.ceil(h / patch), gw = Math.ceil(w / patch);
  for (let i = 0; i < n; i++) {
    const cells = Array.from({ length: gh * gw }, () => (rand() < ratio ? 0 : 1));
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) keep[(i * h + y) * w + x] = cells[Math.floor(y / patch) * gw + Math.floor(x / patch)];
    }
  }
  return keep;
}

/** One image's photometric augmentation: jitter factors (1 = unchanged) and blur sigma (0 = none). */
export interface Photometric { brightness: number; contrast: number; saturation: number; blurSigma: number }

/**
 * DACS's strong augmentation: colour jitter of strength `jitter` with probability 0.8 (brightness,
 * contrast, saturation; not hue), Gaussian blur with sigma in [0.15, 1.15] with probability 0.5.
 */
export function drawPhotometric(n: number, rand: () => number, jitter: number, blur: boolean): Photometric[] {
  return Array.from({ length: n }, () => {
    const jit = rand() < 0.8 && jitter > 0;
    const f = () => 1 + (rand() * 2 - 1) * jitter;
    const p = jit ? { brightness: f(), contrast: f(), saturation: f() } : { brightness: 1, contrast: 1, saturation: 1 };
    const sigma = blur && rand() < 0.5 ? 0.15 + rand() : 0;
    return { ...p, blurSigma: sigma };
  });
}

/** Odd Gaussian kernel side for an image of side `side`: about a tenth of it (DACS), at least 3. */
export function blurKernelSize(side: number): number {
  const k = Math.floor(Math.ceil(0.1 * side) - 0.5 + (Math.ceil(0.1 * side) % 2));
  return Math.max(3, k % 2 === 1 ? k : k + 1);
}

export function gaussianKernel(size: number, sigma: number): Float32Array {
  const k = new Float32Array(size);
  const c = (size - 1) / 2;
  let sum = 0;
  for (let i = 0; i < size; i++) { k[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma)); sum += k[i]; }
  for (let i = 0; i < size; i++) k[i] /= sum;
  return k;
}

/**
 * Applies `params` to images in [-1, 1] (NHWC, 1 or 3 channels): brightness scales, contrast
 * scales about the image's mean grey, saturation blends with the grey image (3 channels only),
 * values are clipped to the range, then the separable blur (reflected borders).
 */
export function photometric(images: tf.Tensor4D, params: Photometric[]): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, ch] = images.shape;
    const k = blurKernelSize(Math.min(h, w));
    const out = tf.unstack(images).map((img, i) => {
      const p = params[i];
      let x = tf.mul(tf.add(img, 1), 0.5) as tf.Tensor3D;
      const grey = (t: tf.Tensor3D) => (ch === 3 ? tf.sum(tf.mul(t, tf.tensor1d([0.299, 0.587, 0.114])), -1, true) : t) as tf.Tensor3D;
      if (p.brightness !== 1) x = tf.mul(x, p.brightness);
      if (p.contrast !== 1) { const m = tf.mean(grey(x)); x = tf.add(tf.mul(tf.sub(x, m), p.contrast), m); }
      if (p.saturation !== 1 && ch === 3) { const g = grey(x); x = tf.add(g, tf.mul(tf.sub(x, g), p.saturation)); }
      x = tf.clipByValue(x, 0, 1);
      if (p.blurSigma > 0) {
        const g = gaussianKernel(k, p.blurSigma), r = (k - 1) / 2;
        // Channels as a batch of one-channel images through plain conv2d: its input gradient exists
        // on every backend (a pasted translation sits on the tape), depthwise's does not on wasm.
        const planes = tf.expandDims(tf.transpose(tf.mirrorPad(x, [[r, r], [r, r], [0, 0]], 'reflect'), [2, 0, 1]), -1) as tf.Tensor4D;
        const blurred = tf.conv2d(tf.conv2d(planes, tf.reshape(tf.tensor1d(g), [k, 1, 1, 1]) as tf.Tensor4D, 1, 'valid'), tf.reshape(tf.tensor1d(g), [1, k, 1, 1]) as tf.Tensor4D, 1, 'valid');
        x = tf.transpose(tf.squeeze(blurred, [3]), [1, 2, 0]) as tf.Tensor3D;
      }
      return tf.sub(tf.mul(x, 2), 1);
    });
    return tf.reshape(tf.stack(out), [n, h, w, ch]) as tf.Tensor4D;
  });
}

/** What a step's self-training terms need, made outside the gradient tape (owned: `dispose`). */
export interface Prepared {
  /** Teacher labels and weights of the clean target batch, shaped like the source labels. */
  pseudo: tf.Tensor;
  weights: tf.Tensor;
  /** ClassMix: 1 where the source side shows through ([n, h, w]); absent without mixing. */
  mix?: tf.Tensor3D;
  photometric: Photometric[];
  /** MIC: 1 on kept target pixels ([n, h, w, 1]). */
  micKeep?: tf.Tensor4D;
  /** Mean confidence weight q over the batch's target images (logged as `conf`). */
  confidence: number;
}

export function disposePrepared(p: Prepared | undefined): void {
  if (!p) return;
  p.pseudo.dispose(); p.weights.dispose(); p.mix?.dispose(); p.micKeep?.dispose();
}

export type SelfTrainingOptions = Config['selfTraining'];

/** The teacher, plus each step's pseudo-labels, mixing masks and augmentation draws. */
export class SelfTraining {
  readonly teacher: Teacher;
  readonly o: SelfTrainingOptions;

  constructor(readonly config: Config, readonly numClasses: number) {
    this.teacher = new Teacher(config, numClasses);
    this.o = config.selfTraining;
  }

  /** Whether the mix pastes source content (segmentation only: classifiers have no per-pixel labels). */
  get mixes(): boolean {
    return this.config.kind === 'segment' && this.o.mix !== 'none';
  }

  /**
   * The teacher's labels of `y` and this step's random draws (a function of (seed, step): a
   * resumed run draws the same). `sourceLabels` are the batch's ([n, h, w] per pixel, or [n]).
   */
  prepare(y: tf.Tensor4D, sourceLabels: tf.Tensor, step: number, withMic: boolean): Prepared {
    const n = y.shape[0];
    const seg = sourceLabels.rank === 3;
    const labelHW = seg ? [sourceLabels.shape[1], sourceLabels.shape[2]] as [number, number] : undefined;
    const [argmax, maxProb] = tf.tidy(() => {
      const logits = this.teacher.logits(y, labelHW);
      const p = tf.softmax(logits);
      return [tf.argMax(p, -1).toInt(), tf.max(p, -1)];
    });
    const w = confidenceWeights(argmax.dataSync() as Int32Array, maxProb.dataSync() as Float32Array, n, this.o.threshold, this.numClasses, this.o.classPercentile, this.o.weighting);
    argmax.dispose(); maxProb.dispose();
    const shape = sourceLabels.shape;
    const rand = (what: string) => mulberry32(deriveSeed(this.config.seed, what, step));
    let mix: tf.Tensor3D | undefined;
    if (this.mixes && seg) {
      const m = classMixMask(sourceLabels.dataSync() as Int32Array, n, rand('classmix'));
      mix = tf.tensor3d(m.mask, shape as [number, number, number]);
    }
    let micKeep: tf.Tensor4D | undefined;
    if (withMic) {
      const [, h, wd] = y.shape;
      micKeep = tf.tensor4d(patchKeepMask(n, h, wd, this.o.micPatch, this.o.micRatio, rand('mic')), [n, h, wd, 1]);
    }
    return {
      pseudo: tf.tensor(w.labels, shape, 'int32'),
      weights: tf.tensor(w.weights, shape, 'float32'),
      mix, micKeep,
      photometric: drawPhotometric(n, rand('photometric'), this.o.jitter, this.o.blur),
      confidence: w.confidence.reduce((a, b) => a + b, 0) / n,
    };
  }

  /**
   * The mixed batch: image, labels and per-pixel weights. `source` is what is pasted (x, or the
   * translated g_y(f(x)) with its gradient stopped); without mixing, the target crop alone.
   */
  mixed(p: Prepared, source: tf.Tensor4D, y: tf.Tensor4D, sourceLabels: tf.Tensor): { image: tf.Tensor4D; labels: tf.Tensor; weights: tf.Tensor } {
    if (!p.mix) return { image: photometric(y, p.photometric), labels: p.pseudo, weights: p.weights };
    const m = p.mix;
    const m4 = tf.expandDims(m, -1);
    const image = tf.add(tf.mul(m4, source), tf.mul(tf.sub(1, m4), y)) as tf.Tensor4D;
    const on = tf.greater(m, 0.5);
    return {
      image: photometric(image, p.photometric),
      labels: tf.where(on, sourceLabels, p.pseudo),
      weights: tf.where(on, tf.onesLike(p.weights), p.weights),
    };
  }

  /** After the generator step: the teacher moves towards the student. */
  update(f: Store, h: Store, step: number): void {
    this.teacher.update(f, h, emaRate(this.o.ema, step));
  }

}
