import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { atrousConv2d } from '../../train/models/layers';

describe('dilated convolution in space-to-batch form', () => {
  for (const [h, w, k, rate] of [[12, 16, 3, 2], [13, 9, 3, 4], [10, 10, 3, 1], [11, 14, 5, 2]]) {
    it(`equals the native dilated conv (${h}x${w}, ${k}x${k}, rate ${rate}) and is differentiable`, () => {
      const x = tf.randomNormal([2, h, w, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const f = tf.randomNormal([k, k, 3, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
      const native = tf.conv2d(x, f, 1, 'same', 'NHWC', rate);
      const ours = atrousConv2d(x, f, rate);
      assert.deepEqual(ours.shape, native.shape);
      assert.ok(tf.max(tf.abs(tf.sub(ours, native))).dataSync()[0] < 1e-4);
      // tfjs cannot differentiate conv2d with dilation > 1; the space-to-batch form can.
      // A linear probe sum(R * conv) makes central differences exact up to rounding.
      const R = tf.randomNormal(native.shape, 0, 1, 'float32', 4);
      const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(R, atrousConv2d(a as tf.Tensor4D, b as tf.Tensor4D, rate))))([x, f]);
      assert.ok(tf.sum(tf.abs(gf)).dataSync()[0] > 0 && tf.sum(tf.abs(gx)).dataSync()[0] > 0);
      // Directional derivative check in the filter.
      const dir = tf.randomNormal(f.shape, 0, 1, 'float32', 3);
      const loss = (ff: tf.Tensor) => tf.sum(tf.mul(R, atrousConv2d(x, ff as tf.Tensor4D, rate))).dataSync()[0];
      const eps = 0.5;
      const fd = (loss(tf.add(f, tf.mul(dir, eps))) - loss(tf.sub(f, tf.mul(dir, eps)))) / (2 * eps);
      const an = tf.sum(tf.mul(gf, dir)).dataSync()[0];
      assert.ok(Math.abs(fd - an) < 1e-2 * Math.abs(an), `${fd} vs ${an}`);
    });
  }
});
