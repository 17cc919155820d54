/**
 * Seeded epoch-wise shuffling. The order of epoch e is a pure function of (seed, e), so the
 * sampler's whole state is {epoch, position}: checkpoints store it and resume draws the same batches.
 */
import { deriveSeed, mulberry32, permutation } from '../../core/rng';
import type { ImageSet } from './types';

export interface SamplerState { epoch: number; position: number }

export class Sampler {
  private order: Int32Array;
  constructor(readonly n: number, readonly seed: number, public state: SamplerState = { epoch: 0, position: 0 }) {
    this.order = this.orderFor(state.epoch);
  }
  private orderFor(epoch: number): Int32Array {
    return permutation(this.n, mulberry32(deriveSeed(this.seed, 'epoch', epoch)));
  }
  /** Next `size` indices, continuing into the next epoch's order when this one runs out. */
  next(size: number): Int32Array {
    const out = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      if (this.state.position >= this.n) {
        this.state = { epoch: this.state.epoch + 1, position: 0 };
        this.order = this.orderFor(this.state.epoch);
      }
      out[i] = this.order[this.state.position++];
    }
    return out;
  }
}

/** Gathers items into one NHWC buffer and their labels. */
export function gather(set: ImageSet, idx: Int32Array): { images: Float32Array; labels: Int32Array } {
  const per = set.height * set.width * set.channels;
  const images = new Float32Array(idx.length * per);
  const labels = new Int32Array(idx.length);
  idx.forEach((j, i) => {
    images.set(set.images.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = set.labels[j];
  });
  return { images, labels };
}
