import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { batchNormTrain } from '../../train/models/layers';

/** The textbook batch norm in elementary ops, differentiated by tfjs's autodiff: the reference. */
function reference(x: tf.Tensor4D, g: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor4D {
  const mean = tf.mean(x, [0, 1, 2]);
  const c = tf.sub(x, mean);
  const v = tf.mean(tf.square(c), [0, 1, 2]);
  return tf.add(tf.mul(c, tf.mul(tf.rsqrt(tf.add(v, eps)), g)), b) as tf.Tensor4D;
}

describe('batch norm as one tape node with a hand-derived backward', () => {
  it('matches autodiff of the elementary-op batch norm (value, dx, dgamma, dbeta) and reports the batch statistics', () => {
    tf.tidy(() => {
      const x = tf.add(tf.mul(tf.randomNormal([3, 5, 4, 6], 0, 1, 'float32', 1), 2), 0.5) as tf.Tensor4D;
      const g = tf.randomUniform([6], 0.5, 1.5, 'float32', 2);
      const b = tf.randomNormal([6], 0, 1, 'float32', 3);
      const w = tf.randomNormal([3, 5, 4, 6], 0, 1, 'float32', 4);  // a non-uniform upstream gradient
      let stats: number[][] = [];
      const ours = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(w, batchNormTrain(xx as tf.Tensor4D, gg, bb, 1e-5, (m, v) => { stats = [Array.from(m.dataSync()), Array.from(v.dataSync())]; })));
      const ref = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(w, reference(xx as tf.Tensor4D, gg, bb, 1e-5)));
      const a = tf.grads(ours)([x, g, b]), r = tf.grads(ref)([x, g, b]);
      const maxErr = (p: tf.Tensor, q: tf.Tensor) => tf.max(tf.abs(tf.sub(p, q))).dataSync()[0] / Math.max(tf.max(tf.abs(q)).dataSync()[0], 1e-6);
      assert.ok(maxErr(batchNormTrain(x, g, b, 1e-5), reference(x, g, b, 1e-5)) < 1e-5);
      ['dx', 'dgamma', 'dbeta'].forEach((n, i) => assert.ok(maxErr(a[i], r[i]) < 1e-4, `${n} differs: ${maxErr(a[i], r[i])}`));
      assert.ok(Math.abs(stats[0][0] - tf.mean(tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, 1])).dataSync()[0]) < 1e-5);
    });
  });
  it('keeps no tensor after a gradient computation', () => {
    const x = tf.randomNormal([2, 4, 4, 3]) as tf.Tensor4D, g = tf.ones([3]), b = tf.zeros([3]);
    const before = tf.memory().numTensors;
    const gr = tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.square(batchNormTrain(xx as tf.Tensor4D, gg, bb, 1e-5))))([x, g, b]);
    tf.dispose(gr);
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, g, b]);
  });
});
