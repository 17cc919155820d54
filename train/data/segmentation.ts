/**
 * Driving-scene datasets on disk. Both hold Cityscapes labelIds; readers list image/label pairs,
 * and samples are decoded on demand (full frames are too large to keep in memory).
 *   GTA5:        images/*.png, labels/*.png (same file names; ids without a pair are skipped and reported)
 *   Cityscapes:  leftImg8bit/<split>/<city>/*_leftImg8bit.png, gtFine/<split>/<city>/*_gtFine_labelIds.png
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../core/errors';
import { labelIdsToTrainIds } from '../../core/labels';
import { pixelsToSigned } from '../../core/pixels';

export interface SegItem { image: string; label?: string; id: string }
export interface SegList { name: string; items: SegItem[]; skipped: string[] }

const PNG_OR_JPG = /\.(png|jpe?g)$/i;

export function listGta5(root: string): SegList {
  const imgDir = path.join(root, 'images'), lblDir = path.join(root, 'labels');
  if (!fs.existsSync(imgDir)) throw new UserError(`GTA5 images folder not found: ${imgDir}.`, 'Pass --source-root pointing at the GTA5 folder that holds images/ and labels/.');
  const labels = new Set(fs.existsSync(lblDir) ? fs.readdirSync(lblDir).filter((f) => PNG_OR_JPG.test(f)) : []);
  const items: SegItem[] = [];
  const skipped: string[] = [];
  for (const f of fs.readdirSync(imgDir).filter((x) => PNG_OR_JPG.test(x)).sort()) {
    const id = f.replace(PNG_OR_JPG, '');
    const lbl = labels.has(`${id}.png`) ? `${id}.png` : undefined;
    if (!lbl) { skipped.push(id); continue; }
    items.push({ id, image: path.join(imgDir, f), label: path.join(lblDir, lbl) });
  }
  if (items.length === 0) throw new UserError(`${root} has no image with a matching label.`, 'GTA5 needs images/<id>.png with labels/<id>.png.');
  return { name: 'gta5', items, skipped };
}

export function listCityscapes(root: string, split: string, opts: { labels?: boolean } = {}): SegList {
  const imgRoot = path.join(root, 'leftImg8bit', split);
  if (!fs.existsSync(imgRoot)) throw new UserError(`Cityscapes images not found: ${imgRoot}.`, `Pass the Cityscapes root that holds leftImg8bit/${split}/<city>/.`);
  const items: SegItem[] = [];
  const skipped: string[] = [];
  for (const city of fs.readdirSync(imgRoot).sort()) {
    const dir = path.join(imgRoot, city);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('_leftImg8bit.png')).sort()) {
      const id = f.slice(0, -'_leftImg8bit.png'.length);
      const label = path.join(root, 'gtFine', split, city, `${id}_gtFine_labelIds.png`);
      if (opts.labels && !fs.existsSync(label)) { skipped.push(id); continue; }
      items.push({ id, image: path.join(dir, f), label: fs.existsSync(label) ? label : undefined });
    }
  }
  if (items.length === 0) throw new UserError(`${imgRoot} holds no *_leftImg8bit.png.`, 'Check the Cityscapes layout: leftImg8bit/<split>/<city>/<id>_leftImg8bit.png.');
  return { name: `cityscapes-${split}`, items, skipped };
}

/** A driving-scene dataset in either layout; `flag` names the option in errors. */
export function listScenes(format: string, root: string | undefined, split: string, flag: string, labels: boolean): SegList {
  if (!root) throw new UserError(`${flag} is required for ${format} data.`, `Pass ${flag} <folder in ${format === 'gta5' ? 'GTA5 (images/, labels/)' : 'Cityscapes (leftImg8bit/, gtFine/)'} layout>, or make one with i2i synth.`);
  return format === 'gta5' ? listGta5(root) : listCityscapes(root, split, { labels });
}

/** Decodes a labelIds PNG into trainIds (255 = ignore). */
export async function readTrainIds(file: string): Promise<{ ids: Uint8Array; width: number; height: number }> {
  const sharp = (await import('sharp')).default;
  const { data, info } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { ids: labelIdsToTrainIds(data), width: info.width, height: info.height };
}

export interface SegSampleOptions {
  /** Resize factor applied to the whole frame first (the paper downsamples by 2). */
  scale: number;
  /** Square crop side at the scaled resolution (256 = a 512 crop of the full frame); 0 = whole frame. */
  crop: number;
  flip: boolean;
  /** Uniform [0,1) draws for the crop position and the flip. */
  rand: () => number;
  /** Resize to exactly this size instead of by `scale` (a deployed model's fixed input). */
  size?: FrameSize;
}

export interface FrameSize { width: number; height: number }

/** A frame's size from its header (no pixel decode). */
export async function frameSize(item: SegItem): Promise<FrameSize> {
  const sharp = (await import('sharp')).default;
  const meta = await sharp(item.image).metadata().catch((e: Error) => {
    throw new UserError(`Cannot read image ${item.image}: ${e.message}.`, 'Replace or remove the damaged file.');
  });
  return { width: meta.width!, height: meta.height! };
}

export interface SegSample { image: Float32Array; labels?: Uint8Array; height: number; width: number }

/**
 * Decodes one frame (and its labels): scale (bilinear for the image, nearest for the labels so that
 * no new ids appear), crop, flip; image to [-1, 1] RGB, labels to trainIds (255 ignored).
 */
export async function loadSegSample(item: SegItem, o: SegSampleOptions, frame?: FrameSize): Promise<SegSample> {
  const sharp = (await import('sharp')).default;
  const size = o.size ? undefined : frame ?? (await frameSize(item));
  const W = o.size?.width ?? Math.round(size!.width * o.scale), H = o.size?.height ?? Math.round(size!.height * o.scale);
  const cw = o.crop > 0 ? Math.min(o.crop, W) : W, ch = o.crop > 0 ? Math.min(o.crop, H) : H;
  const left = Math.floor(o.rand() * (W - cw + 1)), top = Math.floor(o.rand() * (H - ch + 1));
  const flip = o.flip && o.rand() < 0.5;
  const region = { left, top, width: cw, height: ch };
  let img = sharp(item.image).removeAlpha().toColourspace('srgb').resize(W, H, { kernel: 'linear', fit: 'fill' }).extract(region);
  if (flip) img = img.flop();
  const image = pixelsToSigned(await img.raw().toBuffer());
  let labels: Uint8Array | undefined;
  if (item.label) {
    let lbl = sharp(item.label).extractChannel(0).resize(W, H, { kernel: 'nearest', fit: 'fill' }).extract(region);
    if (flip) lbl = lbl.flop();
    labels = labelIdsToTrainIds(await lbl.raw().toBuffer());
  }
  return { image, labels, height: ch, width: cw };
}
