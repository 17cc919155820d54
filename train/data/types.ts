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
