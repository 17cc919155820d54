/** Classification metrics: accuracy and the confusion matrix (rows: true class, columns: predicted). */
import * as tf from '../core/tf';
import type { I2IModel } from './i2i';
import { sourceOf, type ImageSet, type ImageSource } from './data/types';

export interface ClassificationReport { accuracy: number; n: number; confusion: number[][]; perClass: number[] }

export function confusionReport(truth: ArrayLike<number>, predicted: ArrayLike<number>, k: number): ClassificationReport {
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  for (let i = 0; i < truth.length; i++) {
    confusion[truth[i]][predicted[i]]++;
    if (truth[i] === predicted[i]) correct++;
  }
  const perClass = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total ? row[c] / total : NaN;
  });
  return { accuracy: truth.length ? correct / truth.length : NaN, n: truth.length, confusion, perClass };
}

/** Predicted classes of every image; an ImageSource's pixels are made one batch at a time. */
export function predictAll(model: I2IModel, images: ImageSet | ImageSource, domain: 'source' | 'target' = 'target', batchSize?: number): Int32Array {
  const set = 'slice' in images ? images : sourceOf(images);
  // About 2^20 input pixels per batch: 256 digits, 20 Office crops (a tidy keeps every activation of its batch).
  const batch = batchSize ?? Math.max(1, Math.min(256, Math.floor(2 ** 20 / (set.height * set.width))));
  const out = new Int32Array(set.n);
  for (let s = 0; s < set.n; s += batch) {
    const e = Math.min(set.n, s + batch);
    const pred = tf.tidy(() => {
      const x = tf.tensor4d(set.slice(s, e), [e - s, set.height, set.width, set.channels]);
      return tf.argMax(model.predict(x, domain), 1);
    });
    out.set(pred.dataSync() as Int32Array, s);
    pred.dispose();
  }
  return out;
}

export function evaluateClassifier(model: I2IModel, set: ImageSet | ImageSource, domain: 'source' | 'target' = 'target'): ClassificationReport {
  return confusionReport(set.labels, predictAll(model, set, domain), set.classes.length);
}

export function formatConfusion(r: ClassificationReport, classes: string[]): string {
  const w = Math.max(5, ...r.confusion.flat().map((v) => String(v).length + 1));
  const head = 'true\\pred'.padEnd(10) + classes.map((c) => c.padStart(w)).join('') + '   recall';
  const rows = r.confusion.map((row, i) => classes[i].padEnd(10) + row.map((v) => String(v).padStart(w)).join('') + (r.perClass[i] * 100).toFixed(1).padStart(8) + '%');
  return [head, ...rows, `accuracy ${(r.accuracy * 100).toFixed(2)}% on ${r.n} images`].join('\n');
}
