/**
 * Rare-class sampling of source frames (DAFormer, Hoyer et al. CVPR 2022, section 3.3): a class c is
 * drawn with probability softmax((1 - f_c) / T) over the source's pixel frequencies f_c, then a
 * frame that shows it (at least `minShare` of its pixels), so that rare classes (rider, train,
 * bicycle) come up in batches far more often than in uniform epochs. Draws are a function of
 * (seed, step, position): a resumed run draws the same frames with no sampler state to save.
 *
 * Frame-level only: DAFormer also re-crops until the crop holds the class; here the crop is the
 * frame's usual random crop (train/data/domain.ts).
 */
import * as fs from 'node:fs';
import { IGNORE } from '../../core/labels';
import { deriveSeed, mulberry32 } from '../../core/rng';
import type { SegItem } from './segmentation';
import { readTrainIds } from './segmentation';
import { DamagedFileError } from './png-decode';

export interface ClassStats {
  /** Each class's share of the labelled source pixels. */
  frequency: number[];
  /** For each class, the frames (indices into the source list) that show it. */
  framesWith: number[][];
}

/** DAFormer's 3,000 pixels of a 1914x1052 GTA5 frame, as a share of the frame. */
export const MIN_SHARE = 3000 / (1914 * 1052);

/** Counts each class's pixels over every source label map; cached in `cacheFile` (read when it names the same frames). */
export async function classStats(items: SegItem[], numClasses: number, o: { cacheFile?: string; minShare?: number; progress?: (line: string) => void } = {}): Promise<ClassStats> {
  // The files' sizes and times too: relabelled maps under the same names are counted again.
  const key = JSON.stringify({ labels: items.map((i) => { if (!i.label) return ''; const st = fs.statSync(i.label); return `${i.label}:${st.size}:${st.mtimeMs}`; }), numClasses, minShare: o.minShare ?? MIN_SHARE });
  if (o.cacheFile && fs.existsSync(o.cacheFile)) {
    try {
      const cached = JSON.parse(fs.readFileSync(o.cacheFile, 'utf8')) as { key: string; stats: ClassStats };
      if (cached.key === key) return cached.stats;
    } catch { /* recounted below */ }
  }
  o.progress?.(`[i2i] rare-class sampling: counting the classes of ${items.length} source label maps`);
  const pixels = new Float64Array(numClasses);
  const framesWith: number[][] = Array.from({ length: numClasses }, () => []);
  for (let j = 0; j < items.length; j++) {
    if (!items[j].label) continue;
    let ids: Uint8Array;
    try {
      ({ ids } = await readTrainIds(items[j].label!));
    } catch (e) {
      // As the batches do (train/data/domain.ts): a damaged map is named and left out, training goes on.
      if (!(e instanceof DamagedFileError)) throw e;
      o.progress?.(`[i2i] rare-class sampling: skipped damaged label map ${e.file} (${e.reason})`);
      continue;
    }
    const counts = new Float64Array(numClasses);
    for (let p = 0; p < ids.length; p++) if (ids[p] !== IGNORE && ids[p] < numClasses) counts[ids[p]]++;
    counts.forEach((n, c) => {
      pixels[c] += n;
      if (n > 0 && n >= (o.minShare ?? MIN_SHARE) * ids.length) framesWith[c].push(j);
    });
  }
  const total = pixels.reduce((a, b) => a + b, 0) || 1;
  const stats: ClassStats = { frequency: Array.from(pixels, (n) => n / total), framesWith };
  if (o.cacheFile) fs.writeFileSync(o.cacheFile, JSON.stringify({ key, stats }));
  return stats;
}

/** P(c) = softmax((1 - f_c) / T) over the classes some frame shows; 0 for the others. */
export function classProbabilities(stats: ClassStats, temperature: number): number[] {
  const logits = stats.frequency.map((f, c) => (stats.framesWith[c].length ? (1 - f) / temperature : -Infinity));
  const max = Math.max(...logits);
  const e = logits.map((l) => (l === -Infinity ? 0 : Math.exp(l - max)));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

export class RareClassSampler {
  private readonly cdf: number[];

  constructor(private readonly stats: ClassStats, temperature: number, private readonly seed: number) {
    const p = classProbabilities(stats, temperature);
    let acc = 0;
    this.cdf = p.map((v) => (acc += v));
  }

  /** The source frames of `step`'s batch. */
  draw(step: number, size: number): Int32Array {
    const out = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      const rand = mulberry32(deriveSeed(this.seed, 'rcs', step, i));
      const u = rand() * this.cdf[this.cdf.length - 1];
      let c = this.cdf.findIndex((v) => u < v);
      if (c < 0) c = this.cdf.length - 1;
      while (this.stats.framesWith[c].length === 0) c = (c + 1) % this.cdf.length;
      const frames = this.stats.framesWith[c];
      out[i] = frames[Math.floor(rand() * frames.length)];
    }
    return out;
  }
}
