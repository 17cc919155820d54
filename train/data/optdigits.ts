/**
 * UCI optdigits: CSV rows of 64 integers 0..16 (8x8, row-major) then the label 0..9; no header.
 * Accepts scikit-learn's digits.csv(.gz) and the UCI optdigits.tra/.tes files.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { UserError } from '../../core/errors';
import { firstExisting, readMaybeCompressed } from './files';
import { DIGIT_CLASSES, type ImageSet } from './types';

export function parseOptdigits(text: string, file: string): { images: Float32Array; labels: Int32Array } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const images = new Float32Array(lines.length * 64);
  const labels = new Int32Array(lines.length);
  lines.forEach((line, row) => {
    const v = line.split(',').map((s) => Number(s.trim()));
    if (v.length !== 65 || v.some((x) => !Number.isInteger(x))) {
      throw new UserError(`${file}:${row + 1}: expected 65 integers (64 pixels and a label), got "${line.slice(0, 60)}".`, 'Use the UCI optdigits CSV format.');
    }
    for (let k = 0; k < 64; k++) {
      if (v[k] < 0 || v[k] > 16) throw new UserError(`${file}:${row + 1}: pixel ${k} is ${v[k]}, outside 0..16.`, 'Use the UCI optdigits CSV format.');
      images[row * 64 + k] = v[k] / 16;
    }
    if (v[64] < 0 || v[64] > 9) throw new UserError(`${file}:${row + 1}: label ${v[64]} is outside 0..9.`, 'Use the UCI optdigits CSV format.');
    labels[row] = v[64];
  });
  return { images, labels };
}

/** `root` is a file, or a folder with digits.csv[.gz] or optdigits.tra/.tes. */
export function readOptdigits(root: string, split: 'train' | 'test' = 'train'): ImageSet {
  let file: string | undefined;
  if (fs.existsSync(root) && fs.statSync(root).isFile()) file = root;
  else {
    file = firstExisting([
      path.join(root, 'digits.csv.gz'), path.join(root, 'digits.csv'),
      path.join(root, split === 'train' ? 'optdigits.tra' : 'optdigits.tes'),
    ]);
  }
  if (!file) throw new UserError(`optdigits not found under ${root}.`, 'Pass --target-root with digits.csv[.gz] or optdigits.tra/.tes (e.g. ../shared/data/optdigits).');
  const { images, labels } = parseOptdigits(readMaybeCompressed(file).toString('latin1'), file);
  return { name: `optdigits`, images, labels, n: labels.length, height: 8, width: 8, channels: 1, classes: DIGIT_CLASSES };
}
