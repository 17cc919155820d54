/**
 * Check and calibration frames for convert: images found under a folder (a dataset root, a folder of
 * dashcam stills) or sampled from a video file, resized to the model's input and mapped to [-1, 1]
 * as in training. Label maps (gtFine/, labels/, *_labelIds.png) are skipped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../core/errors';
import { listCityscapes, readTrainIds } from '../train/data/segmentation';
import { sampleVideo } from '../train/data/video-frames';

const IMAGE = /\.(png|jpe?g)$/i;
const VIDEO = /\.(mp4|mov|mkv|avi|webm|m4v|ts)$/i;
const NOT_IMAGES = /(^|\/)(gtFine|labels)(\/|$)|_labelIds\.png$|_color\.png$|_instanceIds\.png$/;

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
    const x = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) x[i] = raw[i] / 127.5 - 1;
    return x;
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

/** Nearest-neighbour resize of a label map (pixel centres), as training resizes labels. */
export function resizeNearest(ids: Uint8Array, w: number, h: number, hw: [number, number]): Uint8Array {
  const out = new Uint8Array(hw[0] * hw[1]);
  for (let y = 0; y < hw[0]; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / hw[0]));
    for (let x = 0; x < hw[1]; x++) out[y * hw[1] + x] = ids[sy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / hw[1]))];
  }
  return out;
}

/** Labelled target frames (Cityscapes layout) at the bundle's input size, labels as trainIds. */
export async function loadLabelledFrames(root: string, split: string, hw: [number, number], limit: number): Promise<{ x: Float32Array; labels: Uint8Array }[]> {
  const items = listCityscapes(root, split, { labels: true }).items.slice(0, limit);
  if (items.length === 0) throw new UserError(`${root} has no labelled ${split} frames.`, 'Pass --eval <root with leftImg8bit/<split>/ and gtFine/<split>/>.');
  const xs = await loadFrames(items.map((i) => i.image), hw, 3);
  return Promise.all(items.map(async (it, i) => {
    const l = await readTrainIds(it.label!);
    return { x: xs[i], labels: resizeNearest(l.ids, l.width, l.height, hw) };
  }));
}
