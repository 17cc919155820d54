/**
 * The issue's "done when": --init from a Keras-layout HDF5 file gives DenseNet121 features equal to
 * a reference computed from the same weights. The file is written by h5py (the HDF5 C library, as
 * Keras writes it: test/fixtures/keras-h5/make.py, random weights for every DenseNet121 layer). The
 * reference is DenseNet121 as Keras Applications defines it (keras-applications densenet.py: zero
 * padding 3 + 7x7/2 valid conv, zero padding 1 + 3x3/2 max pool, dense blocks of BN-ReLU-1x1-BN-ReLU-
 * 3x3 + concat, transitions BN-ReLU-1x1 + 2x2/2 average pool, final BN, then Keras 3's ReLU) in
 * tfjs-layers, each layer's weights set by its Keras name from the file, independently of our
 * name mapping (train/weights/keras-names.ts) and of our network code.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { initFromKeras } from '../../train/init';
import { DENSENET121, dilatedDenseNet } from '../../train/models/densenet';
import { readKerasH5 } from '../../train/weights/keras-h5';
import { tmpDir } from '../helpers';
import { h5pyAvailable, writeDenseNet121H5 } from '../fixtures/keras-h5/h5py';

/** Keras Applications' DenseNet121 (notop) in tfjs-layers; returns the model and Keras name -> layer. */
function kerasDenseNet121(side: number): { model: tf.LayersModel; byKerasName: Map<string, tf.layers.Layer> } {
  const byKerasName = new Map<string, tf.layers.Layer>();
  const named = <L extends tf.layers.Layer>(kerasName: string, layer: L): L => { byKerasName.set(kerasName, layer); return layer; };
  const tfName = (n: string) => n.replace(/\//g, '__');
  const bn = (n: string) => named(n, tf.layers.batchNormalization({ axis: 3, epsilon: 1.001e-5, name: tfName(n) }));
  const relu = () => tf.layers.activation({ activation: 'relu' });
  const conv = (n: string, filters: number, k: number, strides = 1, padding: 'valid' | 'same' = 'valid') =>
    named(n, tf.layers.conv2d({ filters, kernelSize: k, strides, padding, useBias: false, name: tfName(n) }));
  const input = tf.input({ shape: [side, side, 3] });
  let x = tf.layers.zeroPadding2d({ padding: [[3, 3], [3, 3]] }).apply(input) as tf.SymbolicTensor;
  x = conv('conv1/conv', 64, 7, 2).apply(x) as tf.SymbolicTensor;
  x = relu().apply(bn('conv1/bn').apply(x)) as tf.SymbolicTensor;
  x = tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]] }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2 }).apply(x) as tf.SymbolicTensor;
  [6, 12, 24, 16].forEach((n, b) => {
    for (let i = 1; i <= n; i++) {
      const p = `conv${b + 2}_block${i}`;
      let y = relu().apply(bn(`${p}_0_bn`).apply(x)) as tf.SymbolicTensor;
      y = conv(`${p}_1_conv`, 128, 1).apply(y) as tf.SymbolicTensor;
      y = relu().apply(bn(`${p}_1_bn`).apply(y)) as tf.SymbolicTensor;
      y = conv(`${p}_2_conv`, 32, 3, 1, 'same').apply(y) as tf.SymbolicTensor;
      x = tf.layers.concatenate({ axis: 3 }).apply([x, y]) as tf.SymbolicTensor;
    }
    if (b < 3) {
      const p = `pool${b + 2}`;
      const c = x.shape[3]!;
      x = relu().apply(bn(`${p}_bn`).apply(x)) as tf.SymbolicTensor;
      x = conv(`${p}_conv`, Math.floor(c * 0.5), 1).apply(x) as tf.SymbolicTensor;
      x = tf.layers.averagePooling2d({ poolSize: 2, strides: 2 }).apply(x) as tf.SymbolicTensor;
    }
  });
  x = relu().apply(bn('bn').apply(x)) as tf.SymbolicTensor;
  return { model: tf.model({ inputs: input, outputs: x }), byKerasName };
}

describe('ImageNet --init from a Keras HDF5 file: DenseNet121 features against Keras\' own graph', function () {
  this.timeout(600000);
  const tmp = tmpDir('i2i-d121h5-');
  const file = path.join(tmp, 'densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5');
  before(function () {
    if (!h5pyAvailable()) this.skip();
    writeDenseNet121H5(file, 7);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('our DenseNet121 loaded through --init equals Keras Applications\' DenseNet121 on the same weights within 1e-4 of the features\' range', () => {
    // Undilated, without the context head: the network of the file. 64x64 (even): there TF's 'same'
    // padding would pad the stem 2/3 and 0/1 where Keras pads 3 and 1, a one-pixel shift (0.11 of the
    // features' range): the stem pads explicitly as Keras does.
    const side = 64;
    const ours = dilatedDenseNet('f', 1, 3, { ...DENSENET121, dilations: [1, 1, 1, 1], headChannels: 0 });
    const dilated = dilatedDenseNet('f', 2, 3, DENSENET121);
    const { model, byKerasName } = kerasDenseNet121(side);
    try {
      const r = initFromKeras(ours.store, file, { allowUnmatched: false });
      assert.deepEqual([r.unmatchedModel, r.unusedFile, r.ignoredTop, r.randomByDesign], [[], [], [], []]);
      assert.equal(r.loaded, 5 + 58 * 10 + 3 * 5 + 4);  // stem, 58 dense units, 3 transitions, final bn
      // The segmentation encoder (dilated, context convs) takes the same file completely.
      const rd = initFromKeras(dilated.store, file, { allowUnmatched: false });
      assert.deepEqual([rd.unmatchedModel, rd.unusedFile, rd.randomByDesign], [[], [], ['context1/conv', 'context1/bn', 'context2/conv', 'context2/bn']]);
      assert.equal(rd.loaded, r.loaded);

      // The reference's weights: by Keras layer name, in each layer's weight_names order.
      const h5 = readKerasH5(file);
      for (const [name, layer] of byKerasName) {
        const params = layer.getClassName() === 'Conv2D' ? ['kernel'] : ['gamma', 'beta', 'moving_mean', 'moving_variance'];
        layer.setWeights(params.map((p) => { const w = h5.weights.get(`${name}/${p}`)!; return tf.tensor(w.values, w.shape); }));
      }
      assert.equal(byKerasName.size, 2 + 58 * 4 + 3 * 2 + 1);  // every conv and BN layer of the file

      const x = tf.randomUniform([1, side, side, 3], -2, 2, 'float32', 11) as tf.Tensor4D;
      const want = model.predict(x) as tf.Tensor;
      const got = ours.apply(x, 'eval');
      assert.deepEqual(got.shape, [1, 2, 2, 1024]);
      assert.deepEqual(got.shape, want.shape);
      const [diff, range] = tf.tidy(() => [tf.max(tf.abs(tf.sub(got, want))).dataSync()[0], tf.sub(tf.max(want), tf.min(want)).dataSync()[0]]);
      assert.ok(range > 0.1, `features are not degenerate (range ${range})`);
      assert.ok(diff / range < 1e-4, `features differ from Keras' by ${diff} (${diff / range} of their range ${range})`);
      tf.dispose([x, want, got]);
    } finally {
      ours.store.dispose(); dilated.store.dispose(); model.dispose();
    }
  });
});
