import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as tf from '../../core/tf';
import { readManifest, type Manifest } from '../../core/bundle';
import { auroc, calibrateDrift, driftDistance, driftScore } from '../../core/drift';
import { convert } from '../../convert/convert';
import { writeSynth } from '../../train/data/synth';
import { train } from '../../train/trainer';
import { openBundle, outputLabels, selectModel } from '../../runtime/bundle';
import { listImages } from '../../convert/frames';
import { tmpDir } from '../helpers';
import { pixelsToSigned } from '../../core/pixels';
import { halves, makeBundle, ROAD, SKY } from '../serve/fixture';

const file = (format: 'tflite' | 'tfjs-graph', precision: 'fp32' | 'int8' | 'fp16' | 'uint8') =>
  ({ file: `${format}-${precision}`, format, precision, bytes: 1, sha256: '0'.repeat(64), output: 'logits' as const });
const row = (format: string, precision: string, latencyMs: number, extra: object = {}) => ({ format, precision, latencyMs, bytes: 1, threads: 1, labelAgreement: 1, frames: 1, ...extra });

describe('runtime: bundles -> inference (model choice, verification, TFLite and tfjs, drift)', function () {
  this.timeout(300000);

  it('selectModel: the fastest file within 1 point of float32; explicit runtime/precision narrow it; unknown ones are named', () => {
    const m = { models: [file('tflite', 'fp32'), file('tflite', 'int8'), file('tfjs-graph', 'fp32'), file('tfjs-graph', 'uint8')],
      parity: [row('tflite', 'fp32', 10, { scoreDropVsFp32: 0 }), row('tflite', 'int8', 4, { scoreDropVsFp32: 0.008 }), row('tfjs-graph', 'fp32', 30, { scoreDropVsFp32: 0 }), row('tfjs-graph', 'uint8', 3, { scoreDropVsFp32: 0.05 })] } as unknown as Manifest;
    // uint8 is fastest but lost 5 points; int8 lost 0.8: int8.
    assert.equal(selectModel(m).file, 'tflite-int8');
    assert.equal(selectModel(m, { runtime: 'tfjs' }).file, 'tfjs-graph-fp32');
    assert.equal(selectModel(m, { precision: 'fp32' }).file, 'tflite-fp32');
    assert.equal(selectModel(m, { runtime: 'tfjs', precision: 'uint8' }).file, 'tfjs-graph-uint8', 'asked for explicitly, it is what runs');
    m.parity[1].scoreDropVsFp32 = 0.02;
    assert.equal(selectModel(m).file, 'tflite-fp32');
    // Without --eval scores, label agreement with the training model decides (>= 99%).
    m.parity.forEach((p) => { delete p.scoreDropVsFp32; });
    m.parity[1].labelAgreement = 0.995; m.parity[3].labelAgreement = 0.97;
    assert.equal(selectModel(m).file, 'tflite-int8');
    assert.throws(() => selectModel(m, { runtime: 'tfjs', precision: 'int8' }), /no tfjs int8 model \(it has: tflite\/fp32, tflite\/int8, tfjs\/fp32, tfjs\/uint8\)/);
  });

  it('TFLite and tfjs files of one bundle give the same labels and drift; a changed file is refused by name; tfjs holds no tensors after runs', async () => {
    const dir = path.join(tmpDir(), 'b');
    await makeBundle(dir, { tfjs: true });
    const lite = await openBundle(dir, { runtime: 'tflite' });
    const js = await openBundle(dir, { runtime: 'tfjs' });
    try {
      assert.equal(lite.maxBatch, 1);
      assert.equal(js.maxBatch, Infinity);
      const f = halves(32, 64);
      const [a] = lite.segment([f]);
      const [b, c] = js.segment([f, f]);
      assert.equal(a.labels[0], ROAD); assert.equal(a.labels[63], SKY);
      assert.deepEqual(a.labels, b.labels); assert.deepEqual(b.labels, c.labels);
      assert.ok(Math.abs(a.drift! - b.drift!) < 1e-3 * Math.max(1, a.drift!), `${a.drift} vs ${b.drift}`);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 10; i++) js.segment([f, f, f]);
      assert.equal(tf.memory().numTensors, before, 'tfjs runs leave no tensor');
      assert.throws(() => lite.segment([new Uint8Array(5)]), /takes 32x64x3/);
    } finally { lite.dispose(); js.dispose(); }
    const bytes = fs.readFileSync(path.join(dir, 'model.tflite'));
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(path.join(dir, 'model.tflite'), bytes);
    await assert.rejects(openBundle(dir, { runtime: 'tflite' }), /model\.tflite does not match its manifest \(sha256/);
    fs.rmSync(path.join(dir, 'model.tflite'));
    await assert.rejects(openBundle(dir, { runtime: 'tflite' }), /model\.tflite is missing/);
  });

  it('drift maths: z-score RMS distance, 0 at the calibration median, 1 at its 95th percentile', () => {
    assert.equal(driftDistance([3, 1], [1, 1], [2, 1]), Math.sqrt((1 + 0) / 2));
    const feats = Array.from({ length: 21 }, (_, i) => [i, 10]);  // channel 1 constant: gets the mean std
    const cal = calibrateDrift(feats, 'test');
    assert.ok(Math.abs(cal.mean[0] - 10) < 1e-12);
    assert.equal(cal.std[1], cal.std[0], 'a constant channel takes the live channels\' spread');
    assert.equal(driftScore([cal.mean[0], 10], cal), 0);
    // The median and q95 are of held-out distances: each frame against the mean and spread of the other 20
    // (channel 1, constant, takes channel 0's spread in each of them).
    const d = feats.map((f, i) => {
      const rest = feats.filter((_, j) => j !== i);
      const m = rest.reduce((a, g) => a + g[0], 0) / rest.length;
      const sd = Math.sqrt(rest.reduce((a, g) => a + (g[0] - m) ** 2, 0) / (rest.length - 1));
      return driftDistance(f, [m, 10], [sd, sd]);
    }).sort((x, y) => x - y);
    assert.ok(Math.abs(cal.median - d[10]) < 1e-12);
    assert.ok(Math.abs(cal.q95 - d[19]) < 1e-12, 'q95 of 21 values is the 20th');
    const far = driftDistance(feats[20], cal.mean, cal.std);
    assert.ok(Math.abs(driftScore(feats[20], cal) - (far - d[10]) / (d[19] - d[10])) < 1e-12);
    assert.equal(auroc([0, 1], [2, 3]), 1); assert.equal(auroc([0, 2], [1, 3]), 0.75); assert.equal(auroc([1], [1]), 0.5);
  });

  it('drift on the synthetic shift: a trained segmenter\'s bundle scores held-out target frames low and source frames high (AUROC >= 0.9)', async () => {
    const root = tmpDir();
    const src = path.join(root, 'source'), tgt = path.join(root, 'target');
    await writeSynth({ out: src, domain: 'source', count: 12, height: 64, width: 128, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 12, height: 64, width: 128, seed: 2 });
    await writeSynth({ out: tgt, domain: 'target', count: 10, height: 64, width: 128, seed: 3, split: 'val' });
    const run = path.join(root, 'run');
    await train({ task: 'synth-drive', method: 'full', out: run, progress: () => undefined,
      overrides: { steps: 6, batchSize: 2, model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8] }, data: { imageSize: 32, scale: 0.5, sourceRoot: src, targetRoot: tgt } } });
    const out = path.join(root, 'bundle');
    await convert({ checkpoint: run, out, input: [64, 128], precisions: ['fp32', 'int8'], calibrate: path.join(tgt, 'leftImg8bit', 'train'), calibrationFrames: 12, checkFrames: 2, progress: () => undefined });
    assert.ok(readManifest(out).models.every((f) => f.drift?.frames === 12));
    const read = async (files: string[]) => Promise.all(files.map((f) => sharp(f).removeAlpha().resize(128, 64, { fit: 'fill', kernel: 'linear' }).raw().toBuffer()));
    const heldOut = await read(listImages(path.join(tgt, 'leftImg8bit', 'val'), 10));
    const source = await read(listImages(path.join(src, 'images'), 10));
    // int8's pooled features (a global average pool in int8, dequantised) follow float32's.
    const fx = Float32Array.from(heldOut[0], (v) => v / 127.5 - 1);
    const feats = await Promise.all((['fp32', 'int8'] as const).map(async (precision) => {
      const b = await openBundle(out, { runtime: 'tflite', precision });
      try { return b.run([fx])[0].features!; } finally { b.dispose(); }
    }));
    const range = Math.max(...feats[0]) - Math.min(...feats[0]);
    assert.ok(feats[0].every((v, i) => Math.abs(v - feats[1][i]) < 0.05 * range), 'int8 features within 5% of the float range');
    for (const precision of ['fp32', 'int8'] as const) {
      const b = await openBundle(out, { runtime: 'tflite', precision });
      try {
        const t = b.segment(heldOut).map((p) => p.drift!), s = b.segment(source).map((p) => p.drift!);
        // The serving path (segment: pixels into the input tensor, labels read in place) is the
        // parity path (run: what convert measures) plus arg-max and drift, value for value.
        const [served] = b.segment([heldOut[0]]);
        const [raw] = b.run([pixelsToSigned(heldOut[0])]);
        assert.deepEqual(served.labels, outputLabels(b.spec, b.file, raw.output));
        assert.equal(raw.output.length, 8 * 16 * 19, 'logits at the output stride (the default --upsample runtime)');
        assert.equal(served.drift, driftScore(raw.features!, b.file.drift!));
        const a = auroc(t, s);
        const med = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1];
        assert.ok(med(t) < 1 && med(s) > 1, `${precision}: held-out target frames score below 1 (typical), source frames above: ${med(t)} / ${med(s)}`);
        assert.ok(a >= 0.9, `${precision}: AUROC ${a.toFixed(3)} (target ${t.map((v) => v.toFixed(2))}, source ${s.map((v) => v.toFixed(2))})`);
      } finally { b.dispose(); }
    }
  });
});
