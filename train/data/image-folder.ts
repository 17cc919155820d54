/**
 * Image folder: `root/<class>/*.{png,jpg,jpeg}` (Office-31 is `<domain>/images/<class>/`).
 * Classes are the sorted sub-folder names; images are decoded and resized by sharp.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../core/errors';
import type { ImageSet } from './types';

const IMAGE_EXT = /\.(png|jpe?g)$/i;

export interface ImageFolderOptions { height: number; width: number; grayscale?: boolean; limitPerClass?: number }

/** A folder's images by class: the sorted class sub-folders and each one's sorted image files. */
export interface FolderListing { base: string; classes: string[]; files: { file: string; label: number }[] }

export function listImageFolder(root: string, limitPerClass?: number): FolderListing {
  if (!fs.existsSync(root)) throw new UserError(`Image folder not found: ${root}.`, 'Pass a folder with one sub-folder of images per class.');
  // Office-31 layout: the domain folder holds images/<class>/.
  const base = fs.existsSync(path.join(root, 'images')) && fs.statSync(path.join(root, 'images')).isDirectory() ? path.join(root, 'images') : root;
  const classes = fs.readdirSync(base).filter((d) => fs.statSync(path.join(base, d)).isDirectory()).sort();
  if (classes.length === 0) throw new UserError(`${base} has no class sub-folders.`, 'Lay the images out as <root>/<class>/<image>.png|jpg.');
  const files: { file: string; label: number }[] = [];
  classes.forEach((c, label) => {
    const names = fs.readdirSync(path.join(base, c)).filter((f) => IMAGE_EXT.test(f)).sort();
    for (const f of names.slice(0, limitPerClass ?? names.length)) files.push({ file: path.join(base, c, f), label });
  });
  if (files.length === 0) throw new UserError(`${base} holds no .png or .jpg images.`, 'Lay the images out as <root>/<class>/<image>.png|jpg.');
  return { base, classes, files };
}

export async function readImageFolder(root: string, opts: ImageFolderOptions): Promise<ImageSet> {
  const sharp = (await import('sharp')).default;
  const { classes, files } = listImageFolder(root, opts.limitPerClass);
  const channels = opts.grayscale ? 1 : 3;
  const per = opts.height * opts.width * channels;
  const images = new Float32Array(files.length * per);
  const labels = new Int32Array(files.length);
  for (let i = 0; i < files.length; i++) {
    let img = sharp(files[i].file).removeAlpha().resize(opts.width, opts.height, { fit: 'fill', kernel: 'linear' });
    img = opts.grayscale ? img.grayscale() : img.toColourspace('srgb');
    let data: Buffer;
    try {
      data = await img.raw().toBuffer();
    } catch (e) {
      throw new UserError(`${files[i].file} could not be decoded (${(e as Error).message}).`, 'Remove or replace the file.');
    }
    if (data.length !== per) throw new UserError(`${files[i].file} decoded to ${data.length} values, expected ${per}.`, 'Remove or replace the file.');
    for (let k = 0; k < per; k++) images[i * per + k] = data[k] / 255;
    labels[i] = files[i].label;
  }
  return { name: path.basename(root), images, labels, n: files.length, height: opts.height, width: opts.width, channels, classes };
}
