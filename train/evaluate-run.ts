/** `i2i eval`: rebuild a run's model from its checkpoint and measure it on the target domain. */
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
import { openRun } from './run';

export interface EvalOptions {
  targetRoot?: string;
  split?: string;
  /** Segmentation: evaluate at most this many frames (default: the whole split). */
  limit?: number;
  progress?: (line: string) => void;
}

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
  const { model, meta } = openRun(runDir);
  const config = meta.config;
  try {
    const d = config.data;
    if (config.kind === 'segment') return await evaluateSegmentationRun(model, runDir, meta.step, opts);
    const split = (opts.split ?? defaultDigitSplit(d.target)) as 'train' | 'test';
    const set = await loadEvalSet(config, { root: opts.targetRoot, split });
    const report = evaluateClassifier(model, set);
    const json = { task: config.task, method: config.method, step: meta.step, target: d.target, split, n: report.n, accuracy: report.accuracy, perClass: report.perClass, confusion: report.confusion };
    const text = `${config.task} / ${config.method} at step ${meta.step}, target ${d.target} (${split})\n${formatConfusion(report, meta.classes)}`;
    return { report, json, text };
  } finally {
    model.dispose();
  }
}

async function evaluateSegmentationRun(model: I2IModel, runDir: string, step: number, opts: EvalOptions) {
  const config = model.config;
  const d = config.data;
  const root = opts.targetRoot ?? d.targetRoot;
  if (!root) throw new UserError('eval needs --target-root: a folder with labelled target frames (Cityscapes layout).', `This run trained on ${d.targetVideos ? 'videos' : 'a target'} without labels; point --target-root at leftImg8bit/ + gtFine/.`);
  const split = opts.split ?? 'val';
  const list = listScenes(d.target, root, split, '--target-root', true);
  if (list.skipped.length) opts.progress?.(`[eval] ${list.skipped.length} frame(s) without a label map skipped`);
  const items = opts.limit ? list.items.slice(0, opts.limit) : list.items;
  const r = await evaluateSegmenter((x, hw) => model.predict(x, 'target', hw), items, d.scale, CITYSCAPES_CLASSES.length,
    (i, n) => { if (opts.progress && (i % 25 === 0 || i === n)) opts.progress(`[eval] ${i}/${n} frames`); });
  const perClass = Object.fromEntries(CITYSCAPES_CLASSES.map((c, i) => [c, r.perClass[i]]));
  const json = { task: config.task, method: config.method, step, split, n: r.n, mIoU: r.mIoU, pixelAccuracy: r.pixelAccuracy, perClass };
  const pct = (v: number) => (Number.isNaN(v) ? '  -  ' : (v * 100).toFixed(1).padStart(5));
  const text = [
    `${config.task} / ${config.method} at step ${step}, ${r.n} target frames (${split}) of ${root}`,
    `mIoU ${pct(r.mIoU)}   pixel accuracy ${pct(r.pixelAccuracy)}   ('-': class absent from labels and predictions)`,
    ...CITYSCAPES_CLASSES.map((c, i) => `  ${c.padEnd(14)} ${pct(r.perClass[i])}`),
  ].join('\n');
  return { seg: { mIoU: r.mIoU, perClass: r.perClass, pixelAccuracy: r.pixelAccuracy, n: r.n, confusion: r.confusion }, json, text };
}
