/**
 * Driving-scene datasets on disk. Readers list image/label pairs, and samples are decoded on demand
 * (full frames are too large to keep in memory); label maps go through png-labels (one reader).
 *   GTA5:        images/*.png, labels/*.png (same file names; ids without a pair on either side are
 *                skipped and reported)
 *   Cityscapes:  leftImg8bit/<split>/<city>/*_leftImg8bit.png with gtFine/<split>/<city>/*_gtFine_
 *                labelIds.png, else *_gtFine_labelTrainIds.png, else *_gtFine_color.png
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../core/errors';
import { DamagedFileError } from './png-decode';
import { readLabelMap, type LabelMap } from './png-labels';
import { pixelsToSigned } from '../../core/pixels';

export interface SegItem { image: string; label?: string; id: string }
export interface SegList {
  name: string;
  items: SegItem[];
  /** Images without a label map (when labels are needed). */
  skipped: string[];
  /** Label maps without an image. */
  unpairedLabels?: string[];
}

const PNG_OR_JPG = /\.(png|jpe?g)$/i;

export function listGta5(root: string): SegList {
  const imgDir = path.join(root, 'images'), lblDir = path.join(root, 'labels');
  if (!fs.existsSync(imgDir)) throw new UserError(`GTA5 images folder not found: ${imgDir}.`, 'Pass --source-root pointing at the GTA5 folder that holds images/ and labels/.');
  const labels = new Set(fs.existsSync(lblDir) ? fs.readdirSync(lblDir).filter((f) => PNG_OR_JPG.test(f)) : []);
  const items: SegItem[] = [];
  const skipped: string[] = [];
  const imaged = new Set<string>();
  for (const f of fs.readdirSync(imgDir).filter((x) => PNG_OR_JPG.test(x)).sort()) {
    const id = f.replace(PNG_OR_JPG, '');
    imaged.add(id);
    const lbl = labels.has(`${id}.png`) ? `${id}.png` : undefined;
    if (!lbl) { skipped.push(id); continue; }
    items.push({ id, image: path.join(imgDir, f), label: path.join(lblDir, lbl) });
  }
  const unpairedLabels = [...labels].map((f) => f.replace(PNG_OR_JPG, '')).filter((id) => !imaged.has(id)).sort();
  if (items.length === 0) throw new UserError(`${root} has no image with a matching label.`, 'GTA5 needs images/<id>.png with labels/<id>.png.');
  return { name: 'gta5', items, skipped, unpairedLabels };
}

export function listCityscapes(root: string, split: string, opts: { labels?: boolean } = {}): SegList {
  const imgRoot = path.join(root, 'leftImg8bit', split);
  if (!fs.existsSync(imgRoot)) throw new UserError(`Cityscapes images not found: ${imgRoot}.`, `Pass the Cityscapes root that holds leftImg8bit/${split}/<city>/.`);
  const items: SegItem[] = [];
  const skipped: string[] = [];
  const imaged = new Set<string>();
  for (const city of fs.readdirSync(imgRoot).sort()) {
    const dir = path.join(imgRoot, city);
    if (!fs.statSync(dir).isDirectory()) continue;
    const gt = path.join(root, 'gtFine', split, city);
    const gtFiles = new Set(fs.existsSync(gt) ? fs.readdirSync(gt) : []);
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('_leftImg8bit.png')).sort()) {
      const id = f.slice(0, -'_leftImg8bit.png'.length);
      imaged.add(`${city}/${id}`);
      const found = CITYSCAPES_LABELS.map((suffix) => `${id}_gtFine_${suffix}`).find((x) => gtFiles.has(x));
      const label = found && path.join(gt, found);
      if (opts.labels && !label) { skipped.push(id); continue; }
      items.push({ id, image: path.join(dir, f), label });
    }
  }
  if (items.length === 0) throw new UserError(`${imgRoot} holds no *_leftImg8bit.png.`, 'Check the Cityscapes layout: leftImg8bit/<split>/<city>/<id>_leftImg8bit.png.');
  return { name: `cityscapes-${split}`, items, skipped, unpairedLabels: opts.labels ? cityscapesUnpaired(path.join(root, 'gtFine', split), imaged) : [] };
}

/** Label files Cityscapes may hold, in order of preference (ids need no colour matching). */
const CITYSCAPES_LABELS = ['labelIds.png', 'labelTrainIds.png', 'color.png'];

/** gtFine label maps whose image is missing (one entry per frame id). */
function cityscapesUnpaired(gtRoot: string, imaged: Set<string>): string[] {
  if (!fs.existsSync(gtRoot)) return [];
  const out = new Set<string>();
  for (const city of fs.readdirSync(gtRoot).sort()) {
    const dir = path.join(gtRoot, city);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const f of fs.readdirSync(dir)) {
      const m = /^(.*)_gtFine_(labelIds|labelTrainIds|color)\.png$/.exec(f);
      if (m && !imaged.has(`${city}/${m[1]}`)) out.add(m[1]);
    }
  }
  return [...out].sort();
}

/** A driving-scene dataset in either layout; `flag` names the option in errors. */
export function listScenes(format: string, root: string | undefined, split: string, flag: string, labels: boolean): SegList {
  if (!root) throw new UserError(`${flag} is required for ${format} data.`, `Pass ${flag} <folder in ${format === 'gta5' ? 'GTA5 (images/, labels/)' : 'Cityscapes (leftImg8bit/, gtFine/)'} layout>, or make one with i2i synth.`);
  return format === 'gta5' ? listGta5(root) : listCityscapes(root, split, { labels });
}

/** Decodes a label map (any encoding png-labels reads) into trainIds (255 = ignore). */
export async function readTrainIds(file: string): Promise<LabelMap> {
  return readLabelMap(file);
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
    throw new DamagedFileError(item.image, e.message);
  });
  return { width: meta.width!, height: meta.height! };
}

export interface SegSample {
  image: Float32Array;
  labels?: Uint8Array;
  height: number;
  width: number;
  /** The label map's own size where it differs from its image's (it was resized by nearest neighbour). */
  labelSizeOff?: FrameSize;
}

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
  const [pixels, map] = await Promise.all([
    img.raw().toBuffer().catch((e: Error) => { throw new DamagedFileError(item.image, e.message); }),
    item.label ? readLabelMap(item.label) : undefined,
  ]);
  const image = pixelsToSigned(pixels);
  if (!map) return { image, height: ch, width: cw };
  const off = size && (map.width !== size.width || map.height !== size.height) ? { width: map.width, height: map.height } : undefined;
  return { image, labels: resampleLabels(map, W, H, region, flip), height: ch, width: cw, labelSizeOff: off };
}

/**
 * The label map scaled to W x H by nearest neighbour (no new ids appear), optionally mirrored, then
 * cropped to `region` (sharp's order for the image); only the crop's pixels are computed. Sample centres map to sample centres,
 * so a map a few pixels off its image's size lands on the image's grid.
 */
export function resampleLabels(map: LabelMap, W: number, H: number, region: { left: number; top: number; width: number; height: number }, flip: boolean): Uint8Array {
  const out = new Uint8Array(region.width * region.height);
  const sx = map.width / W, sy = map.height / H;
  const col = new Int32Array(region.width);
  for (let x = 0; x < region.width; x++) {
    // As sharp does for the image: the whole frame is mirrored first, then cropped at `region`.
    const X = flip ? W - 1 - (region.left + x) : region.left + x;
    col[x] = Math.min(map.width - 1, Math.floor((X + 0.5) * sx));
  }
  for (let y = 0; y < region.height; y++) {
    const row = Math.min(map.height - 1, Math.floor((region.top + y + 0.5) * sy)) * map.width;
    for (let x = 0; x < region.width; x++) out[y * region.width + x] = map.ids[row + col[x]];
  }
  return out;
}
