import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { readManifest } from '../../core/bundle';
import { convert } from '../../convert/convert';
import { buildConfig, type ConfigPatch } from '../../train/config';
import { writeSynth } from '../../train/data/synth';
import { I2IModel } from '../../train/i2i';
import { ENCODER_NAMES, encoderEntry } from '../../train/models/registry';
import { train } from '../../train/trainer';
import { randomiseStatistics, tmpDir } from '../helpers';
import { assertParity, tfliteVsTfjs } from './parity';

describe('convert: TFLite files judged by the real TFLite runtime (tfjs-tflite-node)', function () {
  this.timeout(300000);
  // Besides every registry entry below: a larger, non-square input without input normalisation.
  const cases: [string, string, [number, number], ConfigPatch][] = [
    ['synth-drive', 'densenet-small', [64, 96], {}],
  ];
  for (const [task, encoder, hw, extra] of cases) {
    it(`${encoder}: float32 TFLite equals tfjs within 1e-4 of the output range`, () => {
      const cfg = buildConfig(task, 'source-only', { ...extra, model: { ...extra.model, encoder: encoder as 'lenet' } });
      const m = new I2IModel(cfg, task === 'synth-drive' ? 19 : 10);
      try {
        randomiseStatistics(m);  // so that folding batch norm is exercised
        assertParity(tfliteVsTfjs(m, hw));
      } finally { m.dispose(); }
    });
  }

  // Every encoder of the registry, at a tiny input, with its ImageNet input normalisation where it
  // has one ('caffe' exercises the BGR reversal folded into conv1). ImageNet classifiers run as
  // Office's (RGB, h after global average pooling, here over a 2x2 map).
  for (const encoder of ENCODER_NAMES) {
    const entry = encoderEntry(encoder)!;
    for (const kind of entry.kinds) {
      const norm = entry.pretrainedNorm ?? 'none';
      it(`registry: ${encoder} (${kind}, inputNorm ${norm}) exports, and its TFLite file equals the training model in eval mode`, () => {
        const seg = kind === 'segment', office = !seg && entry.pretrainedNorm !== undefined;
        const cfg = buildConfig(seg ? 'synth-drive' : office ? 'office-amazon-webcam' : 'mnist-optdigits', 'source-only', { model: { encoder, inputNorm: norm }, ...(office ? { data: { imageSize: 64 } } : {}) });
        const m = new I2IModel(cfg, seg ? 19 : office ? 31 : 10);
        try {
          randomiseStatistics(m);
          assertParity(tfliteVsTfjs(m, seg ? [32, 48] : office ? [64, 64] : [32, 32]));
        } finally { m.dispose(); }
      });
    }
  }

  it("ADDA: the untied target encoder f_t is what the graph exports", () => {
    const cfg = buildConfig('mnist-optdigits', 'adda', {});
    const m = new I2IModel(cfg, 10);
    try {
      m.untie();
      randomiseStatistics(m);
      const w = m.fT!.store.trainable.get('f_t/conv1/w')!;
      tf.tidy(() => w.assign(tf.neg(w)));  // f_t differs from f
      assertParity(tfliteVsTfjs(m, [32, 32]));
    } finally { m.dispose(); }
  });

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
    // Without int8 the calibration frames still calibrate every file's drift score.
    assert.deepEqual(m.calibration, { source: tgt, frames: 4 });
    for (const f of m.models) assert.ok(f.features && f.drift?.frames === 4 && f.drift.mean.length > 0 && f.drift.q95 > f.drift.median, `${f.file} drift ${JSON.stringify(f.drift)?.slice(0, 80)}`);
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
    // Failures below: a fresh --out each time (an existing one is refused before anything else).
    const fresh = path.join(root, 'never-written');
    await assert.rejects(convert({ checkpoint: run, out: fresh, input: [60, 128], progress: () => undefined }), /not a multiple of 8/);
    await assert.rejects(convert({ checkpoint: run, out: fresh, precisions: ['int8'], progress: () => undefined }), /int8 needs --calibrate/);
    await assert.rejects(convert({ checkpoint: run, out: fresh, precisions: ['fp32', 'int4'], progress: () => undefined }), /Unknown precision int4/);
    await assert.rejects(convert({ checkpoint: path.join(root, 'nowhere'), out: fresh, progress: () => undefined }), /checkpoint/i);
    await assert.rejects(convert({ checkpoint: run, out: fresh, calibrate: path.join(root, 'source', 'labels'), progress: () => undefined }), /holds no .png\/.jpg frames/);
    await assert.rejects(convert({ checkpoint: run, out: fresh, precisions: ['fp32', 'int8'], calibrate: tgt, eval: path.join(root, 'source'), progress: () => undefined }), /Cityscapes images not found/);
    // A checkpoint missing a tensor of f is named (the model is restored before anything is exported).
    const broken = tmpDir();
    fs.cpSync(run, broken, { recursive: true });
    const metaFile = path.join(broken, 'checkpoint', 'checkpoint.json');
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'));
    meta.tensors = meta.tensors.filter((t: { name: string }) => t.name !== 'var:f/conv1/conv/w');
    fs.writeFileSync(metaFile, JSON.stringify(meta));
    await assert.rejects(convert({ checkpoint: broken, out: fresh, progress: () => undefined }), /has no tensor f\/conv1\/conv\/w/);
    assert.ok(!fs.existsSync(fresh), 'a failed convert writes no --out');
    assert.equal(tf.memory().numTensors, before, 'a failed convert releases the checkpoint');
  });
});
