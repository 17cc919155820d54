/** Preprocessing of section 5.1: bilinear resize to 32x32, grayscale, values scaled to [-1, 1]. */
import { toSigned } from '../../core/pixels';
import type { ImageSet } from './types';

/** Bilinear resize of one HxWxC image with half-pixel centres (as TF2 / PIL). */
export function resizeBilinear(src: Float32Array, h: number, w: number, c: number, oh: number, ow: number, out = new Float32Array(oh * ow * c)): Float32Array {
  const sy = h / oh, sx = w / ow;
  for (let y = 0; y < oh; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, h - 1), dy = fy - y0;
    for (let x = 0; x < ow; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, w - 1), dx = fx - x0;
      for (let k = 0; k < c; k++) {
        const a = src[(y0 * w + x0) * c + k], b = src[(y0 * w + x1) * c + k];
        const d = src[(y1 * w + x0) * c + k], e = src[(y1 * w + x1) * c + k];
        out[(y * ow + x) * c + k] = (a * (1 - dx) + b * dx) * (1 - dy) + (d * (1 - dx) + e * dx) * dy;
      }
    }
  }
  return out;
}

export interface DigitPreprocess { size: number; channels: 1 | 3 }

/** Resize every image to size x size, convert to the wanted channels, map [0,1] to [-1,1]. */
export function preprocess(set: ImageSet, p: DigitPreprocess): ImageSet {
  const { size, channels } = p;
  const per = size * size * channels;
  const out = new Float32Array(set.n * per);
  const inPer = set.height * set.width * set.channels;
  const resized = new Float32Array(size * size * set.channels);
  for (let i = 0; i < set.n; i++) {
    const img = set.images.subarray(i * inPer, (i + 1) * inPer);
    if (set.height === size && set.width === size) resized.set(img);
    else resizeBilinear(img, set.height, set.width, set.channels, size, size, resized);
    const base = i * per;
    for (let q = 0; q < size * size; q++) {
      if (set.channels === channels) {
        for (let k = 0; k < channels; k++) out[base + q * channels + k] = toSigned(resized[q * channels + k], 1);
      } else if (channels === 1) {
        // ITU-R 601 luma, as PIL's and sharp's grayscale.
        out[base + q] = toSigned(0.299 * resized[q * 3] + 0.587 * resized[q * 3 + 1] + 0.114 * resized[q * 3 + 2], 1);
      } else {
        for (let k = 0; k < 3; k++) out[base + q * 3 + k] = toSigned(resized[q], 1);
      }
    }
  }
  return { ...set, images: out, height: size, width: size, channels };
}

/** The first `limit` items (readers keep files' order; the batcher shuffles). */
export function take(set: ImageSet, limit?: number): ImageSet {
  if (limit === undefined || limit >= set.n) return set;
  const per = set.height * set.width * set.channels;
  return { ...set, n: limit, images: set.images.slice(0, limit * per), labels: set.labels.slice(0, limit) };
}
