import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { buildConfig } from '../train/config';
import { I2IModel } from '../train/i2i';
async function main() {
  await initBackend();
  const method = process.argv[2] ?? 'full';
  const bs = Number(process.argv[3] ?? 64);
  const cfg = buildConfig('mnist-optdigits', method, { batchSize: bs, model: JSON.parse(process.argv[4] ?? '{}') });
  const m = new I2IModel(cfg, 10);
  const b = { x: tf.randomUniform([bs, 32, 32, 1], -1, 1) as tf.Tensor4D, y: tf.randomUniform([bs, 32, 32, 1], -1, 1) as tf.Tensor4D, labels: tf.tensor1d(Array.from({ length: bs }, (_, i) => i % 10), 'int32') };
  for (let i = 0; i < 4; i++) {
    const t0 = Date.now();
    const l = m.step(b, i);
    console.log(method, i, Date.now() - t0, 'ms', JSON.stringify(l), tf.memory().numTensors);
  }
}
main().catch((e) => { console.error(e.stack.slice(0, 2000)); process.exit(1); });
