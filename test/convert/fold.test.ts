import { strict as assert } from 'node:assert';
import { foldGraph } from '../../convert/fold';
import { GraphBuilder } from '../../train/models/ir';

const f32 = (...v: number[]) => Float32Array.from(v);
/** A 1x1 conv 2 -> 2 with kernel [[1, 2], [3, 4]] (HWIO) and bias [0.5, -0.5]. */
const conv = (g: GraphBuilder, x: number) => g.conv2d(x, { weights: f32(1, 2, 3, 4), bias: f32(0.5, -0.5), kernel: [1, 1, 2, 2], stride: 1, dilation: 1, padding: 'same' });

describe('convert: graph passes (fold batch norm, fuse ReLU, move the BGR reversal)', () => {
  it('folds an affine into the conv that is its only producer and fuses the ReLU after it', () => {
    const g = new GraphBuilder();
    const x = g.input([1, 4, 4, 2]);
    const y = g.relu(g.affine(conv(g, x), f32(2, 3), f32(1, 1)));
    const out = foldGraph(g.graph(x, y, 't'));
    assert.equal(out.nodes.length, 1);
    const n = out.nodes[0];
    assert.ok(n.op === 'conv2d');
    assert.deepEqual([...n.weights], [2, 6, 6, 12]);
    assert.deepEqual([...n.bias], [2, -0.5]);
    assert.equal(n.act, 'relu');
    assert.deepEqual([out.input, n.input, n.output, out.output], [0, 0, 1, 1]);
    assert.deepEqual(out.shapes, [[1, 4, 4, 2], [1, 4, 4, 2]]);
  });

  it('keeps an affine whose conv output is read elsewhere (pre-activation beside a concat)', () => {
    const g = new GraphBuilder();
    const x = g.input([1, 4, 4, 2]);
    const c = conv(g, x);
    const y = g.concat([c, g.relu(g.affine(c, f32(2, 3), f32(1, 1)))]);
    const out = foldGraph(g.graph(x, y, 't'));
    assert.deepEqual(out.nodes.map((n) => n.op), ['conv2d', 'affine', 'concat']);
    assert.deepEqual(out.nodes.map((n) => 'act' in n ? n.act : '-'), ['none', 'relu', '-']);
    // The conv keeps its own weights: the concat reads its unscaled output.
    const c0 = out.nodes[0];
    assert.ok(c0.op === 'conv2d');
    assert.deepEqual([[...c0.weights], [...c0.bias]], [[1, 2, 3, 4], [0.5, -0.5]]);
    assert.deepEqual(out.shapes.map((s) => s[3]), [2, 2, 2, 4]);
  });

  it('moves a channel reversal through a pad into the conv it feeds', () => {
    const g = new GraphBuilder();
    const x = g.input([1, 4, 4, 2]);
    const y = conv(g, g.pad(g.reverseChannels(x), 1));
    const out = foldGraph(g.graph(x, y, 't'));
    assert.deepEqual(out.nodes.map((n) => n.op), ['pad', 'conv2d']);
    const n = out.nodes[1];
    assert.ok(n.op === 'conv2d');
    assert.deepEqual([...n.weights], [3, 4, 1, 2]);  // input channels swapped
    assert.equal(out.nodes[0].op === 'pad' && out.nodes[0].input, 0);
  });

  it('refuses a ReLU it cannot fuse (the writers have no standalone RELU)', () => {
    const g = new GraphBuilder();
    const x = g.input([1, 4, 4, 2]);
    const y = g.relu(g.concat([x, x]));
    assert.throws(() => foldGraph(g.graph(x, y, 't')), /ReLU after concat has no fused form/);
  });
});
