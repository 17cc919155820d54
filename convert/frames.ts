/**
 * Check and calibration frames for convert: images found under a folder (a dataset root, a folder of
 * dashcam stills, or frames sampled from a video), resized to the model's input and mapped to
 * [-1, 1] as in training. Label maps (gtFine/, labels/, *_labelIds.png) are skipped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../core/errors';

const IMAGE = /\.(png|jpe?g)$/i;
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
