/**
 * `i2i translate`: a PNG grid of what a run's decoders make of n source and n target images, the
 * quickest check that the image-level terms work (decoders that ignore their input still lower
 * L_tr; README, "Configuration").
 *
 *   rows: x | g_y(f(x)) source -> target | g_x(f(x)) reconstruction | y | g_x(f(y)) | g_y(f(y))
 *
 * Batch statistics as in training: f and the decoders normalise each domain by its own batch (the
 * running statistics follow the target, so 'eval' mode would skew x).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../core/tf';
import { UserError } from '../core/errors';
import { listScenes, loadSegSample, type SegItem } from './data/segmentation';
import { sampledFrames } from './data/video-frames';
import type { I2IModel } from './i2i';
import { openRun } from './run';
import { loadDigitSets } from './trainer';

export interface TranslateOptions {
  out: string;
  /** Images per domain (columns). */
  n?: number;
  sourceRoot?: string;
  targetRoot?: string;
}

export interface TranslateReport {
  out: string;
  n: number;
  /** Mean |image - g(f(image))| per domain, in [-1, 1] units (0 = perfect reconstruction). */
  reconstructionL1: { source: number; target: number };
  /** Classification: how often h reads a translated source image as its source label. */
  translatedAgreement?: number;
}

/** One strip of n images side by side, as 0..255 bytes. */
export interface RawImage { pixels: Uint8Array; width: number; height: number; channels: 1 | 3 }
export const TRANSLATION_ROWS = ['x', 'xToY', 'xRec', 'y', 'yToX', 'yRec'] as const;
export type TranslationRow = (typeof TRANSLATION_ROWS)[number];
export interface Translations extends Omit<TranslateReport, 'out'> { rows: Record<TranslationRow, RawImage> }

/** The six rows above as images: the report (figures 4 and 6 of the paper) and the grid use them. */
export async function translations(runDir: string, opts: Omit<TranslateOptions, 'out'> = {}): Promise<Translations> {
  const n = opts.n ?? 8;
  if (!(Number.isInteger(n) && n > 0 && n <= 64)) throw new UserError(`--n must be an integer from 1 to 64, got ${opts.n}.`);
  const { model } = openRun(runDir);
  try {
    if (!model.dec) {
      throw new UserError(`The run in ${runDir} (method ${model.config.method}) has no decoders to translate with.`, 'Use a run trained with L_id, L_tr, L_cyc or L_trc (e.g. --method full or cyclegan).');
    }
    const { x, y, labels } = await loadImages(model, runDir, n, opts);
    try {
      return render(model, x, y, labels);
    } finally {
      x.dispose(); y.dispose();
    }
  } finally {
    model.dispose();
  }
}

export async function translateRun(runDir: string, opts: TranslateOptions): Promise<TranslateReport> {
  const { rows, ...report } = await translations(runDir, opts);
  const { width, channels } = rows.x;
  const height = TRANSLATION_ROWS.reduce((h, r) => h + rows[r].height, 0);
  const grid = Buffer.concat(TRANSLATION_ROWS.map((r) => rows[r].pixels));
  fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  fs.writeFileSync(opts.out, await encodePng({ pixels: grid, width, height, channels }));
  return { out: opts.out, ...report };
}

/** A raw strip (or grid) as a PNG. */
export async function encodePng(img: RawImage): Promise<Buffer> {
  const sharp = (await import('sharp')).default;
  return sharp(Buffer.from(img.pixels.buffer, img.pixels.byteOffset, img.pixels.byteLength), { raw: { width: img.width, height: img.height, channels: img.channels } })
    .toColourspace(img.channels === 1 ? 'b-w' : 'srgb').png().toBuffer();
}

async function loadImages(model: I2IModel, runDir: string, n: number, opts: Omit<TranslateOptions, 'out'>): Promise<{ x: tf.Tensor4D; y: tf.Tensor4D; labels?: Int32Array }> {
  const d = model.config.data;
  if (model.config.kind === 'classify') {
    // The first n of each training set, read as the trainer reads them.
    const { source: s, target: t } = await loadDigitSets({ ...model.config, data: { ...d, sourceLimit: n, targetLimit: n,
      sourceRoot: opts.sourceRoot ?? d.sourceRoot, targetRoot: opts.targetRoot ?? d.targetRoot } });
    const k = Math.min(s.labels.length, t.labels.length);
    const shape = [k, d.imageSize, d.imageSize, d.channels] as [number, number, number, number];
    const px = k * d.imageSize * d.imageSize * d.channels;
    return { x: tf.tensor4d(s.images.subarray(0, px), shape), y: tf.tensor4d(t.images.subarray(0, px), shape), labels: s.labels.slice(0, k) };
  }
  const src = listScenes(d.source, opts.sourceRoot ?? d.sourceRoot, 'train', '--source-root', false).items;
  // A run on videos trained on the frames it sampled into its folder.
  const sampled = d.targetVideos && !opts.targetRoot ? sampledFrames(path.join(runDir, 'target-frames')) : [];
  const tgt: SegItem[] = sampled.length ? sampled.map((image) => ({ image, id: path.basename(image, '.png') }))
    : listScenes(d.target, opts.targetRoot ?? d.targetRoot, d.targetSplit, '--target-root', false).items;
  const k = Math.min(n, src.length, tgt.length);
  if (k === 0) throw new UserError('No source or target frames to translate.', 'Pass --source-root / --target-root folders that hold frames.');
  // Centre crops at the training scale and size.
  const load = async (items: SegItem[]) => {
    const side = d.imageSize;
    const buf = new Float32Array(k * side * side * d.channels);
    for (let i = 0; i < k; i++) {
      const s = await loadSegSample(items[i], { scale: d.scale, crop: side, flip: false, rand: () => 0.5 });
      if (s.height !== side || s.width !== side) throw new UserError(`Frame ${items[i].image} is smaller than the ${side}px training crop at scale ${d.scale}.`);
      buf.set(s.image, i * side * side * d.channels);
    }
    return buf;
  };
  // Both read before either becomes a tensor: a bad target frame leaks nothing.
  const shape: [number, number, number, number] = [k, d.imageSize, d.imageSize, d.channels];
  const xs = await load(src.slice(0, k)), ys = await load(tgt.slice(0, k));
  return { x: tf.tensor4d(xs, shape), y: tf.tensor4d(ys, shape) };
}

function render(model: I2IModel, x: tf.Tensor4D, y: tf.Tensor4D, labels: Int32Array | undefined): Omit<Translations, 'out'> {
  const mode = 'train-no-stats' as const;
  const fy = model.targetEncoder();
  const r = tf.tidy(() => {
    const src = model.decodeFrom(model.f.apply(x, mode), mode), tgt = model.decodeFrom(fy.apply(y, mode), mode);
    const xRec = src.toX(), xToY = src.toY(), yToX = tgt.toX(), yRec = tgt.toY();
    const byRow: Record<TranslationRow, tf.Tensor4D> = { x, xToY, xRec, y, yToX, yRec };
    const strips = TRANSLATION_ROWS.map((k) => tf.clipByValue(tf.round(tf.mul(tf.add(tf.concat(tf.unstack(byRow[k]), 1), 1), 127.5)), 0, 255));
    const l1 = (a: tf.Tensor, b: tf.Tensor) => tf.mean(tf.abs(tf.sub(a, b)));
    const agree = labels ? tf.mean(tf.cast(tf.equal(tf.argMax(model.classify(fy.apply(xToY, mode), mode), 1), tf.tensor1d(labels, 'int32')), 'float32')) : tf.scalar(-1);
    return { strips, stats: tf.stack([l1(x, xRec), l1(y, yRec), agree]) };
  });
  try {
    const rows = Object.fromEntries(TRANSLATION_ROWS.map((k, i) => {
      const [height, width, channels] = r.strips[i].shape as [number, number, 1 | 3];
      return [k, { pixels: Uint8Array.from(r.strips[i].dataSync()), width, height, channels }];
    })) as Record<TranslationRow, RawImage>;
    const [source, target, agreement] = Array.from(r.stats.dataSync());
    return { rows, n: x.shape[0], reconstructionL1: { source, target }, ...(labels ? { translatedAgreement: agreement } : {}) };
  } finally {
    for (const t of r.strips) t.dispose();
    r.stats.dispose();
  }
}
