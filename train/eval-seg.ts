/** Segmentation metrics: the confusion matrix over non-ignored pixels, per-class IoU and mIoU. */
import { IGNORE } from '../core/labels';

/** Accumulates pixels into a k x k confusion matrix (rows: truth, columns: prediction). */
export function accumulateConfusion(conf: Float64Array, k: number, truth: ArrayLike<number>, pred: ArrayLike<number>): void {
  if (truth.length !== pred.length) throw new Error(`label map has ${truth.length} pixels, prediction ${pred.length}`);
  for (let i = 0; i < truth.length; i++) {
    const t = truth[i];
    if (t === IGNORE) continue;
    if (t >= k) throw new Error(`label ${t} is outside 0..${k - 1} and not the ignore label ${IGNORE}`);
    conf[t * k + pred[i]]++;
  }
}

/** IoU_c = TP / (TP + FP + FN); classes absent from truth and prediction are NaN and left out of mIoU. */
export function iouFromConfusion(conf: Float64Array, k: number): { perClass: number[]; mIoU: number; pixelAccuracy: number } {
  const perClass: number[] = [];
  let total = 0, correct = 0;
  for (let c = 0; c < k; c++) {
    let row = 0, col = 0;
    for (let j = 0; j < k; j++) { row += conf[c * k + j]; col += conf[j * k + c]; }
    const tp = conf[c * k + c];
    const union = row + col - tp;
    perClass.push(union > 0 ? tp / union : NaN);
    total += row; correct += tp;
  }
  const present = perClass.filter((v) => !Number.isNaN(v));
  return { perClass, mIoU: present.length ? present.reduce((a, b) => a + b, 0) / present.length : NaN, pixelAccuracy: total ? correct / total : NaN };
}
