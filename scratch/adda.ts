import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { buildConfig } from '../train/config';
import { I2IModel } from '../train/i2i';
async function main() {
  await initBackend({ quiet: true });
  const m = new I2IModel(buildConfig('mnist-optdigits', 'adda', { batchSize: 4, steps: 4, pretrainSteps: 2 }), 10);
  const b = { x: tf.randomUniform([4, 32, 32, 1], -1, 1) as tf.Tensor4D, y: tf.randomUniform([4, 32, 32, 1], -1, 1) as tf.Tensor4D, labels: tf.tensor1d([0, 1, 2, 3], 'int32') };
  for (let i = 0; i < 4; i++) console.log(m.step(b, i));
}
main().catch((e) => { console.error(e.stack.split('\n').slice(0, 12).join('\n')); process.exit(1); });
