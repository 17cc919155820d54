import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { DENSENET121, DENSENET_SMALL, dilatedDenseNet } from '../../train/models/densenet';

const count = (vars: tf.Variable[]) => vars.reduce((a, v) => a + v.size, 0);

describe('dilated DenseNet encoders', () => {
  it('DenseNet121 has exactly Keras DenseNet121 (no top)\'s 6,953,856 trainable backbone parameters, output stride 8', () => {
    const net = dilatedDenseNet('f121', 1, 3, { ...DENSENET121, headChannels: 0 });
    assert.equal(count(net.store.variables()), 6953856);
    assert.equal(net.outStride, 8);
    assert.equal(net.outShape[2], 1024);
    // Keras names, so that ImageNet weights map by layer name.
    for (const k of ['f121/conv1/conv/w', 'f121/conv2_block1_0_bn/gamma', 'f121/conv4_block24_2_conv/w', 'f121/pool3_conv/w', 'f121/bn/beta']) assert.ok(net.store.trainable.has(k), k);
    net.store.dispose();
  });
  it('the small variant: output stride 8, trains (gradients reach the dilated blocks)', () => {
    const net = dilatedDenseNet('fs', 2, 3, DENSENET_SMALL);
    const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const y = net.apply(x, 'eval');
    assert.deepEqual(y.shape, [1, 8, 8, DENSENET_SMALL.headChannels]);
    const { grads, value } = tf.variableGrads(() => tf.mean(tf.square(net.apply(x, 'train'))) as tf.Scalar, net.store.variables());
    for (const k of ['fs/conv5_block2_2_conv/w', 'fs/context1/conv/w', 'fs/conv1/conv/w']) {
      const v = net.store.trainable.get(k)!;
      assert.ok(tf.sum(tf.abs(grads[v.name])).dataSync()[0] > 0, k);
    }
    Object.values(grads).forEach((g) => g.dispose()); value.dispose(); y.dispose(); x.dispose();
    net.store.dropUpdates();
    net.store.dispose();
  });
});
