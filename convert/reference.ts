/**
 * The parity reference: the training model's inference function (f then h, batch norm with running
 * statistics), run by tfjs ops one IR node at a time over the graph its layers emit before any
 * graph pass (train/models/ir.ts RawGraph: one node per training op, batch norm as an affine, ReLU
 * and channel reversal as nodes of their own). Each tensor is released after its last reader.
 *
 * Why not `model.predict`: inside its tf.tidy every intermediate of the forward pass stays alive
 * until the end, and DenseNet121's at 512x1024 outgrow wasm's 4 GiB heap (every concatenation of
 * every dense block, each with its batch-norm and ReLU copies). Node by node, the live set is a
 * block's current concatenation plus one layer's temporaries.
 *
 * It stays an independent check of the exported files: it reads the unfolded graph (so folding, the
 * TFLite writer, the tfjs graph writer and both runtimes are all under test), and a test holds it
 * equal to `model.predict` within float rounding (test/convert/reference.test.ts).
 */
import * as tf from '../core/tf';
import type { Graph, RawGraph, RawNode } from '../train/models/ir';

export interface Reference {
  /**
   * One frame (NHWC float, normalised) -> the graph output's values. `seen(t, y)`, if given, sees
   * every tensor (the input, then each node's output) while it is alive (int8 calibration's ranges).
   */
  run(x: Float32Array, seen?: (t: number, y: tf.Tensor) => void): Float32Array;
  dispose(): void;
}

const inputsOf = (n: RawNode): number[] => ('inputs' in n ? n.inputs : [n.input]);

/** Loads the graph's constants as tensors once; `run` may then be called for any number of frames. */
export function graphReference(g: RawGraph | Graph): Reference {
  const consts = new Map<RawNode, tf.Tensor[]>();
  for (const n of g.nodes) {
    if (n.op === 'conv2d' || n.op === 'depthwise2d') consts.set(n, [tf.tensor4d(n.weights, n.kernel), tf.tensor1d(n.bias)]);
    else if (n.op === 'affine') consts.set(n, [tf.tensor1d(n.scale), tf.tensor1d(n.shift)]);
    else if (n.op === 'dense') consts.set(n, [tf.tensor2d(n.weights, [n.weights.length / n.units, n.units]), tf.tensor1d(n.bias)]);
  }
  // The index of the last node that reads each tensor: it is released right after that node.
  const lastRead = new Map<number, number>();
  g.nodes.forEach((n, i) => inputsOf(n).forEach((t) => lastRead.set(t, i)));

  const step = (n: RawNode, xs: tf.Tensor[]): tf.Tensor => {
    const [x] = xs;
    const c = consts.get(n) ?? [];
    const act = (y: tf.Tensor, a: 'none' | 'relu') => (a === 'relu' ? tf.relu(y) : y);
    switch (n.op) {
      case 'conv2d': return act(tf.add(tf.conv2d(x as tf.Tensor4D, c[0] as tf.Tensor4D, n.stride, n.padding, 'NHWC', n.dilation), c[1]), n.act);
      case 'depthwise2d': return act(tf.add(tf.depthwiseConv2d(x as tf.Tensor4D, c[0] as tf.Tensor4D, n.stride, n.padding, 'NHWC', n.dilation), c[1]), n.act);
      case 'affine': return act(tf.add(tf.mul(x, c[0]), c[1]), n.act);
      case 'relu': return tf.relu(x);
      case 'reverse-channels': return tf.reverse(x, 3);
      case 'pad': { const [t, b, l, r] = n.pads; return tf.pad(x, [[0, 0], [t, b], [l, r], [0, 0]]); }
      case 'concat': return tf.concat(xs, 3);
      case 'avgpool': return tf.avgPool(x as tf.Tensor4D, n.size, n.stride, n.padding);
      case 'maxpool': return tf.maxPool(x as tf.Tensor4D, n.size, n.stride, n.padding);
      case 'add': return act(tf.add(xs[0], xs[1]), n.act);
      case 'reshape': return tf.reshape(x, g.shapes[n.output]);
      case 'dense': return act(tf.add(tf.matMul(x as tf.Tensor2D, c[0] as tf.Tensor2D), c[1]), n.act);
      case 'resize': { const [, h, w] = g.shapes[n.output]; return tf.image.resizeBilinear(x as tf.Tensor4D, [h, w], false, n.halfPixelCenters); }
    }
  };

  return {
    run(x, seen) {
      const live = new Map<number, tf.Tensor>([[g.input, tf.tensor(x, g.shapes[g.input])]]);
      try {
        seen?.(g.input, live.get(g.input)!);
        g.nodes.forEach((n, i) => {
          const xs = inputsOf(n).map((t) => {
            const v = live.get(t);
            if (!v) throw new Error(`reference: tensor ${t} read before it is written`);
            return v;
          });
          live.set(n.output, tf.tidy(() => step(n, xs)));
          seen?.(n.output, live.get(n.output)!);
          for (const t of new Set(inputsOf(n))) if (lastRead.get(t) === i && t !== g.output) { live.get(t)!.dispose(); live.delete(t); }
        });
        const y = live.get(g.output);
        if (!y) throw new Error('reference: the graph output was never written');
        return y.dataSync() as Float32Array;
      } finally { for (const t of live.values()) t.dispose(); }
    },
    dispose() { for (const ts of consts.values()) tf.dispose(ts); consts.clear(); },
  };
}
