/** `i2i eval`: rebuild a run's model from its checkpoint and measure it on the target domain. */
import * as path from 'node:path';
import { UserError } from '../core/errors';
import { CITYSCAPES_CLASSES } from '../core/labels';
import type { DigitDomain } from './data/digits';
import { loadDigitDomain } from './data/digits';
import { centreCrops, isOfficeDomain, readOffice } from './data/office';
import { listScenes } from './data/segmentation';
import { evaluateClassifier, formatConfusion, type ClassificationReport } from './eval';
import type { Config } from './config';
import { sourceOf, type ImageSource } from './data/types';
import { evaluateSegmenter } from './eval-seg';
import type { I2IModel } from './i2i';
import { openRun, type RunWeights } from './run';
import { recalibrateBatchNorm, sceneBatches, sourceBatches } from './bn-recalibrate';

export interface EvalOptions {
  targetRoot?: string;
  split?: string;
  /** Segmentation: evaluate at most this many frames (default: the whole split). */
  limit?: number;
  /**
   * Precise BN / AdaBN: re-estimate the batch-norm statistics of f (and h) on this many unlabelled
   * target frames of the train split before evaluating (in memory; the run is not changed).
   */
  bnFrames?: number;
  /** Where those frames come from (default: the target root); never the evaluated frames themselves. */
  bnRoot?: string;
  /** 'ema-teacher': evaluate a self-training run's teacher (f_ema, h_ema) instead of its student. */
  weights?: RunWeights;
  progress?: (line: string) => void;
}

/** What the statistics were re-estimated on (`i2i eval --bn-frames`). */
export interface BnSource { frames: number; source: string; split: string; layers: number }

export interface SegmentationReport { mIoU: number; perClass: number[]; pixelAccuracy: number; n: number; confusion: Float64Array }

/** A digits target's evaluation split: its held-out split where it has one (optdigits, folders and Office domains have a single set). */
export function defaultDigitSplit(target: string): 'train' | 'test' {
  return target === 'optdigits' || target === 'folder' || isOfficeDomain(target) ? 'train' : 'test';
}

/**
 * A classifier's labelled target images, preprocessed as the trainer's evaluation sees them: digits
 * in memory, Office domains as centre crops of their resized images. `i2i eval`, evalEvery, convert.
 */
export async function loadEvalSet(config: Config, o: { root?: string; split?: 'train' | 'test'; limit?: number; flag?: string } = {}): Promise<ImageSource> {
  const d = config.data;
  const split = o.split ?? defaultDigitSplit(d.target);
  const flag = o.flag ?? '--target-root';
  if (isOfficeDomain(d.target)) {
    if (split !== 'train') throw new UserError(`Office-31 domains have one set of images, not a ${split} split.`, 'Drop the split option: the target domain is evaluated on all its images (centre crops), as in the paper.');
    return centreCrops(await readOffice(d.target, o.root ?? d.targetRoot, { side: d.resize ?? d.imageSize, limit: o.limit, flag }), d.imageSize);
  }
  return sourceOf(await loadDigitDomain({ domain: d.target as DigitDomain, root: o.root ?? d.targetRoot, split, size: d.imageSize, channels: d.channels, limit: o.limit, flag }));
}

export async function evaluateRun(runDir: string, opts: EvalOptions = {}): Promise<{ report?: ClassificationReport; seg?: SegmentationReport; json: object; text: string }> {
  if (opts.bnFrames !== undefined && !(Number.isInteger(opts.bnFrames) && opts.bnFrames > 0)) throw new UserError(`--bn-frames must be a positive integer, got ${opts.bnFrames}.`, 'Pass the number of unlabelled target frames to re-estimate batch-norm statistics on, e.g. --bn-frames 100.');
  if (opts.bnRoot !== undefined && opts.bnFrames === undefined) throw new UserError('--bn-root without --bn-frames re-estimates nothing.', 'Add --bn-frames N.');
  const { model, meta } = openRun(runDir, { weights: opts.weights });
  const config = meta.config;
  try {
    const d = config.data;
    if (config.kind === 'segment') return await evaluateSegmentationRun(model, runDir, meta.step, opts);
    const split = (opts.split ?? defaultDigitSplit(d.target)) as 'train' | 'test';
    const bn = opts.bnFrames ? await recalibrateClassifier(model, opts.bnFrames, opts, split) : undefined;
    const set = await loadEvalSet(config, { root: opts.targetRoot, split, limit: opts.limit });
    const report = evaluateClassifier(model, set);
    const json = { task: config.task, method: config.method, step: meta.step, weights: opts.weights ?? 'student', target: d.target, split, n: report.n, unit: 'fraction' as const, accuracy: report.accuracy, perClass: report.perClass, confusion: report.confusion, ...(bn && { bn }) };
    const text = `${bnLine(bn)}${config.task} / ${config.method}${whose(opts.weights)} at step ${meta.step}, target ${d.target} (${split})\n${formatConfusion(report, meta.classes)}`;
    return { report, json, text };
  } finally {
    model.dispose();
  }
}

const whose = (w: RunWeights | undefined) => (w === 'ema-teacher' ? ' (its EMA teacher)' : '');
const bnLine = (bn: BnSource | undefined) => (bn ? `batch-norm statistics of ${bn.layers} layers re-estimated on ${bn.frames} unlabelled target frames (${bn.split} split of ${bn.source})\n` : '');

/** The classifier's batch norm on the target's train images (labels unread), in batches of the run's size. */
async function recalibrateClassifier(model: I2IModel, n: number, opts: EvalOptions, evalSplit: 'train' | 'test'): Promise<BnSource> {
  const d = model.config.data;
  const root = opts.bnRoot ?? opts.targetRoot ?? d.targetRoot;
  // Domains with one set of images (optdigits, Office, folders) are evaluated on the images every
  // method trained on unlabelled (transductive): the statistics can only come from that set too.
  const single = defaultDigitSplit(d.target) === 'train';
  if (!single && evalSplit === 'train' && path.resolve(root ?? '') === path.resolve(opts.targetRoot ?? d.targetRoot ?? '')) {
    throw new UserError('--bn-frames reads the train split, which is also the split being evaluated.', 'Evaluate --split test, or pass --bn-root with other target images.');
  }
  const set = await loadEvalSet(model.config, { root, split: 'train', limit: n, flag: opts.bnRoot ? '--bn-root' : '--target-root' });
  const r = await recalibrateBatchNorm(model, sourceBatches(set, model.config.batchSize));
  const bn = { frames: r.images, source: root ? path.resolve(root) : d.target, split: 'train', layers: r.layers };
  opts.progress?.(`[eval] ${bnLine(bn).trim()}${single ? ' (this domain has one set: the evaluated images, unlabelled, as in training)' : ''}`);
  return bn;
}

async function evaluateSegmentationRun(model: I2IModel, runDir: string, step: number, opts: EvalOptions) {
  const config = model.config;
  const d = config.data;
  const root = opts.targetRoot ?? d.targetRoot;
  if (!root) throw new UserError('eval needs --target-root: a folder with labelled target frames (Cityscapes layout).', `This run trained on ${d.targetVideos ? 'videos' : 'a target'} without labels; point --target-root at leftImg8bit/ + gtFine/.`);
  const split = opts.split ?? 'val';
  let bn: BnSource | undefined;
  if (opts.bnFrames) {
    // Whole train-split frames at the evaluation scale, one per batch; their labels are not read.
    const bnRoot = path.resolve(opts.bnRoot ?? root);
    if (split === 'train' && bnRoot === path.resolve(root)) throw new UserError('--bn-frames reads the train split, which is also the split being evaluated.', 'Evaluate another --split, or pass --bn-root with other target frames.');
    const frames = listScenes(d.target, bnRoot, 'train', opts.bnRoot ? '--bn-root' : '--target-root', false).items.slice(0, opts.bnFrames);
    opts.progress?.(`[eval] re-estimating batch-norm statistics on ${frames.length} target frames of ${bnRoot} (train)`);
    const r = await recalibrateBatchNorm(model, sceneBatches(frames, d.scale));
    bn = { frames: r.images, source: bnRoot, split: 'train', layers: r.layers };
    opts.progress?.(`[eval] ${bnLine(bn).trim()}`);
  }
  const list = listScenes(d.target, root, split, '--target-root', true);
  if (list.skipped.length) opts.progress?.(`[eval] ${list.skipped.length} frame(s) without a label map skipped`);
  const items = opts.limit ? list.items.slice(0, opts.limit) : list.items;
  const r = await evaluateSegmenter((x, hw) => model.predict(x, 'target', hw), items, d.scale, CITYSCAPES_CLASSES.length,
    (i, n) => { if (opts.progress && (i % 25 === 0 || i === n)) opts.progress(`[eval] ${i}/${n} frames`); });
  const perClass = Object.fromEntries(CITYSCAPES_CLASSES.map((c, i) => [c, r.perClass[i]]));
  // JSON scores are fractions in [0, 1]; the text prints percentages.
  // The confusion matrix in pixels (rows: truth, columns: prediction, trainId order): which class a class is taken for.
  const k = CITYSCAPES_CLASSES.length;
  const confusion = Array.from({ length: k }, (_, i) => Array.from(r.confusion.subarray(i * k, (i + 1) * k)));
  const json = { task: config.task, method: config.method, step, weights: opts.weights ?? 'student', split, n: r.n, unit: 'fraction' as const, mIoU: r.mIoU, pixelAccuracy: r.pixelAccuracy, perClass, confusion, ...(bn && { bn }) };
  const pct = (v: number) => (Number.isNaN(v) ? '  -  ' : (v * 100).toFixed(1).padStart(5));
  const text = [
    ...(bn ? [bnLine(bn).trim()] : []),
    `${config.task} / ${config.method}${whose(opts.weights)} at step ${step}, ${r.n} target frames (${split}) of ${root}`,
    `mIoU ${pct(r.mIoU)}%   pixel accuracy ${pct(r.pixelAccuracy)}%   (IoU per class in %; '-': class absent from labels and predictions)`,
    ...CITYSCAPES_CLASSES.map((c, i) => `  ${c.padEnd(14)} ${pct(r.perClass[i])}`),
  ].join('\n');
  return { seg: { mIoU: r.mIoU, perClass: r.perClass, pixelAccuracy: r.pixelAccuracy, n: r.n, confusion: r.confusion }, json, text };
}
