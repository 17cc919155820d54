/** Segmentation metrics: the confusion matrix over non-ignored pixels, per-class IoU and mIoU. */
import * as tf from '../core/tf';
import { IGNORE } from '../core/labels';
import { loadSegSample, readTrainIds, type SegItem } from './data/segmentation';

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

/**
 * IoU_c = TP / (TP + FP + FN). A class with no ground-truth pixel in the evaluated set is NaN and
 * left out of mIoU (its false positives still count as the true classes' false negatives). On
 * Cityscapes val every class occurs, so this is the usual 19-class mean; on the synthetic scenes,
 * which draw 13 classes, it does not punish twice a prediction of a class that never occurs.
 */
export function iouFromConfusion(conf: Float64Array, k: number): { perClass: number[]; mIoU: number; pixelAccuracy: number } {
  const perClass: number[] = [];
  let total = 0, correct = 0;
  for (let c = 0; c < k; c++) {
    let row = 0, col = 0;
    for (let j = 0; j < k; j++) { row += conf[c * k + j]; col += conf[j * k + c]; }
    const tp = conf[c * k + c];
    const union = row + col - tp;
    perClass.push(row > 0 ? tp / union : NaN);
    total += row; correct += tp;
  }
  const present = perClass.filter((v) => !Number.isNaN(v));
  return { perClass, mIoU: present.length ? present.reduce((a, b) => a + b, 0) / present.length : NaN, pixelAccuracy: total ? correct / total : NaN };
}

/**
 * Evaluates a segmenter the paper's way: each whole frame at the training scale, logits upsampled
 * bilinearly to the label map's full resolution, arg-max, one confusion matrix over the split.
 * The next frame decodes (sharp's threads) while the current one runs through the network.
 */
export async function evaluateSegmenter(
  predict: (image: tf.Tensor4D, outHW: [number, number]) => tf.Tensor,
  items: SegItem[], scale: number, numClasses: number,
  progress?: (done: number, total: number) => void,
): Promise<{ confusion: Float64Array; perClass: number[]; mIoU: number; pixelAccuracy: number; n: number }> {
  const conf = new Float64Array(numClasses * numClasses);
  const load = (it: SegItem) => Promise.all([
    loadSegSample({ ...it, label: undefined }, { scale, crop: 0, flip: false, rand: () => 0 }),
    readTrainIds(it.label!),
  ]);
  let next = items.length ? load(items[0]) : undefined;
  for (let i = 0; i < items.length; i++) {
    const [img, lbl] = await next!;
    next = i + 1 < items.length ? load(items[i + 1]) : undefined;
    next?.catch(() => undefined);
    const pred = tf.tidy(() => {
      const x = tf.tensor4d(img.image, [1, img.height, img.width, 3]);
      return tf.argMax(predict(x, [lbl.height, lbl.width]), -1);
    });
    const p = pred.dataSync();
    pred.dispose();
    accumulateConfusion(conf, numClasses, lbl.ids, p);
    progress?.(i + 1, items.length);
  }
  return { confusion: conf, ...iouFromConfusion(conf, numClasses), n: items.length };
}
