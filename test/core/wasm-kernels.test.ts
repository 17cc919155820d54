import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { backendInfo } from '../../core/backend';

type Stride = number | [number, number];
type Arr4 = number[][][][];

/**
 * Forward output and gradients of sum(y^2) on one backend, as plain arrays. `prepad` pads x
 * symmetrically before a 'valid' conv (train/models/layers.ts conv2d with `pad: n`, the ResNet stem).
 */
async function grads(backend: string, op: 'conv' | 'deconv', xv: Arr4, wv: Arr4, stride: Stride, pad: 'same' | 'valid', o: { outShape?: [number, number, number, number]; prepad?: number } = {}) {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const fwd = (x: tf.Tensor, w: tf.Tensor) => {
      if (op === 'deconv') return tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, o.outShape!, stride, pad);
      const p = o.prepad ?? 0;
      const xi = p > 0 ? tf.pad(x as tf.Tensor4D, [[0, 0], [p, p], [p, p], [0, 0]]) : x as tf.Tensor4D;
      return tf.conv2d(xi, w as tf.Tensor4D, stride, pad);
    };
    const x = tf.tensor4d(xv), w = tf.tensor4d(wv);
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(fwd(a, b))))([x, w]);
    return { y: fwd(x, w).arraySync() as Arr4, gx: gx.arraySync() as Arr4, gw: gw.arraySync() as Arr4 };
  });
}

function relErr(a: unknown, b: unknown): number {
  const fa = (a as number[]).flat(4) as number[], fb = (b as number[]).flat(4) as number[];
  assert.equal(fa.length, fb.length, 'shapes differ');
  let num = 0, den = 0;
  fa.forEach((v, i) => { num = Math.max(num, Math.abs(v - fb[i])); den = Math.max(den, Math.abs(fb[i])); });
  return num / den;
}

const random = (shape: number[], seed: number) => tf.tidy(() => tf.randomNormal(shape, 0, 1, 'float32', seed).arraySync()) as Arr4;

/** wasm against cpu: forward, dx and dW within 1e-5 of the largest magnitude. */
async function compare(op: 'conv' | 'deconv', xShape: number[], wShape: number[], s: Stride, pad: 'same' | 'valid', o: { outShape?: [number, number, number, number]; prepad?: number } = {}) {
  const xv = random(xShape, 1), wv = random(wShape, 2);
  const a = await grads('wasm', op, xv, wv, s, pad, o);
  const b = await grads('cpu', op, xv, wv, s, pad, o);
  for (const k of ['y', 'gx', 'gw'] as const) {
    const e = relErr(a[k], b[k]);
    assert.ok(e < 1e-5, `${k} differs: ${e}`);
  }
}

describe('wasm training kernels (Conv2DBackpropFilter, Conv2DBackpropInput) against the cpu backend', function () {
  before(function () {
    if (backendInfo()?.choice !== 'wasm') this.skip();
  });
  after(async () => { if (backendInfo()?.choice === 'wasm') await tf.setBackend('wasm'); });

  // Polyphase path: equal strides > 1 that divide the input and a kernel at least the stride;
  // zero-insertion path: everything else (odd sizes, 1x1 kernels, unequal strides).
  const cases: { x: number[]; w: number[]; s: Stride; pad: 'same' | 'valid'; prepad?: number; what?: string }[] = [
    { x: [2, 8, 8, 3], w: [4, 4, 3, 5], s: 2, pad: 'same', what: 'the digits layers' },
    { x: [2, 9, 9, 3], w: [4, 4, 3, 5], s: 2, pad: 'same', what: 'odd size: zero insertion' },
    { x: [2, 8, 8, 3], w: [3, 3, 3, 4], s: 1, pad: 'same' },
    { x: [3, 11, 7, 2], w: [4, 4, 2, 3], s: 2, pad: 'valid' },
    { x: [1, 10, 10, 2], w: [3, 3, 2, 2], s: 3, pad: 'same' },
    { x: [2, 16, 16, 4], w: [5, 5, 4, 3], s: 2, pad: 'same' },
    { x: [2, 12, 8, 3], w: [1, 1, 3, 6], s: 1, pad: 'valid' },
    // The project's own layers.
    { x: [2, 8, 8, 3], w: [3, 3, 3, 4], s: 2, pad: 'same', what: 'ResNet/DenseNet 3x3 stride 2' },
    { x: [2, 7, 9, 3], w: [3, 3, 3, 4], s: 2, pad: 'same', what: '3x3 stride 2, odd size' },
    { x: [1, 16, 16, 3], w: [7, 7, 3, 4], s: 2, pad: 'same', what: '7x7 stride-2 stem' },
    { x: [1, 16, 16, 3], w: [7, 7, 3, 4], s: 2, pad: 'valid', prepad: 3, what: 'ResNet stem: pad 3 then valid' },
    { x: [1, 15, 15, 3], w: [7, 7, 3, 4], s: 2, pad: 'valid', prepad: 3, what: 'ResNet stem, odd size' },
    { x: [2, 8, 8, 4], w: [1, 1, 4, 6], s: 2, pad: 'same', what: 'ResNet 1x1 stride-2 shortcut' },
    { x: [2, 7, 7, 4], w: [1, 1, 4, 6], s: 2, pad: 'same', what: '1x1 stride-2 shortcut, odd size' },
    // Unequal strides: DepthToSpace cannot interleave them.
    { x: [2, 8, 6, 3], w: [3, 3, 3, 4], s: [2, 1], pad: 'same', what: 'unequal strides' },
    { x: [2, 6, 8, 3], w: [4, 4, 3, 5], s: [1, 2], pad: 'same', what: 'unequal strides' },
    { x: [2, 9, 8, 2], w: [3, 3, 2, 3], s: [2, 1], pad: 'valid', what: 'unequal strides' },
  ];
  for (const c of cases) {
    it(`conv2d x${c.x} w${c.w} stride ${c.s}${c.prepad ? ` pad ${c.prepad} +` : ''} ${c.pad}${c.what ? ` (${c.what})` : ''}`, async () => {
      await compare('conv', c.x, c.w, c.s, c.pad, { prepad: c.prepad });
    });
  }

  const deconvs: { x: number[]; w: number[]; s: Stride; out: [number, number, number, number]; what: string }[] = [
    { x: [2, 4, 4, 6], w: [4, 4, 5, 6], s: 2, out: [2, 8, 8, 5], what: 'decoder layer' },
    { x: [1, 3, 5, 4], w: [4, 4, 3, 4], s: 2, out: [1, 6, 10, 3], what: 'decoder layer, non-square' },
    { x: [1, 4, 4, 4], w: [4, 4, 3, 4], s: 2, out: [1, 7, 7, 3], what: 'odd output: zero insertion' },
    { x: [2, 4, 6, 6], w: [4, 4, 5, 6], s: [2, 1], out: [2, 8, 6, 5], what: 'unequal strides' },
  ];
  for (const c of deconvs) {
    it(`conv2dTranspose x${c.x} w${c.w} stride ${c.s} -> ${c.out} (${c.what}): forward and both gradients`, async () => {
      await compare('deconv', c.x, c.w, c.s, 'same', { outShape: c.out });
    });
  }

  it('OneHot honours a float32 dtype (the stock wasm kernel wrote int bits)', async () => {
    await tf.setBackend('wasm');
    const t = tf.oneHot(tf.tensor1d([2, 0], 'int32'), 3, 1, 0, 'float32');
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(Array.from(t.dataSync()), [0, 0, 1, 1, 0, 0]);
    assert.deepEqual(Array.from(tf.oneHot(tf.tensor1d([1], 'int32'), 2).dataSync()), [0, 1]);
  });

  it('releases every intermediate buffer (counted by the backend, not the engine)', async () => {
    await tf.setBackend('wasm');
    // The kernels allocate on the backend directly; tf.memory() counts engine tensors only.
    const backend = tf.backend();
    type Shape = [number, number, number, number];
    const conv = (xs: Shape, ws: Shape, s: Stride, pad: 'same' | 'valid' = 'same') => {
      const x = tf.randomNormal(xs), w = tf.randomNormal(ws);
      // Both gradients: Conv2DBackpropInput and Conv2DBackpropFilter.
      return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, s, pad)))([x, w]);
    };
    const run = () => tf.tidy(() => [
      ...conv([2, 8, 8, 3], [4, 4, 3, 5], 2),      // polyphase input gradient
      ...conv([2, 9, 9, 3], [4, 4, 3, 5], 2),      // zero insertion
      ...conv([2, 8, 6, 3], [3, 3, 3, 4], [2, 1]), // zero insertion, unequal strides
      ...conv([3, 11, 7, 2], [4, 4, 2, 3], 2, 'valid'), // filter gradient drops unread rows (Slice)
      tf.conv2dTranspose(tf.randomNormal([1, 4, 4, 6]) as tf.Tensor4D, tf.randomNormal([4, 4, 5, 6]) as tf.Tensor4D, [1, 8, 8, 5], 2, 'same'),
      tf.oneHot(tf.tensor1d([1, 0], 'int32'), 3, 1, 0, 'float32'),
    ]);
    run().forEach((t) => t.dispose());
    const ids = backend.numDataIds(), tensors = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run().forEach((t) => t.dispose());
    assert.equal(backend.numDataIds(), ids, `backend buffers leaked: ${backend.numDataIds()} data ids, ${ids} before`);
    assert.equal(tf.memory().numTensors, tensors);
  });
});
