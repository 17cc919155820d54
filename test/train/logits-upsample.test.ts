import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { buildConfig } from '../../train/config';
import { I2IModel } from '../../train/i2i';

/**
 * Training differentiates the logits' upsampling (L_c, L_trc) without the ResizeBilinearGrad kernel:
 * tfjs-node(-gpu)'s differentiates the wrong sampling, and a per-backend fix is one to forget.
 * Here that kernel is replaced by one that throws, on whichever backend the tests run.
 */
describe('segmentation training never calls ResizeBilinearGrad', function () {
  this.timeout(120000);

  it('one full-method step (L_c and L_trc through the upsampled logits) runs with the kernel removed', () => {
    const config = buildConfig('synth-drive', 'full', {
      batchSize: 2, seed: 3,
      model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8], featureCriticWidths: [8, 8] },
      data: { imageSize: 32 },
    });
    assert.ok(config.weights.c > 0 && config.weights.trc > 0);
    const model = new I2IModel(config, 19);
    const be = tf.getBackend();
    const stock = tf.getKernel('ResizeBilinearGrad', be);
    if (stock) tf.unregisterKernel('ResizeBilinearGrad', be);
    tf.registerKernel({ kernelName: 'ResizeBilinearGrad', backendName: be, kernelFunc: () => { throw new Error(`ResizeBilinearGrad was called on ${be}`); } });
    const b = {
      x: tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 1) as tf.Tensor4D,
      y: tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 2) as tf.Tensor4D,
      labels: tf.randomUniform([2, 32, 32], 0, 19, 'int32', 3),
    };
    try {
      const losses = model.step(b, 0);
      assert.ok(Number.isFinite(losses.c) && Number.isFinite(losses.trc), JSON.stringify(losses));
    } finally {
      tf.unregisterKernel('ResizeBilinearGrad', be);
      if (stock) tf.registerKernel(stock);
      tf.dispose([b.x, b.y, b.labels]);
      model.dispose();
    }
  });
});
