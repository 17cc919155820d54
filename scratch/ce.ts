import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { crossEntropy } from '../train/losses';
async function main() {
  await initBackend({ force: process.argv[2] });
  const logits = tf.randomNormal([4, 3]);
  const labels = tf.tensor1d([0, 1, 255, 2], 'int32');
  const g = tf.grad((l: tf.Tensor) => crossEntropy(l, labels))(logits);
  g.print();
}
main().catch((e) => { console.error(e.stack.split('\n').slice(0, 6).join('\n')); process.exit(1); });
