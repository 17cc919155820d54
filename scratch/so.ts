import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { crossEntropy } from '../train/losses';
async function main() {
  await initBackend({ force: process.argv[2] });
  const logits = tf.randomNormal([4, 3]);
  const labels = tf.tensor1d([0, 1, 255, 2], 'int32');
  const ce = crossEntropy(logits, labels); console.log('ce', ce.dtype, ce.dataSync()[0]);
  const acts: [string, (x: tf.Tensor) => tf.Tensor][] = [
    ['leakyRelu', (x) => tf.leakyRelu(x, 0.2)],
    ['abs-form', (x) => tf.add(tf.mul(x, 0.6), tf.mul(tf.abs(x), 0.4))],
    ['relu-form', (x) => tf.sub(tf.relu(x), tf.mul(tf.relu(tf.neg(x)), 0.2))],
  ];
  const w = tf.variable(tf.randomNormal([3, 3]));
  const x = tf.randomNormal([5, 3]);
  for (const [n, act] of acts) {
    try {
      const g = tf.variableGrads(() => {
        const gx = tf.grad((xx: tf.Tensor) => tf.sum(act(tf.matMul(xx as tf.Tensor2D, w))))(x);
        return tf.sum(tf.square(gx)) as tf.Scalar;
      }, [w]);
      console.log(n, 'ok', g.value.dataSync()[0]);
    } catch (e) { console.log(n, (e as Error).message); }
  }
}
main();
