/**
 * USPS in libsvm text form (`usps`, `usps.t`, optionally .bz2): "label idx:value ..." per line,
 * labels 1..10 for digits 0..9, 256 values in [-1, 1] (16x16, row-major); absent indices are 0.
 */
import * as path from 'node:path';
import { UserError } from '../../core/errors';
import { firstExisting, readMaybeCompressed } from './files';
import { DIGIT_CLASSES, type ImageSet } from './types';

export function parseLibsvmDigits(text: string, file: string, dim = 256): { images: Float32Array; labels: Int32Array } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const images = new Float32Array(lines.length * dim);
  const labels = new Int32Array(lines.length);
  lines.forEach((line, row) => {
    const parts = line.trim().split(/\s+/);
    const label = Number(parts[0]);
    if (!Number.isInteger(label) || label < 1 || label > 10) {
      throw new UserError(`${file}:${row + 1}: label "${parts[0]}" is outside 1..10.`, 'USPS libsvm labels are 1..10 (digit + 1); check the file.');
    }
    labels[row] = label - 1;
    const base = row * dim;
    // Absent features are 0 in libsvm, i.e. mid-grey in [-1, 1]: map -1..1 to 0..1.
    images.fill(0.5, base, base + dim);
    for (let k = 1; k < parts.length; k++) {
      const colon = parts[k].indexOf(':');
      const idx = Number(parts[k].slice(0, colon));
      const v = Number(parts[k].slice(colon + 1));
      if (colon < 0 || !Number.isInteger(idx) || idx < 1 || idx > dim || !Number.isFinite(v)) {
        throw new UserError(`${file}:${row + 1}: bad feature "${parts[k]}" (expected index:value with index 1..${dim}).`, 'The file is not USPS libsvm text or is truncated.');
      }
      images[base + idx - 1] = (Math.max(-1, Math.min(1, v)) + 1) / 2;
    }
  });
  return { images, labels };
}

export function readUsps(root: string, split: 'train' | 'test' = 'train'): ImageSet {
  const base = path.join(root, split === 'train' ? 'usps' : 'usps.t');
  const file = firstExisting([base, `${base}.bz2`]);
  if (!file) throw new UserError(`USPS ${split} file not found: ${base}[.bz2].`, 'Pass the folder holding usps and usps.t (libsvm format, plain or .bz2).');
  const { images, labels } = parseLibsvmDigits(readMaybeCompressed(file).toString('latin1'), file);
  return { name: `usps-${split}`, images, labels, n: labels.length, height: 16, width: 16, channels: 1, classes: DIGIT_CLASSES };
}
