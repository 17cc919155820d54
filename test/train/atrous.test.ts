import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { atrousConv2d } from '../../train/models/layers';

type Arr4 = number[][][][];
const maxRel = (a: Arr4, b: Arr4) => {
  const fa = a.flat(3), fb = b.flat(3);
  assert.equal(fa.length, fb.length, 'shapes differ');
  let num = 0, den = 0;
  fa.forEach((v, i) => { num = Math.max(num, Math.abs(v - fb[i])); den = Math.max(den, Math.abs(fb[i])); });
  return num / den;
};

/** The k x k kernel at dilation `rate` written out as a dense (k-1)*rate+1 kernel with zeros between taps. */
function expandKernel(f: Arr4, rate: number): tf.Tensor4D {
  const k = f.length, K = (k - 1) * rate + 1, [ci, co] = [f[0][0].length, f[0][0][0].length];
  const out = tf.buffer([K, K, ci, co]);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) for (let a = 0; a < ci; a++) for (let b = 0; b < co; b++) out.set(f[i][j][a][b], i * rate, j * rate, a, b);
  return out.toTensor() as tf.Tensor4D;
}

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

describe('dilated convolution: gradients against a dense zero-inserted kernel', () => {
  // The dense kernel has the dilated kernel's extent, so its stride-1 'same' padding is the dilated
  // conv's (floor of (k-1)*rate / 2 at the top/left, the rest at the bottom/right; asymmetric for
  // the even kernel). The reference runs on the cpu backend: on wasm it would share the
  // Conv2DBackpropInput kernel with the code under test, and a fault there would cancel out.
  for (const [h, w, k, rate] of [[12, 16, 3, 2], [13, 9, 3, 4], [11, 14, 5, 2], [9, 10, 2, 3]]) {
    it(`dL/dx, dL/dw and the forward of ${h}x${w}, ${k}x${k}, rate ${rate} equal the dense conv's`, async () => {
      const xv = tf.tidy(() => tf.randomNormal([2, h, w, 3], 0, 1, 'float32', 1).arraySync()) as Arr4;
      const fv = tf.tidy(() => tf.randomNormal([k, k, 3, 4], 0, 1, 'float32', 2).arraySync()) as Arr4;
      const Rv = tf.tidy(() => tf.randomNormal([2, h, w, 4], 0, 1, 'float32', 4).arraySync()) as Arr4;
      const ours = tf.tidy(() => {
        const x = tf.tensor4d(xv), f = tf.tensor4d(fv), R = tf.tensor4d(Rv);
        const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(R, atrousConv2d(a as tf.Tensor4D, b as tf.Tensor4D, rate))))([x, f]);
        return { y: atrousConv2d(x, f, rate).arraySync() as Arr4, gx: gx.arraySync() as Arr4, gf: gf.arraySync() as Arr4 };
      });
      const backend = tf.getBackend();
      await tf.setBackend('cpu');
      let ref: typeof ours;
      try {
        ref = tf.tidy(() => {
          const x = tf.tensor4d(xv), K = expandKernel(fv, rate), R = tf.tensor4d(Rv);
          const [gx, gK] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(R, tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'))))([x, K]);
          // The dilated kernel's gradient is the dense kernel's at the taps.
          const gf = tf.stridedSlice(gK, [0, 0, 0, 0], gK.shape, [rate, rate, 1, 1]);
          return { y: tf.conv2d(x, K, 1, 'same').arraySync() as Arr4, gx: gx.arraySync() as Arr4, gf: gf.arraySync() as Arr4 };
        });
      } finally { await tf.setBackend(backend); }
      for (const key of ['y', 'gx', 'gf'] as const) {
        const e = maxRel(ours[key], ref[key]);
        assert.ok(e < 1e-4, `${key} differs from the dense conv by ${e}`);
      }
    });
  }
});
