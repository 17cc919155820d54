import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { DENSENET_SMALL, dilatedDenseNet } from '../../train/models/densenet';
import { imageCritic, pixelClassifier, segmentationDecoders } from '../../train/models/nets';

describe('segmentation networks (5.3)', () => {
  it('encoder (stride 8) -> per-pixel logits, decoders back to the image size, image critics on 3 channels', () => {
    const f = dilatedDenseNet('f', 1, 3, DENSENET_SMALL);
    const h = pixelClassifier('h', 2, DENSENET_SMALL.headChannels, 19);
    const dec = segmentationDecoders(3, DENSENET_SMALL.headChannels, [32, 16, 8]);
    const D = imageCritic('D_y', 4, [64, 64, 3], [8, 16, 32]);
    tf.tidy(() => {
      const x = tf.randomUniform([2, 64, 64, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
      const z = f.apply(x, 'eval');
      assert.deepEqual(h.apply(z, 'eval').shape, [2, 8, 8, 19]);
      const img = dec.gy.apply(z, 'eval');
      assert.deepEqual(img.shape, [2, 64, 64, 3]);
      assert.ok(tf.max(tf.abs(img)).dataSync()[0] <= 1);
      assert.deepEqual(D.apply(img, 'eval').shape, [2]);
    });
    // The decoders' shared trunk is one set of variables used by both.
    assert.ok(dec.shared.store.variables().every((v) => !dec.gx.store.variables().includes(v) && !dec.gy.store.variables().includes(v)));
    [f, h, dec.shared, dec.gx, dec.gy, D].forEach((n) => n.store.dispose());
  });
});
