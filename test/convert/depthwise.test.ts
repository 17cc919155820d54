import { strict as assert } from 'node:assert';
import * as flatbuffers from 'flatbuffers';
import * as tf from '../../core/tf';
import { foldGraph } from '../../convert/fold';
import { graphFlops, type Graph } from '../../convert/graph';
import { quantizeGraph } from '../../convert/quantize';
import { graphReference } from '../../convert/reference';
import { writeTfjsGraph } from '../../convert/tfjs-graph';
import { writeTflite } from '../../convert/tflite';
import { loadGraphModel, runGraph } from '../../runtime/tfjs';
import { loadTflite } from '../../runtime/tflite';
import { GraphBuilder, type RawGraph } from '../../train/models/ir';
import { mobileNetV2, MOBILENETV2, roundChannels } from '../../train/models/mobilenetv2';

const HW = 16, C = 8, CO = 12;

/** Deterministic uniform values in [lo, hi). */
function uniform(seed: number) {
  let s = seed;
  return (n: number, lo = -1, hi = 1) => Float32Array.from({ length: n }, () => lo + ((s = (s * 16807) % 2147483647) / 2147483647) * (hi - lo));
}

/**
 * 16x16x8 -> depthwise 3x3 s1 + affine + ReLU -> depthwise 3x3 s2 + ReLU -> depthwise 3x3 dilation 2
 * -> conv 1x1 8 -> 12 + affine + ReLU. A fresh copy each call (foldGraph folds in place).
 */
function tinyGraph(): RawGraph {
  const r = uniform(11);
  const g = new GraphBuilder();
  const x = g.input([1, HW, HW, C]);
  const dw = (t: number, stride: number, dilation: number) => g.depthwise2d(t, { weights: r(9 * C, -0.6, 0.6), bias: r(C, -0.2, 0.2), kernel: [3, 3, C, 1], stride, dilation, padding: 'same' });
  let t = g.relu(g.affine(dw(x, 1, 1), r(C, 0.5, 2), r(C, -0.3, 0.3)));
  t = g.relu(dw(t, 2, 1));
  t = dw(t, 1, 2);
  t = g.conv2d(t, { weights: r(C * CO, -0.5, 0.5), bias: r(CO, -0.1, 0.1), kernel: [1, 1, C, CO], stride: 1, dilation: 1, padding: 'same' });
  t = g.relu(g.affine(t, r(CO, 0.5, 2), r(CO, -0.3, 0.3)));
  return g.graph(x, t, 'depthwise-tiny');
}

/** [reversal ->] depthwise 3x3 stride 2 -> affine -> conv 1x1 8 -> 12: where a 'caffe' input's BGR reversal would meet one. */
function reversedGraph(reverse: boolean): RawGraph {
  const r = uniform(13);
  const g = new GraphBuilder();
  const x = g.input([1, HW, HW, C]);
  let t = g.depthwise2d(reverse ? g.reverseChannels(x) : x, { weights: r(9 * C), bias: r(C), kernel: [3, 3, C, 1], stride: 2, dilation: 1, padding: 'same' });
  t = g.affine(t, r(C, 0.5, 2), r(C));
  t = g.conv2d(t, { weights: r(C * CO), bias: r(CO), kernel: [1, 1, C, CO], stride: 1, dilation: 1, padding: 'same' });
  return g.graph(x, t, 'depthwise-reversed');
}

/** builtin_code -> version of a TFLite file's operator codes (schema: Model field 1, OperatorCode fields 2 and 3), read by hand. */
function opVersions(bytes: Uint8Array): Map<number, number> {
  const bb = new flatbuffers.ByteBuffer(bytes);
  const model = bb.readInt32(0);
  const field = (table: number, i: number) => bb.__offset(table, 4 + 2 * i);
  const codes = model + field(model, 1);
  const out = new Map<number, number>();
  for (let k = 0; k < bb.__vector_len(codes); k++) {
    const op = bb.__indirect(bb.__vector(codes) + 4 * k);
    const v = field(op, 2), c = field(op, 3);
    out.set(c ? bb.readInt32(op + c) : bb.readInt8(op + field(op, 0)), v ? bb.readInt32(op + v) : 1);
  }
  return out;
}
const DEPTHWISE_CONV_2D = 4, CONV_2D = 3;

const frames = (n: number, size: number) => { const r = uniform(7); return Array.from({ length: n }, () => r(size)); };

/** Largest |a - b| and largest |a|. */
function compare(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; range: number } {
  assert.equal(a.length, b.length);
  let diff = 0, range = 0;
  for (let i = 0; i < a.length; i++) { diff = Math.max(diff, Math.abs(a[i] - b[i])); range = Math.max(range, Math.abs(a[i])); }
  return { diff, range };
}

/** The IR evaluated by tfjs, node by node (convert/reference.ts). */
function evaluate(g: RawGraph | Graph, xs: Float32Array[]): Float32Array[] {
  const ref = graphReference(g);
  try { return xs.map((x) => ref.run(x)); } finally { ref.dispose(); }
}

describe('convert: depthwise convs (IR, folding, FLOPs, TFLite fp32 and int8, tfjs graph)', function () {
  this.timeout(300000);
  const xs = frames(4, HW * HW * C);

  it('the builder infers shapes (stride 2 halves, dilation keeps) and graphFlops counts k*k multiply-adds per output', () => {
    const raw = tinyGraph();
    const dws = raw.nodes.filter((n) => n.op === 'depthwise2d');
    assert.deepEqual(dws.map((n) => raw.shapes[n.output]), [[1, 16, 16, 8], [1, 8, 8, 8], [1, 8, 8, 8]]);
    const g = foldGraph(tinyGraph());
    // depthwise 2*9*(16*16*8 + 8*8*8 + 8*8*8) + 1x1 conv 2*8*(8*8*12): the affines folded away.
    assert.equal(graphFlops(g), 2 * 9 * (2048 + 512 + 512) + 2 * 8 * 768);
  });

  it('folding: the affine after a depthwise conv scales its weights and bias per channel, ReLUs fuse, the output is kept', () => {
    const raw = tinyGraph();
    const dw0 = raw.nodes[0];
    assert.ok(dw0.op === 'depthwise2d');
    const w0 = Float32Array.from(dw0.weights), b0 = Float32Array.from(dw0.bias);
    const aff = raw.nodes[1];
    assert.ok(aff.op === 'affine');
    const before = evaluate(tinyGraph(), xs);
    const g = foldGraph(raw);
    assert.deepEqual(g.nodes.map((n) => `${n.op}/${'act' in n ? n.act : '-'}`), ['depthwise2d/relu', 'depthwise2d/relu', 'depthwise2d/none', 'conv2d/relu']);
    const n0 = g.nodes[0];
    assert.ok(n0.op === 'depthwise2d');
    for (let i = 0; i < w0.length; i++) assert.ok(Math.abs(n0.weights[i] - w0[i] * aff.scale[i % C]) < 1e-7, `weight ${i}`);
    for (let c = 0; c < C; c++) assert.ok(Math.abs(n0.bias[c] - (b0[c] * aff.scale[c] + aff.shift[c])) < 1e-6, `bias ${c}`);
    const after = evaluate(g, xs);
    xs.forEach((_, i) => {
      const { diff, range } = compare(before[i], after[i]);
      assert.ok(range > 0.5 && diff / range < 1e-5, `frame ${i}: max |folded - raw| = ${diff} of range ${range}`);
    });
  });

  it('a channel reversal moves through a depthwise conv (its channels reversed) into the conv after it', () => {
    const before = evaluate(reversedGraph(true), xs);
    const g = foldGraph(reversedGraph(true));
    assert.deepEqual(g.nodes.map((n) => n.op), ['depthwise2d', 'conv2d']);
    const after = evaluate(g, xs);
    const { diff, range } = compare(before[0], after[0]);
    assert.ok(range > 0.5 && diff / range < 1e-5, `max |folded - raw| = ${diff} of range ${range}`);
    // And it differs from the graph without the reversal: the reversal is not lost.
    assert.ok(compare(evaluate(reversedGraph(false), xs)[0], after[0]).diff > 0.1);
  });

  it('float32 TFLite (DEPTHWISE_CONV_2D: stride 2, dilation 2, fused ReLU) equals the raw IR in tfjs within 1e-4 of the range', () => {
    const want = evaluate(tinyGraph(), xs);
    const bytes = writeTflite(foldGraph(tinyGraph()));
    // A dilated depthwise conv needs version 2 in float32 (TFLite's op versioning); a plain conv stays 1.
    assert.equal(opVersions(bytes).get(DEPTHWISE_CONV_2D), 2);
    assert.equal(opVersions(bytes).get(CONV_2D), 1);
    const m = loadTflite(bytes);
    try {
      assert.deepEqual(m.outputShape, [1, 8, 8, CO]);
      xs.forEach((x, i) => {
        const { diff, range } = compare(want[i], m.run(x));
        assert.ok(range > 0.5 && diff / range < 1e-4, `frame ${i}: max |tflite - tfjs| = ${diff} of range ${range}`);
      });
    } finally { m.dispose(); }
  });

  it('int8 TFLite (per-channel int8 depthwise weights) runs and stays within 0.15 of the output range of float32', () => {
    const g = foldGraph(tinyGraph());
    const { graph, params } = quantizeGraph(g, xs);
    const int8 = writeTflite(graph, { int8: params });
    // int8 DEPTHWISE_CONV_2D is version 3 (int8 per-channel), dilated or not.
    assert.equal(opVersions(int8).get(DEPTHWISE_CONV_2D), 3);
    const f = loadTflite(writeTflite(g)), q = loadTflite(int8);
    try {
      assert.deepEqual(q.outputShape, f.outputShape);
      for (const x of xs) {
        const { diff, range } = compare(f.run(x), q.run(x));
        assert.ok(range > 0.5 && diff > 0 && diff / range < 0.15, `int8 vs float32: ${diff} of range ${range}`);
      }
    } finally { f.dispose(); q.dispose(); }
  });

  it('tfjs graph model (DepthwiseConv2dNative) equals the raw IR within 1e-5 of the range', async () => {
    const want = evaluate(tinyGraph(), xs);
    const { modelJson, weights } = writeTfjsGraph(foldGraph(tinyGraph()), 'fp32');
    const model = await loadGraphModel(Buffer.from(JSON.stringify(modelJson)), Buffer.from(weights));
    try {
      const [got] = runGraph(model, xs[0], [1, HW, HW, C], ['output']);
      const { diff, range } = compare(want[0], got);
      assert.ok(range > 0.5 && diff / range < 1e-5, `max |tfjs graph - reference| = ${diff} of range ${range}`);
    } finally { model.dispose(); }
  });

  it('MobileNetV2 candidate: widths rounded to 8, stride 8 by dilation (DeepLab rates), its TFLite file equals its own forward pass', () => {
    assert.deepEqual([32, 16, 24, 96, 160, 320].map((c) => roundChannels(c * 0.5)), [16, 8, 16, 48, 80, 160]);
    const f = mobileNetV2('f', 1, 3, { ...MOBILENETV2, width: 0.5 });
    const x = tf.randomUniform([1, 32, 64, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    try {
      assert.deepEqual([f.outShape, f.outStride], [[0, 0, 160], 8]);
      for (const [k, v] of f.store.buffers) tf.tidy(() => v.assign(k.endsWith('/var') ? tf.randomUniform(v.shape, 0.5, 1.5, 'float32', 1) : tf.randomUniform(v.shape, -0.1, 0.1, 'float32', 2)));
      const g = new GraphBuilder();
      const input = g.input([1, 32, 64, 3]);
      const graph = foldGraph(g.graph(input, f.emit(g, input), 'mobilenetv2'));
      // Residual adds where a block keeps stride and width (8 | 16 x2 | 16 x3 | 32 x4 | 48 x3 | 80 x3 | 160 at width 0.5).
      const dws = graph.nodes.filter((n) => n.op === 'depthwise2d');
      // stride/dilation per block: stages 16 | 24 x2 | 32 x3 reach stride 8; then 64 x4 (its first block
      // at the old rate 1), 96 x3 at rate 2, 160 x3 (first at 2), 320 at rate 4.
      assert.deepEqual(dws.map((n) => `${n.stride}/${n.dilation}`), [
        '1/1', '2/1', '1/1', '2/1', '1/1', '1/1', '1/1', '1/2', '1/2', '1/2', '1/2', '1/2', '1/2', '1/2', '1/4', '1/4', '1/4',
      ]);
      assert.equal(graph.nodes.filter((n) => n.op === 'add').length, 1 + 2 + 3 + 2 + 2);
      assert.ok(graph.nodes.every((n) => n.op !== 'affine'), 'every batch norm folds');
      assert.deepEqual(graph.shapes[graph.output], [1, 4, 8, 160]);
      const want = tf.tidy(() => f.apply(x, 'eval').dataSync());
      const m = loadTflite(writeTflite(graph));
      try {
        const { diff, range } = compare(want, m.run(x.dataSync() as Float32Array));
        assert.ok(range > 0.1 && diff / range < 1e-4, `max |tflite - apply| = ${diff} of range ${range}`);
      } finally { m.dispose(); }
      // The lighter variant ends after the 96-wide stage.
      const light = mobileNetV2('l', 1, 3, { ...MOBILENETV2, width: 0.5, stages: 5 });
      assert.deepEqual([light.outShape, light.outStride], [[0, 0, 48], 8]);
      light.store.dispose();
    } finally { f.store.dispose(); x.dispose(); }
  });
});
