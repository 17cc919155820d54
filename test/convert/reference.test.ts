import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { inferenceGraph, rawInferenceGraph } from '../../convert/graph';
import { measureRanges } from '../../convert/quantize';
import { graphReference } from '../../convert/reference';
import { buildConfig } from '../../train/config';
import { I2IModel } from '../../train/i2i';
import { randomiseStatistics } from '../helpers';

/** Largest |a - b| over the largest |a|. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0, r = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i] - b[i])); r = Math.max(r, Math.abs(a[i])); }
  assert.ok(r > 0, 'the output is all zeros');
  return d / r;
}

describe("convert: the parity reference is the training model's inference function, node by node", function () {
  this.timeout(120000);
  // The encoders convert meets at full size (DenseNet's pre-activation and dilated blocks,
  // ResNet's 'caffe' BGR reversal and residual adds), a classifier's dense head.
  const cases: [string, string, [number, number], string][] = [
    ['synth-drive', 'densenet-small', [32, 48], 'torch'],
    ['synth-drive', 'resnet34', [32, 48], 'caffe'],
    ['mnist-optdigits', 'lenet', [32, 32], 'none'],
  ];
  for (const [task, encoder, hw, norm] of cases) {
    it(`${encoder}: equals model.predict within 1e-5 of the output range, and releases every tensor`, () => {
      const cfg = buildConfig(task, 'source-only', { model: { encoder: encoder as 'lenet', inputNorm: norm as 'none' } });
      const seg = cfg.kind === 'segment';
      const m = new I2IModel(cfg, seg ? 19 : 10);
      const x = tf.randomUniform([1, hw[0], hw[1], cfg.data.channels], -1, 1, 'float32', 5) as tf.Tensor4D;
      try {
        randomiseStatistics(m);  // batch norm with non-trivial running statistics
        const want = tf.tidy(() => m.predict(x, 'target', seg ? hw : undefined).dataSync());
        const frame = x.dataSync() as Float32Array;
        const before = tf.memory().numTensors;
        const ref = graphReference(rawInferenceGraph(m, hw, 'model'));
        const got = ref.run(frame);
        ref.run(frame);  // a second frame through the same constants
        ref.dispose();
        assert.equal(tf.memory().numTensors, before, 'the reference leaves tensors behind');
        assert.ok(relDiff(want, got) < 1e-5, `reference vs predict: ${relDiff(want, got)}`);
        // The folded graph (what the files are written from) computes the same function.
        const folded = graphReference(inferenceGraph(m, hw, 'model'));
        try { assert.ok(relDiff(want, folded.run(frame)) < 1e-4); } finally { folded.dispose(); }
      } finally { m.dispose(); x.dispose(); }
    });
  }

  it('int8 calibration node by node in tfjs (large inputs) measures the ranges TFLite measures', () => {
    const m = new I2IModel(buildConfig('synth-drive', 'source-only', { model: { encoder: 'densenet-small' } }), 19);
    let g: ReturnType<typeof inferenceGraph>;
    try { randomiseStatistics(m); g = inferenceGraph(m, [32, 64], 'model'); } finally { m.dispose(); }
    let s = 11;
    const frames = [0, 1].map(() => Float32Array.from({ length: 32 * 64 * 3 }, () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1));
    const a = measureRanges(g, frames, 1, 'tflite'), b = measureRanges(g, frames, 1, 'tfjs');
    g.shapes.forEach((_, t) => {
      const amp = Math.max(...a.max[t].map(Math.abs), ...a.min[t].map(Math.abs), 1e-6);
      for (const k of ['min', 'max', 'mean'] as const) a[k][t].forEach((v, c) => assert.ok(Math.abs(v - b[k][t][c]) <= 1e-5 * amp, `t${t} ${k}[${c}]: ${v} vs ${b[k][t][c]}`));
    });
  });
});
