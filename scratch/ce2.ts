import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
async function main() {
  await initBackend({ force: 'cpu' });
  const logits = tf.randomNormal([4, 3]);
  const labels = tf.tensor1d([0, 1, 255, 2], 'int32');
  const tries: [string, (l: tf.Tensor) => tf.Tensor][] = [
    ['logsoftmax', (l) => tf.sum(tf.logSoftmax(l as tf.Tensor2D))],
    ['onehot', (l) => tf.sum(tf.mul(l, tf.oneHot(tf.tensor1d([0,1,2,0],'int32'), 3)))],
    ['cast', (l) => tf.sum(tf.mul(l, tf.cast(tf.tensor1d([1,0,1,1],'bool'), 'float32').reshape([4,1])))],
    ['max', (l) => tf.div(tf.sum(l), tf.maximum(tf.sum(tf.ones([3])), tf.scalar(1)))],
    ['div', (l) => tf.div(tf.sum(l), tf.scalar(2))],
  ];
  for (const [n, f] of tries) {
    try { tf.grad(f)(logits); console.log(n, 'ok'); } catch (e) { console.log(n, (e as Error).message); }
  }
}
main();
