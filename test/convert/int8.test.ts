import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { ffmpegPath } from '../../core/ffmpeg';
import { readManifest } from '../../core/bundle';
import { convert } from '../../convert/convert';
import { listImages, loadFrames } from '../../convert/frames';
import { inferenceGraph, type Graph } from '../../convert/graph';
import { affineInt8, correctBiases, equalise, int8Params, measureRanges, quantizeGraph, sharedGroups } from '../../convert/quantize';
import { loadTflite } from '../../runtime/tflite';
import { upsampleArgmax } from '../../runtime/upsample-labels';
import { argmaxLabels } from '../../runtime/image';
import { quantizeSymmetric, writeTflite } from '../../convert/tflite';
import { buildConfig, type ConfigPatch } from '../../train/config';
import { writeSynth } from '../../train/data/synth';
import { I2IModel } from '../../train/i2i';
import { train } from '../../train/trainer';
import { OPTDIGITS, randomiseStatistics, tmpDir } from '../helpers';

/** A random-weight graph with non-trivial batch-norm statistics, and uniform frames in [-1, 1]. */
function randomGraph(task: string, encoder: string, hw: [number, number], extra: ConfigPatch = {}): { g: Graph; frames: Float32Array[] } {
  const cfg = buildConfig(task, 'source-only', { ...extra, model: { ...extra.model, encoder: encoder as 'lenet' } });
  const m = new I2IModel(cfg, task === 'synth-drive' ? 19 : 10);
  try {
    randomiseStatistics(m);
    const g = inferenceGraph(m, hw, 'model');
    const n = hw[0] * hw[1] * cfg.data.channels;
    let s = 7;
    const rand = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
    return { g, frames: Array.from({ length: 4 }, () => Float32Array.from({ length: n }, rand)) };
  } finally { m.dispose(); }
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, r = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); r = Math.max(r, Math.abs(a[i])); }
  return d / r;
}

describe('convert: full-integer int8 TFLite', function () {
  this.timeout(300000);

  it('weights: symmetric int8 per channel, scale max|w|/127, error at most half a step', () => {
    const w = Float32Array.from([0.5, -1.27, 0.011, 0, 0, 0, 2.54, -0.3]);
    // Two channels interleaved (channel = i % 2): ch0 {0.5, 0.011, 0, 2.54}, ch1 {-1.27, 0, 0, -0.3}.
    const { q, scale } = quantizeSymmetric(w, 2, (i) => i % 2);
    assert.deepEqual(scale.map((s) => +s.toFixed(6)), [0.02, 0.01]);
    assert.deepEqual([...q], [25, -127, 1, 0, 0, 0, 127, -30]);
    w.forEach((v, i) => assert.ok(Math.abs(q[i] * scale[i % 2] - v) <= scale[i % 2] / 2 + 1e-9));
    const zero = quantizeSymmetric(new Float32Array(3), 1, () => 0);
    assert.deepEqual(zero.scale, [1], 'an all-zero channel keeps a valid scale');
  });

  it('activations: affine int8 parameters hold 0 exactly and span the range', () => {
    const z = affineInt8(0, 2.55);
    assert.ok(Math.abs(z.scale - 0.01) < 1e-12 && z.zeroPoint === -128, JSON.stringify(z));
    const a = affineInt8(-1, 1);
    assert.ok(Math.abs(a.scale - 2 / 255) < 1e-12 && a.zeroPoint === 0, JSON.stringify(a));
    const b = affineInt8(0.5, 3);  // widened to [0, 3]: zero padding and ReLU need an exact 0
    assert.ok(Math.abs(b.scale - 3 / 255) < 1e-12 && b.zeroPoint === -128);
    const c = affineInt8(-2, -1);  // widened to [-2, 0]
    assert.ok(Math.abs(c.scale - 2 / 255) < 1e-12 && c.zeroPoint === 127);
  });

  it('shared parameters wherever int8 kernels do not rescale; the input keeps [-1, 1]', () => {
    const { g, frames } = randomGraph('synth-drive', 'densenet-small', [32, 64]);
    const group = sharedGroups(g);
    const q = int8Params(g, measureRanges(g, frames));
    let concats = 0;
    for (const n of g.nodes) {
      const ins = n.op === 'concat' ? n.inputs : n.op === 'pad' || n.op === 'avgpool' || n.op === 'maxpool' || n.op === 'resize' ? [n.input] : [];
      for (const i of ins) { assert.equal(group[i], group[n.output]); assert.deepEqual(q[i], q[n.output], `${n.op} t${i} -> t${n.output}`); }
      if (n.op === 'concat') concats++;
    }
    assert.ok(concats >= 4);
    assert.deepEqual(q[g.input], affineInt8(-1, 1));
  });

  it('channel equalisation is exact in float and levels every channel of a concatenation group', () => {
    const { g, frames } = randomGraph('synth-drive', 'densenet-small', [32, 64]);
    const before = measureRanges(g, frames);
    const eq = equalise(g, before);
    const a = loadTflite(writeTflite(g)), b = loadTflite(writeTflite(eq));
    for (const x of frames) assert.ok(relDiff(a.run(x), b.run(x)) < 1e-5);
    a.dispose(); b.dispose();
    // Within the first dense block's group, channel amplitudes were spread and are now level.
    const after = measureRanges(eq, frames);
    const block = g.nodes.find((n) => n.op === 'concat')!.output;
    const amp = (r: typeof before, t: number) => Array.from(r.max[t], (hi, c) => Math.max(hi, -r.min[t][c]));
    const spread = (v: number[]) => Math.max(...v) / Math.min(...v);
    assert.ok(spread(amp(before, block)) > 1.5, `spread before ${spread(amp(before, block))}`);
    assert.ok(spread(amp(after, block)) < 1.01, `spread after ${spread(amp(after, block))}`);
    // The original graph is untouched.
    assert.deepEqual(measureRanges(g, frames).max[block], before.max[block]);
  });

  it('bias correction removes the mean shift that int8 weight rounding causes', () => {
    const { g, frames } = randomGraph('synth-drive', 'densenet-small', [32, 64]);
    const r = measureRanges(g, frames);
    // Float graphs with the int8-rounded weights, biases as they were or corrected.
    const rounded = (h: Graph): Graph => ({ ...h, nodes: h.nodes.map((n) => {
      if (n.op !== 'conv2d') return n;
      const co = n.kernel[3], { q, scale } = quantizeSymmetric(n.weights, co, (i) => i % co);
      return { ...n, weights: Float32Array.from(q, (v, i) => v * scale[i % co]) };
    }) });
    // The first conv that reads a measured activation (not the image, nor the image zero-padded for the stem).
    const padOfInput = new Set(g.nodes.filter((n) => n.op === 'pad' && n.input === g.input).map((n) => n.output));
    const first = g.nodes.findIndex((n) => n.op === 'conv2d' && n.input !== g.input && !padOfInput.has(n.input));
    const t = g.nodes[first].output;
    const shift = (h: Graph) => { const m = measureRanges(h, frames).mean[t]; return m.reduce((a, v, c) => a + Math.abs(v - r.mean[t][c]), 0); };
    const plain = shift(rounded(g)), corrected = shift(rounded(correctBiases(g, r)));
    assert.ok(plain > 0 && corrected < plain / 3, `mean shift ${plain} -> ${corrected}`);
  });

  for (const [task, encoder, hw, extra] of [
    ['mnist-optdigits', 'lenet', [32, 32], {}],
    ['synth-drive', 'densenet-small', [32, 64], {}],
    ['synth-drive', 'resnet34', [32, 48], { model: { init: 'x.json', inputNorm: 'caffe' } }],
  ] as [string, string, [number, number], ConfigPatch][]) {
    it(`${encoder}: the int8 file runs in the TFLite runtime, int8 tensors throughout, close to float32`, () => {
      const { g, frames } = randomGraph(task, encoder, hw, extra);
      const { graph, params } = quantizeGraph(g, frames);
      const bytes = writeTflite(graph, { int8: params });
      const f = loadTflite(writeTflite(g)), q = loadTflite(bytes);
      try {
        assert.deepEqual(q.outputShape, f.outputShape);
        // int8 weights; biases stay int32 and every per-channel tensor carries its scales and zero points.
        assert.ok(bytes.length < writeTflite(g).length / 2, `${bytes.length} bytes`);
        for (const x of frames) {
          const d = relDiff(f.run(x), q.run(x));
          assert.ok(d > 0 && d < 0.15, `int8 vs float32: ${d} of the output range`);
        }
      } finally { f.dispose(); q.dispose(); }
    });
  }

  it('i2i convert --precision fp32,int8 on a trained segmenter: >98% of target pixels agree, mIoU within 1 point; --argmax; video calibration', async () => {
    const root = tmpDir();
    const tgt = path.join(root, 'target');
    await writeSynth({ out: tgt, domain: 'target', count: 24, height: 128, width: 256, seed: 2 });
    await writeSynth({ out: tgt, domain: 'target', count: 8, height: 128, width: 256, seed: 3, split: 'val' });
    // Trained on the target's own labels (the benchmark's oracle) for a model with real decisions, fast.
    const run = path.join(root, 'run');
    await train({ task: 'synth-drive', method: 'source-only', out: run, progress: () => undefined,
      overrides: { steps: 200, batchSize: 4, data: { imageSize: 64, source: 'cityscapes', sourceRoot: tgt, targetRoot: tgt } } });
    const before = tf.memory().numTensors;
    const calibrate = path.join(tgt, 'leftImg8bit', 'train');
    const m = await convert({ checkpoint: run, out: path.join(root, 'b'), precisions: ['fp32', 'int8'], input: [64, 128], calibrate, calibrationFrames: 16, eval: tgt, progress: () => undefined });
    assert.equal(tf.memory().numTensors, before, 'convert leaves tensors behind');
    // By default the models end at the encoder's output stride; the runtime upsamples.
    assert.deepEqual(m.models.map((f) => `${f.file} ${f.precision} ${f.output} ${f.outputStride}`), ['model.tflite fp32 logits 8', 'model.int8.tflite int8 logits 8', 'tfjs-fp32/model.json fp32 logits 8']);
    assert.deepEqual(m.calibration, { source: calibrate, frames: 16 });
    assert.equal(m.evaluation?.frames, 8);
    const [f32, i8] = m.parity;
    assert.equal(m.evaluation?.metric, 'mIoU');
    assert.ok(f32.score! > 0.1, `fp32 mIoU ${f32.score}: the model must have learnt something for agreement to mean anything`);
    assert.ok(i8.labelAgreement > 0.98, `int8 label agreement ${i8.labelAgreement}`);
    assert.ok(Math.abs(i8.scoreDropVsFp32!) < 0.01, `int8 mIoU drop ${i8.scoreDropVsFp32}`);
    assert.equal(f32.scoreDropVsFp32, 0);
    assert.ok(i8.bytes < f32.bytes / 2);
    assert.deepEqual(readManifest(path.join(root, 'b')).parity, m.parity);

    // --argmax (implies --upsample model): uint8 label maps at the input size, exactly the arg-max
    // of the logits of the same graph without it (--upsample model: resized inside the model).
    assert.equal(m.format, 'i2i-bundle/2', 'a bundle that ends at the output stride says so in its format');
    const am = await convert({ checkpoint: run, out: path.join(root, 'am'), precisions: ['fp32', 'int8'], input: [64, 128], calibrate, calibrationFrames: 16, eval: tgt, argmax: true, progress: () => undefined });
    const mm = await convert({ checkpoint: run, out: path.join(root, 'mm'), precisions: ['fp32', 'int8'], input: [64, 128], calibrate, calibrationFrames: 16, eval: tgt, upsample: 'model', progress: () => undefined });
    assert.ok(am.models.every((f) => f.output === 'labels' && f.outputStride === undefined) && am.format === 'i2i-bundle/1');
    assert.ok(mm.models.every((f) => f.output === 'logits' && f.outputStride === undefined) && mm.format === 'i2i-bundle/1');
    const [x] = await loadFrames(listImages(path.join(tgt, 'leftImg8bit', 'val'), 1), [64, 128], 3);
    for (const [file, least] of [['model.tflite', 0.999], ['model.int8.tflite', 0.97]] as const) {
      const strided = loadTflite(fs.readFileSync(path.join(root, 'b', file))), full = loadTflite(fs.readFileSync(path.join(root, 'mm', file))), labels = loadTflite(fs.readFileSync(path.join(root, 'am', file)));
      const ls = strided.run(x), lf = full.run(x), y = labels.run(x);
      strided.dispose(); full.dispose(); labels.dispose();
      assert.equal(ls.length, 8 * 16 * 19, `${file}: logits at 1/8 of the input`);
      assert.equal(lf.length, 64 * 128 * 19, `${file}: logits at the input`);
      assert.ok(y instanceof Uint8Array && y.length === 64 * 128, file);
      assert.deepEqual(y, argmaxLabels(lf, 19), `${file}: the arg-max inside the model`);
      // The runtime's upsampling of the stride-8 logits against the resize inside the model: equal
      // up to float rounding at near ties in float32; int8 files also requantise the resized logits.
      const up = upsampleArgmax(ls, 8, 16, 19, 64, 128);
      let same = 0;
      for (let p = 0; p < y.length; p++) same += up[p] === y[p] ? 1 : 0;
      assert.ok(same >= least * y.length, `${file}: ${same} of ${y.length} pixels agree between the resize inside the model and the runtime's upsampling`);
    }
    assert.deepEqual(am.parity.map((p) => p.labelAgreement), mm.parity.map((p) => p.labelAgreement));
    m.parity.forEach((p, i) => assert.ok(Math.abs(p.labelAgreement - mm.parity[i].labelAgreement) < 0.02, `${p.format} ${p.precision}: agreement ${p.labelAgreement} vs ${mm.parity[i].labelAgreement}`));
    await assert.rejects(convert({ checkpoint: run, out: path.join(root, 'bad'), precisions: ['fp32'], input: [64, 128], argmax: true, upsample: 'runtime', progress: () => undefined }), /--argmax with --upsample runtime/);

    // Calibration from a video file (frames sampled through ffmpeg).
    const video = path.join(root, 'drive.mp4');
    execFileSync(ffmpegPath(), ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=128x64:rate=10:duration=3', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', video]);
    const v = await convert({ checkpoint: run, out: path.join(root, 'v'), precisions: ['int8'], input: [64, 128], calibrate: video, calibrationFrames: 4, progress: () => undefined });
    assert.deepEqual(v.calibration, { source: video, frames: 4 });
    await assert.rejects(convert({ checkpoint: run, out: path.join(root, 'v2'), precisions: ['int8'], calibrate: path.join(root, 'none.mp4'), progress: () => undefined }), /Calibration data not found/);
  });

  it('a digits classifier: int8 calibrated on the target dataset, accuracy per precision, arg-max inside', async () => {
    const root = tmpDir();
    const run = path.join(root, 'run');
    await train({ task: 'mnist-optdigits', method: 'source-only', out: run, progress: () => undefined,
      overrides: { steps: 150, batchSize: 32, data: { targetRoot: OPTDIGITS }, checkpointEvery: 1000 } });
    const m = await convert({ checkpoint: run, out: path.join(root, 'b'), precisions: ['fp32', 'int8'], calibrate: OPTDIGITS, eval: OPTDIGITS, evalFrames: 600, progress: () => undefined });
    assert.deepEqual({ metric: m.evaluation?.metric, split: m.evaluation?.split, frames: m.evaluation?.frames }, { metric: 'accuracy', split: 'train', frames: 600 });
    const [f32, i8] = m.parity;
    assert.ok(Math.abs(f32.score! - m.evaluation!.tfjsScore) < 1e-9 && f32.score! > 0.3, `fp32 accuracy ${f32.score}`);
    assert.ok(i8.labelAgreement > 0.98 && Math.abs(i8.scoreDropVsFp32!) < 0.01, `int8 agreement ${i8.labelAgreement}, drop ${i8.scoreDropVsFp32}`);
    const am = await convert({ checkpoint: run, out: path.join(root, 'am'), precisions: ['int8'], calibrate: OPTDIGITS, eval: OPTDIGITS, evalFrames: 600, argmax: true, progress: () => undefined });
    assert.equal(am.parity[0].labelAgreement, i8.labelAgreement);
    const labels = loadTflite(fs.readFileSync(path.join(root, 'am', 'model.int8.tflite')));
    assert.deepEqual(labels.outputShape, [1]);
    labels.dispose();
  });
});
