/**
 * Bilinear resizing with half-pixel centres (tf.image.resizeBilinear(x, size, false, true)) whose
 * gradient is computed by the same code on every backend.
 *
 * Why not differentiate tf.image.resizeBilinear itself: its gradient kernel, ResizeBilinearGrad,
 * differentiates the legacy sampling on the cpu and wasm backends (they ignore halfPixelCenters)
 * and on tfjs-node / tfjs-node-gpu (tfjs-node/src/kernels/ResizeBilinearGrad.ts passes only
 * align_corners to TensorFlow). Re-registering that kernel per backend fixed cpu and wasm and left
 * the GPU wrong, so nothing is registered any more.
 *
 * The resize is a linear map, out = R_h . x . R_w^T per image and channel, with R_h [H, h] and
 * R_w [W, w] holding the forward kernels' taps (same source coordinates, same clamping at the
 * edges, same fractions). The forward pass is the native ResizeBilinear kernel (every backend
 * honours halfPixelCenters there, tfjs-node included; the value is bit for bit what export and
 * inference compute); the gradient is R_h^T . dy . R_w as two matMuls, which every backend
 * computes alike. test/core/upsample.test.ts checks the matrices against the native forward
 * and the gradient against finite differences, on cpu and wasm.
 */
import { halfPixelTaps } from './half-pixel';
import * as tf from './tf';

const matrices = new Map<string, Float32Array>();

/**
 * The resize along one axis as a dense row-major [outSize, inSize] matrix, or its transpose
 * [inSize, outSize]. Cached on the host (a few KB) and uploaded per call, so no tensor outlives
 * the caller's tidy and tf.memory() stays flat.
 */
export function interpolationMatrix(inSize: number, outSize: number, transposed = false): Float32Array {
  const key = `${inSize}:${outSize}:${transposed}`;
  let m = matrices.get(key);
  if (!m) {
    m = new Float32Array(inSize * outSize);
    for (let o = 0; o < outSize; o++) {
      const [lo, hi, fr] = halfPixelTaps(o, inSize, outSize);
      const at = (i: number) => (transposed ? i * outSize + o : o * inSize + i);
      m[at(lo)] += 1 - fr;
      m[at(hi)] += fr;
    }
    matrices.set(key, m);
  }
  return m;
}

/**
 * R_h . x . R_w^T for every image and channel, [n, h, w, c] -> [n, H, W, c]: the resize as
 * matrices (`transposed`: its adjoint, from `x` at the output size back to `size`, the input's).
 * Each axis is one 2-D matMul with the matrix on the left and the contracted axis moved to the
 * front: on wasm that ran 3-4x faster than a batched or broadcast matMul of the same sizes.
 */
export function resizeByMatrices(x: tf.Tensor4D, [H, W]: [number, number], transposed = false): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const matrix = (from: number, to: number) => tf.tensor2d(transposed ? interpolationMatrix(to, from, true) : interpolationMatrix(from, to), [to, from]);
    const rows = tf.matMul(matrix(h, H), x.transpose([1, 0, 2, 3]).reshape([h, n * w * c]));                          // [H, n, w, c]
    const cols = tf.matMul(matrix(w, W), rows.reshape([H, n, w, c]).transpose([2, 1, 0, 3]).reshape([w, n * H * c]));  // [W, n, H, c]
    return cols.reshape([W, n, H, c]).transpose([1, 2, 0, 3]) as tf.Tensor4D;
  });
}

/**
 * tf.image.resizeBilinear(x, size, false, true) with a backend-independent gradient: use it
 * wherever training differentiates through a bilinear resize.
 */
export function upsampleBilinear(x: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  const [, h, w] = x.shape;
  const op = tf.customGrad(((input: tf.Tensor4D) => ({
    value: tf.image.resizeBilinear(input, size, false, true),
    gradFunc: (dy: tf.Tensor4D) => resizeByMatrices(dy, [h, w], true),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as tf.Tensor4D;
}
