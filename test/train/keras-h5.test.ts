import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initFromKeras, readKerasWeights } from '../../train/init';
import { DENSENET121, dilatedDenseNet } from '../../train/models/densenet';
import { dilatedResNet, RESNET50 } from '../../train/models/resnet';
import { readKerasH5 } from '../../train/weights/keras-h5';
import { tmpDir } from '../helpers';

const FIXTURES = path.resolve(__dirname, '../fixtures/keras-h5');

/** make.py's value(): ((i * 7 + seed) % 1000) / 1000 - 0.5 as float32, seed = the dataset's order in the file. */
function expected(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => ((i * 7 + seed) % 1000) / 1000 - 0.5);
}

/** The fixture's layers (make.py fixtures): the stem, conv2_block1, the final bn, in Keras' order. */
const HEAD: [string, number[]][] = [
  ['conv1/conv/kernel', [7, 7, 3, 64]],
  ...['gamma', 'beta', 'moving_mean', 'moving_variance'].map((p) => [`conv1/bn/${p}`, [64]] as [string, number[]]),
  ...['gamma', 'beta', 'moving_mean', 'moving_variance'].map((p) => [`conv2_block1_0_bn/${p}`, [64]] as [string, number[]]),
  ['conv2_block1_1_conv/kernel', [1, 1, 64, 128]],
  ...['gamma', 'beta', 'moving_mean', 'moving_variance'].map((p) => [`conv2_block1_1_bn/${p}`, [128]] as [string, number[]]),
  ['conv2_block1_2_conv/kernel', [3, 3, 128, 32]],
  ...['gamma', 'beta', 'moving_mean', 'moving_variance'].map((p) => [`bn/${p}`, [1024]] as [string, number[]]),
];

/** tf.keras / keras-applications ResNet50's weight names (keras/applications/resnet.py's naming rules). */
function kerasResNet50Weights(): { name: string; shape: number[] }[] {
  const w: { name: string; shape: number[] }[] = [];
  const bn = (n: string, c: number) => ['gamma', 'beta', 'moving_mean', 'moving_variance'].forEach((p) => w.push({ name: `${n}/${p}:0`, shape: [c] }));
  const conv = (n: string, k: number, cin: number, cout: number) => w.push({ name: `${n}/kernel:0`, shape: [k, k, cin, cout] }, { name: `${n}/bias:0`, shape: [cout] });
  conv('conv1_conv', 7, 3, 64); bn('conv1_bn', 64);
  let c = 64;
  [[64, 3], [128, 4], [256, 6], [512, 3]].forEach(([f, n], s) => {
    for (let b = 1; b <= n; b++) {
      const p = `conv${s + 2}_block${b}`;
      if (b === 1) { conv(`${p}_0_conv`, 1, c, 4 * f); bn(`${p}_0_bn`, 4 * f); }
      conv(`${p}_1_conv`, 1, c, f); bn(`${p}_1_bn`, f);
      conv(`${p}_2_conv`, 3, f, f); bn(`${p}_2_bn`, f);
      conv(`${p}_3_conv`, 1, f, 4 * f); bn(`${p}_3_bn`, 4 * f);
      c = 4 * f;
    }
  });
  return w;
}

function writeModelJson(dir: string, weights: { name: string; shape: number[] }[]): string {
  fs.mkdirSync(dir, { recursive: true });
  const total = weights.reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
  fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.from(new Float32Array(total).fill(0.25).buffer));
  const file = path.join(dir, 'model.json');
  fs.writeFileSync(file, JSON.stringify({ format: 'layers-model', modelTopology: {}, weightsManifest: [{ paths: ['w.bin'], weights: weights.map((w) => ({ ...w, dtype: 'float32' })) }] }));
  return file;
}

describe('Keras HDF5 weights (train/weights/keras-h5.ts)', function () {
  this.timeout(120000);
  const tmp = tmpDir('i2i-h5-');
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('reads a file h5py wrote in Keras\' layout: every weight of every layer, names, shapes and values', () => {
    const r = readKerasH5(path.join(FIXTURES, 'densenet121-head.h5'));
    assert.deepEqual([...r.weights.keys()], HEAD.map(([n]) => n));
    HEAD.forEach(([name, shape], seed) => {
      const w = r.weights.get(name)!;
      assert.deepEqual(w.shape, shape, name);
      assert.deepEqual(w.values, expected(shape.reduce((a, b) => a * b, 1), seed), name);
    });
    assert.deepEqual([...r.top], []);
  });

  it('reads a whole-model save (weights under model_weights/, a gzip-compressed chunked dataset) and names its Dense top', () => {
    const r = readKerasH5(path.join(FIXTURES, 'densenet121-head-model.h5'));
    const names = [...HEAD.map(([n]) => n), 'fc1000/kernel', 'fc1000/bias'];
    assert.deepEqual([...r.weights.keys()], names);
    const chunked = HEAD.findIndex(([n]) => n === 'conv2_block1_1_conv/kernel');
    assert.deepEqual(r.weights.get('conv2_block1_1_conv/kernel')!.values, expected(64 * 128, chunked));
    assert.deepEqual(r.weights.get('fc1000/kernel')!.shape, [1024, 10]);
    assert.deepEqual([...r.top], ['fc1000']);
  });

  it('refuses what is not a Keras weights file, saying what it is', () => {
    const junk = path.join(tmp, 'junk.h5');
    fs.writeFileSync(junk, 'not hdf5');
    assert.throws(() => readKerasWeights(junk), /junk\.h5 is not a readable HDF5 file/);
    assert.throws(() => readKerasH5(path.join(tmp, 'missing.h5')), /not found/);
  });

  it('a file that covers part of DenseNet121 is refused with every unmatched name listed, and loads with --allow-unmatched', () => {
    const file = path.join(FIXTURES, 'densenet121-head-model.h5');
    const enc = dilatedDenseNet('f', 1, 3, DENSENET121);
    try {
      assert.throws(() => initFromKeras(enc.store, file, { allowUnmatched: false }),
        (e: Error) => /does not map completely/.test(e.message) && /conv2_block2_0_bn\/gamma/.test(e.message) && /pool4_conv\/kernel/.test(e.message) && /conv5_block16_2_conv\/kernel/.test(e.message) && /--allow-unmatched/.test(e.message));
      const logs: string[] = [];
      const r = initFromKeras(enc.store, file, { allowUnmatched: true, log: (l) => logs.push(l) });
      assert.equal(r.loaded, HEAD.length);
      assert.deepEqual(r.ignoredTop, ['fc1000']);
      assert.deepEqual(r.unusedFile, []);
      assert.ok(logs.some((l) => l.includes('encoder weights with no match')));
      // The stem's kernel is the file's (h5py wrote seed 0's values).
      assert.deepEqual(enc.store.trainable.get('f/conv1/conv/w')!.dataSync(), expected(7 * 7 * 3 * 64, 0));
    } finally { enc.store.dispose(); }
  });

  it('ResNet50: tf.keras\' names (conv1_conv, conv2_block1_1_conv, ...) map completely onto our ResNet50 (Keras 2.2 names), dilated and not', () => {
    const file = writeModelJson(path.join(tmp, 'r50'), kerasResNet50Weights());
    for (const o of [RESNET50, { ...RESNET50, dilations: [1, 1, 1, 1], headChannels: 0 }]) {
      const enc = dilatedResNet('f', 1, 3, o);
      try {
        const r = initFromKeras(enc.store, file, { allowUnmatched: false });
        assert.deepEqual([r.unmatchedModel, r.unusedFile], [[], []]);
        assert.equal(r.loaded, kerasResNet50Weights().length);
        assert.equal(enc.store.trainable.get('f/res4c_branch2b/w')!.dataSync()[0], 0.25);
        assert.equal(enc.store.buffers.get('f/bn5a_branch1/var')!.dataSync()[0], 0.25);
      } finally { enc.store.dispose(); }
    }
  });
});
