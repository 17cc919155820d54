/**
 * The frames convert uses (int8 calibration, parity checks, scores per precision): images found under
 * a folder (a dataset root, a folder of dashcam stills) or sampled from a video file, resized to the
 * model's input and mapped to [-1, 1] as in training (label maps: gtFine/, labels/, *_labelIds.png
 * are skipped); labelled Cityscapes-layout frames; a classifier's target dataset through its reader.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../core/errors';
import { pixelsToSigned } from '../core/pixels';
import { deriveSeed, mulberry32 } from '../core/rng';
import type { Config } from '../train/config';
import { defaultDigitSplit, loadEvalSet } from '../train/evaluate-run';
import { listCityscapes, loadSegSample } from '../train/data/segmentation';
import { sampledFrames, sampleVideo, VIDEO } from '../train/data/video-frames';

const IMAGE = /\.(png|jpe?g)$/i;
const NOT_IMAGES = /(^|\/)(gtFine|labels)(\/|$)|_label(Train)?Ids\.png$|_color\.png$|_instanceIds\.png$/

export function listImages(root: string, limit: number): string[] {
  if (!fs.existsSync(root)) throw new UserError(`Calibration data not found: ${root}.`, 'Pass --calibrate <folder of target frames or a Cityscapes-layout root>.');
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (out.length >= limit) return;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (IMAGE.test(e.name) && !NOT_IMAGES.test(p)) out.push(p);
    }
  };
  if (fs.statSync(root).isDirectory()) walk(root); else if (IMAGE.test(root)) out.push(root);
  if (out.length === 0) throw new UserError(`${root} holds no .png/.jpg frames.`, 'Point --calibrate at target-domain images (e.g. leftImg8bit/val).');
  return out;
}

export async function loadFrames(files: string[], hw: [number, number], channels: number): Promise<Float32Array[]> {
  const sharp = (await import('sharp')).default;
  return Promise.all(files.map(async (f) => {
    let img = sharp(f).removeAlpha().resize(hw[1], hw[0], { kernel: 'linear', fit: 'fill' });
    img = channels === 1 ? img.greyscale() : img.toColourspace('srgb');
    const raw = await img.raw().toBuffer().catch((e: Error) => { throw new UserError(`Cannot read calibration frame ${f}: ${e.message}.`, 'Remove or replace the damaged file.'); });
    return pixelsToSigned(raw);
  }));
}

/**
 * Calibration frames from a folder or dataset root (the first `limit` images), or from a video file
 * (sampled at 2 frames per second through ffmpeg into `tmp`).
 */
export async function calibrationFiles(source: string, limit: number, tmp: string): Promise<string[]> {
  if (fs.existsSync(source) && fs.statSync(source).isFile() && VIDEO.test(source)) {
    const files = await sampleVideo(source, tmp, { fps: 2, maxFrames: limit });
    if (files.length === 0) throw new UserError(`${source} gave no frames.`, 'Pass a longer video, or a folder of frames.');
    return files;
  }
  return listImages(source, limit);
}

/** A segmenter's bundle input size when --input is not given, and why it is that size. */
export interface InputChoice { hw: [number, number]; why: string; warning?: string }

/**
 * Without --input a segmenter's bundle takes the deployment's frames as they were seen in training:
 * the first frame of --calibrate (else --eval's split, else the run's own target frames), resized by
 * the training scale (data.scale: training crops and i2i eval's whole frames are taken at that
 * scale, so objects keep the pixel size the model learnt), each side rounded to a multiple of 8 (the
 * encoder's output stride). A square training crop would stretch every wide frame. With no frames
 * to read, the caller must say the size (--input). `tmp` receives one frame sampled from a video.
 */
export async function defaultInput(config: Config, run: string, o: FrameOptions, tmp: string): Promise<InputChoice> {
  const d = config.data;
  const scale = d.scale ?? 1;  // a checkpoint written before data.scale existed
  const split = o.evalSplit ?? 'val';
  const sources: { what: string; files: () => Promise<string[]> }[] = [];
  // Explicit flags first: their errors (a missing folder) are the user's to see.
  if (o.calibrate) sources.push({ what: `--calibrate ${o.calibrate}`, files: () => calibrationFiles(o.calibrate!, VIDEO.test(o.calibrate!) ? 1 : o.calibrationFrames ?? 32, tmp) });
  else if (o.eval) sources.push({ what: `--eval ${o.eval} (${split})`, files: async () => listCityscapes(o.eval!, split).items.slice(0, o.evalFrames ?? 100).map((it) => it.image) });
  else {
    // The run's own target frames, where they still are: a quiet fallback (missing ones are skipped).
    const kept = (dir: string | undefined) => dir !== undefined && fs.existsSync(dir);
    if (kept(d.targetFrames)) sources.push({ what: `the run's target frames ${d.targetFrames}`, files: async () => listImages(d.targetFrames!, 32) });
    const sampled = sampledFrames(path.join(run, 'target-frames'));
    if (d.targetVideos && sampled.length) sources.push({ what: `the run's frames sampled from ${d.targetVideos}`, files: async () => sampled.slice(0, 32) });
    if (kept(d.targetRoot)) {
      const images = path.join(d.targetRoot!, 'leftImg8bit', d.targetSplit);
      sources.push({ what: `the run's target root ${d.targetRoot}`, files: async () => listImages(fs.existsSync(images) ? images : d.targetRoot!, 32) });
    }
  }
  for (const s of sources) {
    const files = await s.files().catch((e) => { if (o.calibrate || o.eval) throw e; return []; });
    if (files.length === 0) continue;
    const sizes = await Promise.all(files.map(frameSize));
    const [h, w] = sizes[0];
    const side = (v: number) => Math.max(8, Math.round((v * scale) / 8) * 8);
    const hw: [number, number] = [side(h), side(w)];
    // Frames of another shape are stretched to this one: say so, the user may want --input.
    const other = sizes.filter(([a, b]) => Math.abs(a / b - h / w) > 0.01 * (h / w)).length;
    return {
      hw,
      why: `${h}x${w} frames (the first of ${s.what}: ${path.basename(files[0])}) at the training scale ${scale}, as in training and i2i eval, `
        + `sides rounded to multiples of 8 (the encoder's output stride); --input HxW sets another size`,
      warning: other ? `${other} of the ${files.length} frames read have another aspect than ${h}x${w}; they are stretched to ${hw[0]}x${hw[1]}` : undefined,
    };
  }
  throw new UserError(`A segmenter's bundle needs an input size, and no frames say the deployment's aspect (no --calibrate, no --eval, and the run's target frames are not on this machine).`,
    `Pass --calibrate <target frames> (the input then follows their aspect at the training scale ${scale}) or --input HxW, e.g. --input 512x1024.`);
}

/** A frame's stored height and width, from its header. */
async function frameSize(f: string): Promise<[number, number]> {
  const sharp = (await import('sharp')).default;
  const m = await sharp(f).metadata().catch((e: Error) => { throw new UserError(`Cannot read frame ${f}: ${e.message}.`, 'Remove or replace the damaged file.'); });
  if (!m.width || !m.height) throw new UserError(`${f} has no size in its header.`, 'Remove or replace the damaged file.');
  return [m.height, m.width];
}

/** Labelled target frames (Cityscapes layout) at the bundle's input size, labels as trainIds. */
export async function loadLabelledFrames(root: string, split: string, hw: [number, number], limit: number): Promise<CheckFrame[]> {
  const items = listCityscapes(root, split, { labels: true }).items.slice(0, limit);
  if (items.length === 0) throw new UserError(`${root} has no labelled ${split} frames.`, 'Pass --eval <root with leftImg8bit/<split>/ and gtFine/<split>/>.');
  // Training's own decoder: bilinear image, nearest-neighbour labels (no new ids), trainIds.
  const size = { height: hw[0], width: hw[1] };
  return Promise.all(items.map(async (it) => {
    const s = await loadSegSample(it, { scale: 1, crop: 0, flip: false, rand: () => 0, size });
    return { x: s.image, labels: s.labels! };
  }));
}

/** A classifier's labelled target images, read and preprocessed as i2i eval reads them (Office: centre crops). */
async function labelledDigits(config: Config, root: string, split: string, limit: number): Promise<{ x: Float32Array; labels: Uint8Array }[]> {
  if (split !== 'train' && split !== 'test') throw new UserError(`--eval-split for classifiers is train or test, got "${split}".`);
  const set = await loadEvalSet(config, { root, split, limit, flag: '--eval' });
  return Array.from({ length: set.n }, (_, i) => ({ x: Float32Array.from(set.slice(i, i + 1)), labels: Uint8Array.of(set.labels[i]) }));
}

export interface FrameOptions { calibrate?: string; calibrationFrames?: number; checkFrames?: number; eval?: string; evalSplit?: string; evalFrames?: number }
export interface CheckFrame { x: Float32Array; labels?: Uint8Array }

/**
 * The frames a conversion uses, from the target domain where given: int8 calibration frames (the
 * first N of --calibrate), and the parity check frames: --eval's labelled ones, else the first
 * --check-frames of --calibrate, else seeded random frames. Segmenters read images (a folder, a
 * dataset root, a video); classifiers read the run's target domain from the root with its reader.
 */
export async function conversionFrames(config: Config, o: FrameOptions, hw: [number, number], tmp: string): Promise<{ calib: Float32Array[]; checks: CheckFrame[]; evalSplit: string }> {
  const seg = config.kind === 'segment', channels = config.data.channels;
  const nCalib = o.calibrationFrames ?? 32, nCheck = o.checkFrames ?? 8;
  // --calibrate frames, read once: the first nCalib calibrate int8, the first nCheck are the checks without --eval.
  // Calibration frames are read whenever given: int8 ranges and every file's drift calibrate on them.
  const n = o.calibrate ? Math.max(nCalib, o.eval ? 0 : nCheck) : 0;
  const frames = n === 0 ? [] : seg ? await loadFrames(await calibrationFiles(o.calibrate!, n, tmp), hw, channels)
    : (await labelledDigits(config, o.calibrate!, 'train', n)).map(({ x }) => x);
  const calib = frames.slice(0, nCalib);
  const evalSplit = o.evalSplit ?? (seg ? 'val' : defaultDigitSplit(config.data.target));
  const r = mulberry32(deriveSeed(config.seed, 'convert-check'));
  const checks: CheckFrame[] = o.eval ? (seg ? await loadLabelledFrames(o.eval, evalSplit, hw, o.evalFrames ?? 100) : await labelledDigits(config, o.eval, evalSplit, o.evalFrames ?? 2000))
    : o.calibrate ? frames.slice(0, nCheck).map((x) => ({ x }))
      : Array.from({ length: nCheck }, () => ({ x: Float32Array.from({ length: hw[0] * hw[1] * channels }, () => r() * 2 - 1) }));
  return { calib, checks, evalSplit };
}
