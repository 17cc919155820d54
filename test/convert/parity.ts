/** Test helper: a live model's exported float32 TFLite file against the model itself, in the real TFLite runtime. */
import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { inferenceGraph } from '../../convert/graph';
import { loadTflite } from '../../runtime/tflite';
import { writeTflite } from '../../convert/tflite';
import type { I2IModel } from '../../train/i2i';

/**
 * Exports `m` with inferenceGraph at `hw`, runs the TFLite file on one random frame and returns the
 * largest |TFLite - tfjs| (tfjs: the training model in 'eval' mode on the target path) and the
 * largest |tfjs| (the output range).
 */
export function tfliteVsTfjs(m: I2IModel, hw: [number, number]): { diff: number; range: number } {
  const cfg = m.config;
  const bytes = writeTflite(inferenceGraph(m, hw, 'model'));
  assert.equal(new TextDecoder().decode(bytes.slice(4, 8)), 'TFL3');
  const t = loadTflite(bytes);
  const x = tf.randomUniform([1, hw[0], hw[1], cfg.data.channels], -1, 1, 'float32', 3) as tf.Tensor4D;
  try {
    const ref = tf.tidy(() => m.predict(x, 'target', cfg.kind === 'segment' ? hw : undefined).dataSync());
    const got = t.run(x.dataSync() as Float32Array);
    assert.equal(got.length, ref.length);
    let diff = 0, range = 0;
    for (let i = 0; i < ref.length; i++) { diff = Math.max(diff, Math.abs(ref[i] - got[i])); range = Math.max(range, Math.abs(ref[i])); }
    return { diff, range };
  } finally { t.dispose(); x.dispose(); }
}

export function assertParity({ diff, range }: { diff: number; range: number }, tolerance = 1e-4): void {
  assert.ok(range > 0 && diff / range < tolerance, `max |tflite - tfjs| = ${diff} of range ${range}`);
}
