import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { backendInfo } from '../../core/backend';

/** Gradients of sum(conv(x, w)^2) on one backend, as plain arrays. */
async function grads(backend: string, op: 'conv' | 'deconv', xv: number[][][][], wv: number[][][][], stride: number, pad: 'same' | 'valid', outShape?: [number, number, number, number]) {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const f = (x: tf.Tensor, w: tf.Tensor) => {
      const y = op === 'conv'
        ? tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad)
        : tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, outShape!, stride, pad);
      return tf.sum(tf.square(y));
    };
    const [gx, gw] = tf.grads(f)([tf.tensor4d(xv), tf.tensor4d(wv)]);
    return [gx.arraySync(), gw.arraySync()] as number[][][][][];
  });
}

function relErr(a: unknown, b: unknown): number {
  const fa = (a as number[]).flat(4) as number[], fb = (b as number[]).flat(4) as number[];
  assert.equal(fa.length, fb.length);
  let num = 0, den = 0;
  fa.forEach((v, i) => { num = Math.max(num, Math.abs(v - fb[i])); den = Math.max(den, Math.abs(fb[i])); });
  return num / den;
}

describe('wasm training kernels (Conv2DBackpropFilter, Conv2DBackpropInput) against the cpu backend', function () {
  before(function () {
    if (backendInfo()?.choice !== 'wasm') this.skip();
  });
  after(async () => { if (backendInfo()?.choice === 'wasm') await tf.setBackend('wasm'); });

  const cases: { x: number[]; w: number[]; s: number; pad: 'same' | 'valid' }[] = [
    { x: [2, 8, 8, 3], w: [4, 4, 3, 5], s: 2, pad: 'same' },     // the digits layers
    { x: [2, 9, 9, 3], w: [4, 4, 3, 5], s: 2, pad: 'same' },     // odd size: zero-insertion path
    { x: [2, 8, 8, 3], w: [3, 3, 3, 4], s: 1, pad: 'same' },
    { x: [3, 11, 7, 2], w: [4, 4, 2, 3], s: 2, pad: 'valid' },
    { x: [1, 10, 10, 2], w: [3, 3, 2, 2], s: 3, pad: 'same' },
    { x: [2, 16, 16, 4], w: [5, 5, 4, 3], s: 2, pad: 'same' },
    { x: [2, 12, 8, 3], w: [1, 1, 3, 6], s: 1, pad: 'valid' },
  ];
  for (const c of cases) {
    it(`conv2d x${c.x} w${c.w} stride ${c.s} ${c.pad}`, async () => {
      const xv = tf.tidy(() => tf.randomNormal(c.x, 0, 1, 'float32', 1).arraySync()) as number[][][][];
      const wv = tf.tidy(() => tf.randomNormal(c.w, 0, 1, 'float32', 2).arraySync()) as number[][][][];
      const a = await grads('wasm', 'conv', xv, wv, c.s, c.pad);
      const b = await grads('cpu', 'conv', xv, wv, c.s, c.pad);
      assert.ok(relErr(a[0], b[0]) < 1e-5, `dx differs: ${relErr(a[0], b[0])}`);
      assert.ok(relErr(a[1], b[1]) < 1e-5, `dW differs: ${relErr(a[1], b[1])}`);
    });
  }
  it('conv2dTranspose (decoder layer) forward and both gradients', async () => {
    const xv = tf.tidy(() => tf.randomNormal([2, 4, 4, 6], 0, 1, 'float32', 3).arraySync()) as number[][][][];
    const wv = tf.tidy(() => tf.randomNormal([4, 4, 5, 6], 0, 1, 'float32', 4).arraySync()) as number[][][][];
    const a = await grads('wasm', 'deconv', xv, wv, 2, 'same', [2, 8, 8, 5]);
    const b = await grads('cpu', 'deconv', xv, wv, 2, 'same', [2, 8, 8, 5]);
    assert.ok(relErr(a[0], b[0]) < 1e-5 && relErr(a[1], b[1]) < 1e-5);
  });
  it('OneHot honours a float32 dtype (the stock wasm kernel wrote int bits)', async () => {
    await tf.setBackend('wasm');
    const t = tf.oneHot(tf.tensor1d([2, 0], 'int32'), 3, 1, 0, 'float32');
    assert.equal(t.dtype, 'float32');
    assert.deepEqual(Array.from(t.dataSync()), [0, 0, 1, 1, 0, 0]);
    assert.deepEqual(Array.from(tf.oneHot(tf.tensor1d([1], 'int32'), 2).dataSync()), [0, 1]);
  });
  it('releases every intermediate buffer', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal([2, 8, 8, 3]) as tf.Tensor4D, w = tf.randomNormal([4, 4, 3, 5]) as tf.Tensor4D;
    const run = () => tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')))([x, w]));
    run().forEach((t) => t.dispose());
    const before = tf.memory();
    for (let i = 0; i < 5; i++) run().forEach((t) => t.dispose());
    const after = tf.memory();
    assert.equal(after.numTensors, before.numTensors);
    assert.equal(after.numBytes, before.numBytes);
    x.dispose(); w.dispose();
  });
});
