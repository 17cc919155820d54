import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { buildConfig, validateConfig } from '../../train/config';
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
  it('the stem pads as Keras does in new runs; runs made before keep their \'same\' stem (their checkpoints stay the same function)', () => {
    const cfg = buildConfig('synth-drive', 'full');
    assert.equal(cfg.model.stemPadding, 'keras');
    const old = JSON.parse(JSON.stringify(cfg)) as { model: Record<string, unknown> };
    delete old.model.stemPadding;
    assert.equal(validateConfig(old).model.stemPadding, 'same', 'a config saved before the key existed');
    // Same weights, even input: the two stems differ (a one-pixel shift), the shapes do not.
    const a = dilatedDenseNet('sa', 3, 3, DENSENET_SMALL), b = dilatedDenseNet('sa', 3, 3, { ...DENSENET_SMALL, stemPadding: 'same' });
    const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const ya = a.apply(x, 'eval'), yb = b.apply(x, 'eval');
    assert.deepEqual(ya.shape, yb.shape);
    assert.ok(tf.max(tf.abs(tf.sub(ya, yb))).dataSync()[0] > 1e-3);
    tf.dispose([x, ya, yb]); a.store.dispose(); b.store.dispose();
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

describe('gradient checkpointing of dense blocks (model.recompute)', () => {
  it('gives the same loss, the same gradient for every variable and the same running statistics, and leaks nothing', () => {
    const run = (recompute: boolean) => {
      const enc = dilatedDenseNet('f', 7, 3, { ...DENSENET_SMALL, recompute });
      const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const w = tf.randomNormal([2, 4, 4, DENSENET_SMALL.headChannels], 0, 1, 'float32', 4);
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(enc.apply(x, 'train'), w)) as tf.Scalar, enc.store.variables());
      enc.store.flushUpdates();
      const out = {
        loss: value.dataSync()[0],
        grads: new Map([...enc.store.trainable].map(([k, v]) => [k, Array.from(grads[v.name].dataSync())])),
        stats: new Map([...enc.store.buffers].map(([k, v]) => [k, Array.from(v.dataSync())])),
      };
      tf.dispose([value, ...Object.values(grads)]);
      const leaked = tf.memory().numTensors - before;
      tf.dispose([x, w]);
      enc.store.dispose();
      return { ...out, leaked };
    };
    const a = run(false), b = run(true);
    assert.equal(b.leaked, 0);
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * Math.abs(a.loss));
    for (const [k, g] of a.grads) {
      const h = b.grads.get(k)!;
      const scale = Math.max(...g.map(Math.abs), 1e-8);
      assert.ok(g.every((v, i) => Math.abs(v - h[i]) <= 1e-4 * scale), `${k}: gradients differ`);
      assert.ok(scale > 0, `${k}: no gradient`);
    }
    for (const [k, s] of a.stats) assert.deepEqual(b.stats.get(k), s, `${k}: running statistics differ`);
  });
});
