/**
 * What the trainer sees of a domain: a count, class names, and an asynchronous batch loader whose
 * randomness (crops, flips) is a function of (seed, step, position in the batch), so that a resumed
 * run draws the same batches. Digits live in memory; driving scenes are decoded on demand by sharp
 * (libvips threads), so the next batch decodes while the current step computes.
 */
import { UserError } from '../../core/errors';
import { deriveSeed, mulberry32 } from '../../core/rng';
import { gather } from './batcher';
import { DamagedFileError } from './png-decode';
import { frameSize, loadSegSample, type FrameSize, type SegItem, type SegList, type SegSample } from './segmentation';
import type { ImageSet } from './types';

export interface BatchData {
  images: Float32Array;
  /** Per image ([n]) or per pixel ([n, h, w], 255 = ignore); absent for an unlabelled domain. */
  labels?: Int32Array;
  shape: [number, number, number, number];
  labelShape?: number[];
  /** The label maps the batch was read from (driving scenes), for messages about them. */
  labelFiles?: string[];
}

export interface Domain {
  name: string;
  n: number;
  classes: string[];
  load(idx: Int32Array, step: number): Promise<BatchData>;
  /** What the reader met and worked around so far (e.g. label maps resized to their image), for a report at the end. */
  notes?(): string[];
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

export interface SceneSampling {
  scale: number; crop: number; flip: boolean; seed: number; labels: boolean;
  /** Where damaged files are reported as they are skipped (the trainer's progress lines). */
  report?: (line: string) => void;
}

/** Draws for a replacement after a damaged file before the batch gives up. */
const REPLACEMENT_DRAWS = 20;

export function sceneDomain(list: SegList, classes: string[], o: SceneSampling): Domain {
  const sizes = new Map<number, FrameSize>();
  const sizeOf = async (j: number) => {
    let s = sizes.get(j);
    if (!s) { s = await frameSize(list.items[j]); sizes.set(j, s); }
    return s;
  };
  // Damaged files are found when a sample is decoded (no pass over the data up front): the item is
  // remembered, reported once, and replaced by a draw that depends on (seed, step, position, attempt)
  // only, so a resumed run replaces it the same way.
  const damaged = new Set<number>();
  const resized = new Map<string, string>();
  const loadOne = async (item: SegItem, j: number, step: number, i: number): Promise<SegSample> => {
    const c = o.crop;
    const size = await sizeOf(j);
    if (Math.round(size.width * o.scale) < c || Math.round(size.height * o.scale) < c) {
      throw new UserError(`${item.image} is ${size.width}x${size.height}; at scale ${o.scale} it is smaller than the ${c}x${c} training crop.`,
        'Lower data.imageSize (a multiple of 8) or raise data.scale.');
    }
    const s = await loadSegSample(item, { scale: o.scale, crop: c, flip: o.flip, rand: mulberry32(deriveSeed(o.seed, 'crop', step, i)) }, size);
    if (s.labelSizeOff && item.label) resized.set(item.label, `${s.labelSizeOff.width}x${s.labelSizeOff.height} for a ${size.width}x${size.height} image`);
    return s;
  };
  const sample = async (j0: number, step: number, i: number): Promise<{ s: SegSample; j: number }> => {
    let j = j0;
    for (let attempt = 0; ; attempt++) {
      const item = o.labels ? list.items[j] : { ...list.items[j], label: undefined };
      if (!damaged.has(j)) {
        try {
          return { s: await loadOne(item, j, step, i), j };
        } catch (e) {
          if (!(e instanceof DamagedFileError)) throw e;
          damaged.add(j);
          o.report?.(`[i2i] ${list.name}: skipped damaged file ${e.file} (${e.reason}); training goes on with the other ${list.items.length - damaged.size} frame(s)`);
        }
      }
      if (damaged.size >= list.items.length || attempt >= REPLACEMENT_DRAWS) {
        throw new UserError(`${list.name}: ${damaged.size} of ${list.items.length} frames are damaged; no readable frame was found for a batch.`, 'Replace the damaged files named above with good copies.');
      }
      j = Math.floor(mulberry32(deriveSeed(o.seed, 'replace', step, i, attempt))() * list.items.length);
    }
  };
  return {
    name: list.name, n: list.items.length, classes,
    load: async (idx, step) => {
      const c = o.crop;
      const got = await Promise.all(Array.from(idx, (j, i) => sample(j, step, i)));
      const per = c * c * 3;
      const images = new Float32Array(idx.length * per);
      const labels = o.labels ? new Int32Array(idx.length * c * c) : undefined;
      got.forEach(({ s, j }, i) => {
        images.set(s.image, i * per);
        if (labels) {
          if (!s.labels) throw new UserError(`${list.items[j].image} has no label map.`, 'Every source frame needs its labelIds PNG.');
          labels.set(s.labels, i * c * c);
        }
      });
      return {
        images, labels, shape: [idx.length, c, c, 3], labelShape: labels ? [idx.length, c, c] : undefined,
        labelFiles: labels ? got.map(({ j }) => list.items[j].label!) : undefined,
      };
    },
    notes: () => {
      if (resized.size === 0) return [];
      const some = [...resized].slice(0, 5).map(([f, what]) => `${f} (${what})`).join(', ');
      return [`[i2i] ${list.name}: ${resized.size} label map(s) differed from their image's size and were resized to it by nearest neighbour: ${some}${resized.size > 5 ? ', ...' : ''}`];
    },
  };
}
