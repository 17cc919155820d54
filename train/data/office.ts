/**
 * Office-31 (Saenko et al.; Murez et al. 4.2 and 5.2): `<root>/<domain>/images/<class>/*.jpg`,
 * 31 classes, domains amazon / webcam / dslr. Each image is decoded once, resized to 256x256 and
 * kept as uint8 (about 800 MB for all 4,110 images; float32 would be four times that). Training
 * draws random 224x224 crops (and flips) whose position is a function of (seed, step, position in
 * the batch), so a resumed run draws the same batches; evaluation, translation grids and convert's
 * frames take the centre crop.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../core/errors';
import { toSigned } from '../../core/pixels';
import { deriveSeed, mulberry32 } from '../../core/rng';
import type { Config } from '../config';
import type { Domain } from './domain';
import { listImageFolder } from './image-folder';
import type { ImageSet, ImageSource } from './types';

export const OFFICE_DOMAINS = ['amazon', 'webcam', 'dslr'] as const;
export type OfficeDomain = (typeof OFFICE_DOMAINS)[number];

export function isOfficeDomain(d: string): d is OfficeDomain {
  return (OFFICE_DOMAINS as readonly string[]).includes(d);
}

/** One domain's images at side x side x 3, uint8 RGB, in file order (sorted by class, then name). */
export interface StoredImages {
  name: string;
  n: number;
  side: number;
  pixels: Uint8Array;
  labels: Int32Array;
  classes: string[];
}

/**
 * The folder holding `<class>/` for `domain` under `root`: root may be the Office-31 root (holding
 * amazon/, webcam/, dslr/) or the domain folder itself.
 */
export function officeFolder(domain: OfficeDomain, root: string | undefined, flag: string): string {
  if (!root) throw new UserError(`The ${domain} domain of Office-31 has no built-in copy.`, `Pass ${flag} <Office-31 root holding ${domain}/images/<class>/, or the ${domain} folder itself>.`);
  for (const dir of [path.join(root, domain, 'images'), path.join(root, 'images')]) {
    if (fs.existsSync(dir) && fs.statSync(dir).isDirectory()) return dir;
  }
  throw new UserError(`No Office-31 ${domain} images under ${root}: neither ${path.join(root, domain, 'images')} nor ${path.join(root, 'images')} exists.`,
    `Point ${flag} at the Office-31 root (amazon/, webcam/, dslr/, each with images/<class>/*.jpg) or at the ${domain} folder.`);
}

export interface OfficeRead { side: number; limit?: number; flag: string }

export async function readOffice(domain: OfficeDomain, root: string | undefined, o: OfficeRead): Promise<StoredImages> {
  const sharp = (await import('sharp')).default;
  const folder = officeFolder(domain, root, o.flag);
  const listing = listImageFolder(folder);
  if (listing.classes.length < 2) throw new UserError(`${folder} has ${listing.classes.length} class folder(s); a classifier needs at least 2.`, 'Lay the images out as <domain>/images/<class>/*.jpg with one folder per class (Office-31 has 31).');
  // A limit takes images evenly spread over the class-sorted list (every class in proportion), not
  // the first classes: calibration and check frames must see the whole label set.
  const all = listing.files, n = Math.min(o.limit ?? all.length, all.length);
  const files = Array.from({ length: n }, (_, i) => all[Math.floor((i * all.length) / n)]);
  const per = o.side * o.side * 3;
  const pixels = new Uint8Array(files.length * per);
  const labels = Int32Array.from(files, (f) => f.label);
  // A few decodes in flight keep libvips' threads busy without holding every JPEG's buffer at once.
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < files.length; i = next++) {
      const file = files[i].file;
      let data: Buffer;
      try {
        data = await sharp(file).removeAlpha().toColourspace('srgb').resize(o.side, o.side, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
      } catch (e) {
        throw new UserError(`${file} could not be decoded (${(e as Error).message}).`, 'Remove or replace the file.');
      }
      if (data.length !== per) throw new UserError(`${file} decoded to ${data.length} values, expected ${per} (${o.side}x${o.side} RGB).`, 'Remove or replace the file.');
      pixels.set(data, i * per);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return { name: domain, n: files.length, side: o.side, pixels, labels, classes: listing.classes };
}

/** Source and target must name the same classes in the same order (label i means one thing). */
export function checkSameClasses(source: StoredImages, target: StoredImages): void {
  if (source.classes.join('\n') === target.classes.join('\n')) return;
  const onlySource = source.classes.filter((c) => !target.classes.includes(c));
  const onlyTarget = target.classes.filter((c) => !source.classes.includes(c));
  throw new UserError(`The ${source.name} and ${target.name} folders have different classes (only in ${source.name}: ${onlySource.join(', ') || 'none'}; only in ${target.name}: ${onlyTarget.join(', ') || 'none'}).`,
    'Give both domains the same class folders (Office-31: the same 31 names).');
}

/** Writes the crop x crop window at (top, left) of image j into `out` at `offset`, mapped to [-1, 1], mirrored if `flip`. */
export function cropInto(set: StoredImages, j: number, crop: number, top: number, left: number, flip: boolean, out: Float32Array, offset: number): void {
  const s = set.side, base = j * s * s * 3;
  for (let y = 0; y < crop; y++) {
    const row = base + ((top + y) * s + left) * 3;
    for (let x = 0; x < crop; x++) {
      const src = row + (flip ? crop - 1 - x : x) * 3, dst = offset + (y * crop + x) * 3;
      for (let k = 0; k < 3; k++) out[dst + k] = toSigned(set.pixels[src + k]);
    }
  }
}

function checkCrop(set: StoredImages, crop: number): void {
  if (crop > set.side) throw new UserError(`data.imageSize ${crop} is larger than the ${set.side}x${set.side} images it is cropped from.`, 'Lower data.imageSize or raise data.resize (Office: 224 from 256).');
}

export interface CropSampling { crop: number; flip: boolean; seed: number }

/** Training: a random crop (and a coin-flip mirror) per image, drawn from (seed, step, i). */
export function officeDomain(set: StoredImages, o: CropSampling): Domain {
  checkCrop(set, o.crop);
  const c = o.crop, per = c * c * 3, room = set.side - c + 1;
  return {
    name: set.name, n: set.n, classes: set.classes,
    load: async (idx, step) => {
      const images = new Float32Array(idx.length * per);
      const labels = new Int32Array(idx.length);
      idx.forEach((j, i) => {
        const r = mulberry32(deriveSeed(o.seed, 'crop', step, i));
        const top = Math.floor(r() * room), left = Math.floor(r() * room);
        const flip = o.flip && r() < 0.5;
        cropInto(set, j, c, top, left, flip, images, i * per);
        labels[i] = set.labels[j];
      });
      return { images, labels, shape: [idx.length, c, c, 3], labelShape: [idx.length] };
    },
  };
}

/** The centre crop's top-left corner (the extra pixel of an odd margin goes below and right). */
export function centreOffset(side: number, crop: number): number {
  return Math.floor((side - crop) / 2);
}

/** Evaluation: centre crops, made a batch at a time. */
export function centreCrops(set: StoredImages, crop: number): ImageSource {
  checkCrop(set, crop);
  const per = crop * crop * 3, at = centreOffset(set.side, crop);
  return {
    name: set.name, n: set.n, height: crop, width: crop, channels: 3, labels: set.labels, classes: set.classes,
    slice: (s, e) => {
      const out = new Float32Array((e - s) * per);
      for (let j = s; j < e; j++) cropInto(set, j, crop, at, at, false, out, (j - s) * per);
      return out;
    },
  };
}

/** Centre crops in memory, for the few images a translation grid shows. */
export function centreCropSet(set: StoredImages, crop: number): ImageSet {
  const src = centreCrops(set, crop);
  return { ...src, images: src.slice(0, set.n) };
}

/** Both domains of a run, at `data.resize` (default: the crop's side), with the same classes. */
export async function readOfficePair(d: Pick<Config['data'], 'source' | 'target' | 'sourceRoot' | 'targetRoot' | 'sourceLimit' | 'targetLimit' | 'imageSize' | 'resize'>): Promise<{ source: StoredImages; target: StoredImages }> {
  if (!isOfficeDomain(d.source) || !isOfficeDomain(d.target)) throw new Error(`not an Office-31 pair: ${d.source} -> ${d.target}`);
  const side = d.resize ?? d.imageSize;
  const source = await readOffice(d.source, d.sourceRoot, { side, limit: d.sourceLimit, flag: '--source-root' });
  const target = await readOffice(d.target, d.targetRoot, { side, limit: d.targetLimit, flag: '--target-root' });
  checkSameClasses(source, target);
  return { source, target };
}
