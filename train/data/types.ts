import { UserError } from '../../core/errors';

/** A labelled image set in memory, NHWC float32. */
export interface ImageSet {
  name: string;
  /** N*H*W*C values; readers return [0, 1], preprocessing maps to [-1, 1]. */
  images: Float32Array;
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
  classes: string[];
}

export const DIGIT_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

export function checkLabels(labels: Int32Array, numClasses: number, file: string): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (!(l >= 0 && l < numClasses)) {
      throw new UserError(`${file}: label ${l} of item ${i} is outside 0..${numClasses - 1}.`,
        'The file is corrupt or not in the expected format; re-download it.');
    }
  }
}

/**
 * Labelled images whose float pixels are made batch by batch (Office's centre crops: 2,817 Amazon
 * images at 224x224x3 would be 1.7 GB as float32); what evaluation reads.
 */
export interface ImageSource {
  name: string;
  n: number;
  height: number;
  width: number;
  channels: number;
  labels: Int32Array;
  classes: string[];
  /** Items start..end-1 as one NHWC float32 buffer in [-1, 1]. */
  slice(start: number, end: number): Float32Array;
}

/** An in-memory set as a source (its images are already preprocessed). */
export function sourceOf(set: ImageSet): ImageSource {
  const per = set.height * set.width * set.channels;
  return { ...set, slice: (s, e) => set.images.subarray(s * per, e * per) };
}
