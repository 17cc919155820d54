import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { gradientPenalty } from '../train/losses';
import { leaky } from '../train/models/layers';
async function main() {
  await initBackend({ force: 'cpu', quiet: true });
  const w1 = tf.variable(tf.randomNormal([4, 4, 1, 4], 0, 0.5, 'float32', 1));
  const w2 = tf.variable(tf.randomNormal([4, 4, 4, 1], 0, 0.5, 'float32', 2));
  const inorm = (x: tf.Tensor) => { const m = tf.mean(x, [1, 2], true); const c = tf.sub(x, m); return tf.mul(c, tf.rsqrt(tf.add(tf.mean(tf.square(c), [1, 2], true), 1e-5))); };
  const variants: Record<string, (x: tf.Tensor4D) => tf.Tensor1D> = {
    linear: (x) => tf.mean(tf.conv2d(tf.conv2d(x, w1 as tf.Tensor4D, 2, 'same'), w2 as tf.Tensor4D, 2, 'same'), [1, 2, 3]) as tf.Tensor1D,
    square: (x) => tf.mean(tf.conv2d(tf.square(tf.conv2d(x, w1 as tf.Tensor4D, 2, 'same')), w2 as tf.Tensor4D, 2, 'same'), [1, 2, 3]) as tf.Tensor1D,
    leaky: (x) => tf.mean(tf.conv2d(leaky(tf.conv2d(x, w1 as tf.Tensor4D, 2, 'same')), w2 as tf.Tensor4D, 2, 'same'), [1, 2, 3]) as tf.Tensor1D,
    inorm: (x) => tf.mean(tf.conv2d(inorm(tf.conv2d(x, w1 as tf.Tensor4D, 2, 'same')), w2 as tf.Tensor4D, 2, 'same'), [1, 2, 3]) as tf.Tensor1D,
    tanhsq: (x) => tf.mean(tf.conv2d(tf.mul(tf.conv2d(x, w1 as tf.Tensor4D, 2, 'same'), tf.mean(tf.conv2d(x, w1 as tf.Tensor4D, 2, 'same'), [1,2], true)), w2 as tf.Tensor4D, 2, 'same'), [1, 2, 3]) as tf.Tensor1D,
  };
  const real = tf.randomUniform([2, 8, 8, 1], -1, 1, 'float32', 3) as tf.Tensor4D;
  const fake = tf.randomUniform([2, 8, 8, 1], -1, 1, 'float32', 4) as tf.Tensor4D;
  const eps = tf.tensor1d([0.3, 0.7]);
  for (const [name, D] of Object.entries(variants)) {
    for (const w of [w1, w2]) {
      const { grads } = tf.variableGrads(() => gradientPenalty(D, real, fake, eps), [w]);
      const dir = tf.randomNormal(w.shape, 0, 1, 'float32', 5);
      const an = tf.sum(tf.mul(grads[w.name], dir)).dataSync()[0];
      const w0 = tf.clone(w);
      const at = (s: number) => { w.assign(tf.add(w0, tf.mul(dir, s))); return gradientPenalty(D, real, fake, eps).dataSync()[0]; };
      const fd = (at(1e-2) - at(-1e-2)) / 2e-2; w.assign(w0);
      console.log(name, w === w1 ? 'w1' : 'w2', an.toFixed(5), fd.toFixed(5));
    }
  }
}
main();
