import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { readManifest } from '../../core/bundle';
import { convert } from '../../convert/convert';
import { inferenceGraph, modelWeights, type Weights } from '../../convert/graph';
import { loadTflite } from '../../convert/runtime';
import { writeTflite } from '../../convert/tflite';
import { buildConfig, type ConfigPatch } from '../../train/config';
import { writeSynth } from '../../train/data/synth';
import { I2IModel } from '../../train/i2i';
import { train } from '../../train/trainer';
import { randomiseStatistics, tmpDir } from '../helpers';

describe('convert: TFLite files judged by the real TFLite runtime (tfjs-tflite-node)', function () {
  this.timeout(300000);
  const cases: [string, string, [number, number], ConfigPatch][] = [
    ['mnist-optdigits', 'lenet', [32, 32], {}],
    ['synth-drive', 'densenet-small', [64, 96], {}],
    ['synth-drive', 'resnet34', [32, 48], { model: { init: 'x.json', inputNorm: 'caffe' } }],  // BGR folded into conv1
  ];
  for (const [task, encoder, hw, extra] of cases) {
    it(`${encoder}: float32 TFLite equals tfjs within 1e-4 of the output range`, () => {
      const cfg = buildConfig(task, 'source-only', { ...extra, model: { ...extra.model, encoder: encoder as 'lenet' } });
      const m = new I2IModel(cfg, task === 'synth-drive' ? 19 : 10);
      try {
        randomiseStatistics(m);  // so that folding batch norm is exercised
        const bytes = writeTflite(inferenceGraph(cfg, modelWeights(m), hw));
        assert.equal(new TextDecoder().decode(bytes.slice(4, 8)), 'TFL3');
        const t = loadTflite(bytes);
        const x = tf.randomUniform([1, hw[0], hw[1], cfg.data.channels], -1, 1, 'float32', 3) as tf.Tensor4D;
        const ref = tf.tidy(() => m.predict(x, 'target', task === 'synth-drive' ? hw : undefined).dataSync());
        const got = t.run(x.dataSync() as Float32Array);
        t.dispose(); x.dispose();
        assert.equal(got.length, ref.length);
        let diff = 0, range = 0;
        for (let i = 0; i < ref.length; i++) { diff = Math.max(diff, Math.abs(ref[i] - got[i])); range = Math.max(range, Math.abs(ref[i])); }
        assert.ok(range > 0 && diff / range < 1e-4, `max |tflite - tfjs| = ${diff} of range ${range}`);
      } finally { m.dispose(); }
    });
  }

  it('i2i convert: a trained segmenter -> bundle with manifest, sha256 and parity; errors name the fix', async () => {
    const root = tmpDir();
    const src = path.join(root, 'source'), tgt = path.join(root, 'target');
    await writeSynth({ out: src, domain: 'source', count: 4, height: 64, width: 128, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 4, height: 64, width: 128, seed: 2 });
    const run = path.join(root, 'run');
    await train({ task: 'synth-drive', method: 'full', out: run, progress: () => undefined,
      overrides: { steps: 2, batchSize: 2, model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8] }, data: { imageSize: 32, scale: 0.5, sourceRoot: src, targetRoot: tgt } } });
    const out = path.join(root, 'bundle');
    const before = tf.memory().numTensors;
    const m = await convert({ checkpoint: run, out, input: [64, 128], calibrate: tgt, checkFrames: 3, progress: () => undefined });
    assert.equal(tf.memory().numTensors, before, 'convert leaves tensors behind');
    assert.deepEqual(m.check, { source: tgt, frames: 3 });
    assert.equal(m.calibration, undefined, 'no int8 file, nothing calibrated');
    const again = readManifest(out);
    assert.deepEqual(again.input, { height: 64, width: 128, channels: 3, layout: 'NHWC', normalisation: 'x/127.5-1' });
    assert.equal(again.classes.length, 19);
    assert.deepEqual(again.classes[0], { id: 0, name: 'road', color: [128, 64, 128] });
    assert.deepEqual(m.models.map((f) => `${f.format}/${f.precision}`), ['tflite/fp32', 'tfjs-graph/fp32', 'tfjs-graph/fp16', 'tfjs-graph/uint8']);
    for (const f of m.models) {
      assert.equal(createHash('sha256').update(fs.readFileSync(path.join(out, f.file))).digest('hex'), f.sha256, f.file);
      if (f.weights) assert.equal(createHash('sha256').update(fs.readFileSync(path.join(out, f.weights.file))).digest('hex'), f.weights.sha256);
    }
    const [tfl, fp32, fp16, u8] = m.parity;
    assert.ok(tfl.maxRelDiffVsTfjs! < 1e-4 && fp32.maxRelDiffVsTfjs! < 1e-5 && tfl.latencyMs > 0);
    assert.equal(tfl.labelAgreement, 1); assert.equal(fp32.labelAgreement, 1);
    assert.ok(fp16.maxRelDiffVsTfjs! < 5e-3 && fp16.labelAgreement > 0.98, `fp16 ${fp16.maxRelDiffVsTfjs} ${fp16.labelAgreement}`);
    assert.ok(u8.maxRelDiffVsTfjs! < 0.1 && u8.bytes < fp16.bytes && fp16.bytes < fp32.bytes, `uint8 ${u8.maxRelDiffVsTfjs}`);
    await assert.rejects(convert({ checkpoint: run, out, input: [60, 128], progress: () => undefined }), /not a multiple of 8/);
    await assert.rejects(convert({ checkpoint: run, out, precisions: ['int8'], progress: () => undefined }), /int8 needs --calibrate/);
    await assert.rejects(convert({ checkpoint: run, out, precisions: ['fp32', 'int4'], progress: () => undefined }), /Unknown precision int4/);
    await assert.rejects(convert({ checkpoint: path.join(root, 'nowhere'), out, progress: () => undefined }), /checkpoint/i);
    await assert.rejects(convert({ checkpoint: run, out, calibrate: path.join(root, 'source', 'labels'), progress: () => undefined }), /holds no .png\/.jpg frames/);
    await assert.rejects(convert({ checkpoint: run, out, precisions: ['fp32', 'int8'], calibrate: tgt, eval: path.join(root, 'source'), progress: () => undefined }), /Cityscapes images not found/);
    assert.equal(tf.memory().numTensors, before, 'a failed convert releases the checkpoint');
    const w = new Map() as Weights;
    assert.throws(() => inferenceGraph(buildConfig('synth-drive', 'full'), w, [32, 32]), /has no f\/conv1\/conv\/w/);
  });
});
