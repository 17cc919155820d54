import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { gradientPenalty } from '../train/losses';
import { imageCritic } from '../train/models/nets';
async function main() {
  await initBackend({ force: 'cpu', quiet: true });
  for (const size of [16, 32]) {
    const D = imageCritic('D' + size, 7, [size, size, 1], [4, 6, 8]);
    const real = tf.randomUniform([2, size, size, 1], -1, 1, 'float32', 1) as tf.Tensor4D;
    const fake = tf.randomUniform([2, size, size, 1], -1, 1, 'float32', 2) as tf.Tensor4D;
    const eps = tf.tensor1d([0.3, 0.7]);
    const critic = (x: tf.Tensor4D) => D.apply(x, 'train');
    for (const name of ['conv1/w', 'conv2/w', 'conv3/w', 'conv4/w', 'in2/gamma', 'conv2/b']) {
      const w = D.store.trainable.get(`D${size}/${name}`)!;
      const { grads } = tf.variableGrads(() => gradientPenalty(critic, real, fake, eps), [w]);
      const dir = tf.randomNormal(w.shape, 0, 1, 'float32', 4);
      const an = tf.sum(tf.mul(grads[w.name], dir)).dataSync()[0];
      const w0 = tf.clone(w);
      const at = (s: number) => { w.assign(tf.add(w0, tf.mul(dir, s))); return gradientPenalty(critic, real, fake, eps).dataSync()[0]; };
      const r = [1e-2, 3e-3, 1e-3].map((h) => ((at(h) - at(-h)) / (2 * h)).toFixed(4)); w.assign(w0);
      console.log(size, name, an.toFixed(4), r.join(' '));
    }
  }
}
main();
