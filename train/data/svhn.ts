/** SVHN cropped digits: `{train,test}_32x32.mat` with X (32x32x3xN uint8) and y (Nx1, 10 means 0). */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { UserError } from '../../core/errors';
import { readMat } from './matv5';
import { DIGIT_CLASSES, type ImageSet } from './types';

export function readSvhn(root: string, split: 'train' | 'test' = 'train'): ImageSet {
  const file = fs.existsSync(root) && fs.statSync(root).isFile() ? root : path.join(root, `${split}_32x32.mat`);
  if (!fs.existsSync(file)) throw new UserError(`SVHN file not found: ${file}.`, `Pass the folder holding ${split}_32x32.mat (the "cropped digits" format).`);
  const vars = readMat(file);
  const X = vars.get('X');
  const y = vars.get('y');
  if (!X || !y) throw new UserError(`${file} lacks variable ${X ? 'y' : 'X'}.`, 'Use the SVHN cropped-digits *_32x32.mat files.');
  const [h, w, c, n] = X.dims;
  if (X.dims.length !== 4 || c !== 3) throw new UserError(`${file}: X has dimensions ${X.dims.join('x')}, expected HxWx3xN.`, 'Use the SVHN cropped-digits *_32x32.mat files.');
  if (y.data.length !== n) throw new UserError(`${file}: ${n} images but ${y.data.length} labels.`, 'The file is corrupt.');
  // Column-major X(i,j,ch,k) -> row-major NHWC.
  const images = new Float32Array(n * h * w * 3);
  const src = X.data;
  const scale = src instanceof Uint8Array ? 1 / 255 : 1;
  for (let k = 0; k < n; k++) for (let ch = 0; ch < 3; ch++) for (let j = 0; j < w; j++) for (let i = 0; i < h; i++) {
    images[((k * h + i) * w + j) * 3 + ch] = src[i + h * (j + w * (ch + 3 * k))] * scale;
  }
  const labels = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const v = y.data[k];
    if (!Number.isInteger(v) || v < 1 || v > 10) throw new UserError(`${file}: label ${v} of item ${k} is outside 1..10.`, 'The file is corrupt.');
    labels[k] = v === 10 ? 0 : v;
  }
  return { name: `svhn-${split}`, images, labels, n, height: h, width: w, channels: 3, classes: DIGIT_CLASSES };
}
