/**
 * What the trainer sees of a domain: a count, class names, and an asynchronous batch loader whose
 * randomness (crops, flips) is a function of (seed, step, position in the batch), so that a resumed
 * run draws the same batches. Digits live in memory; driving scenes are decoded on demand by sharp
 * (libvips threads), so the next batch decodes while the current step computes.
 */
import { UserError } from '../../core/errors';
import { deriveSeed, mulberry32 } from '../../core/rng';
import { gather } from './batcher';
import { frameSize, loadSegSample, type FrameSize, type SegList } from './segmentation';
import type { ImageSet } from './types';

export interface BatchData {
  images: Float32Array;
  /** Per image ([n]) or per pixel ([n, h, w], 255 = ignore); absent for an unlabelled domain. */
  labels?: Int32Array;
  shape: [number, number, number, number];
  labelShape?: number[];
}

export interface Domain {
  name: string;
  n: number;
  classes: string[];
  load(idx: Int32Array, step: number): Promise<BatchData>;
}

export function imageSetDomain(set: ImageSet): Domain {
  return {
    name: set.name, n: set.n, classes: set.classes,
    load: async (idx) => {
      const g = gather(set, idx);
      return { images: g.images, labels: g.labels, shape: [idx.length, set.height, set.width, set.channels], labelShape: [idx.length] };
    },
  };
}

export interface SceneSampling { scale: number; crop: number; flip: boolean; seed: number; labels: boolean }

export function sceneDomain(list: SegList, classes: string[], o: SceneSampling): Domain {
  const sizes = new Map<number, FrameSize>();
  const sizeOf = async (j: number) => {
    let s = sizes.get(j);
    if (!s) { s = await frameSize(list.items[j]); sizes.set(j, s); }
    return s;
  };
  return {
    name: list.name, n: list.items.length, classes,
    load: async (idx, step) => {
      const c = o.crop;
      const samples = await Promise.all(Array.from(idx, async (j, i) => {
        const item = o.labels ? list.items[j] : { ...list.items[j], label: undefined };
        const size = await sizeOf(j);
        if (Math.round(size.width * o.scale) < c || Math.round(size.height * o.scale) < c) {
          throw new UserError(`${item.image} is ${size.width}x${size.height}; at scale ${o.scale} it is smaller than the ${c}x${c} training crop.`,
            'Lower data.imageSize (a multiple of 8) or raise data.scale.');
        }
        return loadSegSample(item, { scale: o.scale, crop: c, flip: o.flip, rand: mulberry32(deriveSeed(o.seed, 'crop', step, i)) }, size);
      }));
      const per = c * c * 3;
      const images = new Float32Array(idx.length * per);
      const labels = o.labels ? new Int32Array(idx.length * c * c) : undefined;
      samples.forEach((s, i) => {
        images.set(s.image, i * per);
        if (labels) {
          if (!s.labels) throw new UserError(`${list.items[idx[i]].image} has no label map.`, 'Every source frame needs its labelIds PNG.');
          labels.set(s.labels, i * c * c);
        }
      });
      return { images, labels, shape: [idx.length, c, c, 3], labelShape: labels ? [idx.length, c, c] : undefined };
    },
  };
}
