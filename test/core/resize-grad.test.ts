import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { backendInfo } from '../../core/backend';

/**
 * The gradient of a linear map is its adjoint: <dy, R x> = <R^T dy, x> for every x, dy. tfjs's
 * stock kernels fail this with halfPixelCenters (they differentiate the legacy sampling).
 */
async function adjointGap(backend: string, inHW: [number, number], outHW: [number, number], alignCorners: boolean, halfPixelCenters: boolean): Promise<number> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.randomNormal([2, ...inHW, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const dy = tf.randomNormal([2, ...outHW, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const resize = (t: tf.Tensor4D) => tf.image.resizeBilinear(t, outHW, alignCorners, halfPixelCenters);
    // Inner products in float64 on the host: a float32 device sum of 10^4 terms is itself off by ~1e-4.
    // Relative to the sum of |terms|, the scale of float32 rounding in either product.
    let scale = 0;
    const dot = (a: tf.Tensor, b: tf.Tensor) => { const u = a.dataSync(), v = b.dataSync(); let s = 0; for (let k = 0; k < u.length; k++) { s += u[k] * v[k]; scale += Math.abs(u[k] * v[k]); } return s; };
    const lhs = dot(dy, resize(x));
    const gx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(dy, resize(t as tf.Tensor4D))))(x);
    const rhs = dot(gx, x);
    return Math.abs(lhs - rhs) / scale;
  });
}

describe('ResizeBilinearGrad (core/resize-grad) is the adjoint of the forward resize', function () {
  const home = () => backendInfo()?.tfName ?? 'cpu';
  after(async () => { await tf.setBackend(home()); });
  const cases: [[number, number], [number, number], boolean, boolean][] = [
    [[5, 7], [40, 56], false, true],   // segmentation: logits x8 with half-pixel centres
    [[6, 6], [13, 17], false, true],   // non-integer ratio
    [[9, 8], [4, 3], false, true],     // downsampling
    [[5, 7], [40, 56], false, false],  // legacy sampling
    [[5, 7], [9, 13], true, false],    // align corners
  ];
  for (const backend of ['cpu', 'wasm']) {
    for (const [i, o, ac, hp] of cases) {
      it(`${backend}: ${i.join('x')} -> ${o.join('x')} alignCorners=${ac} halfPixelCenters=${hp}`, async function () {
        if (backend === 'wasm' && backendInfo()?.choice !== 'wasm') this.skip();
        const gap = await adjointGap(backend, i, o, ac, hp);
        assert.ok(gap < 1e-6, `<dy, R x> and <R^T dy, x> differ by ${gap} (relative)`);
      });
    }
  }
});
