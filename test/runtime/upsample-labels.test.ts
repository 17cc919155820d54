import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { argmaxLabels } from '../../runtime/image';
import { upsampleArgmax } from '../../runtime/upsample-labels';
import { mulberry32 } from '../../core/rng';
import { halfPixelTaps } from '../../core/half-pixel';

/** What a model ending with ResizeBilinear (half-pixel centres) then an arg-max computes, in tfjs. */
function resizeThenArgmax(logits: Float32Array, sh: number, sw: number, k: number, dh: number, dw: number): { labels: Uint8Array; up: Float32Array } {
  const up = tf.tidy(() => tf.image.resizeBilinear(tf.tensor4d(logits, [1, sh, sw, k]), [dh, dw], false, true).dataSync() as Float32Array);
  return { labels: argmaxLabels(up, k), up };
}

/** Pixels where tfjs's float32 top two logits are within `eps` (where rounding may decide). */
function nearTie(up: Float32Array, k: number, p: number, eps: number): boolean {
  const v = [...up.subarray(p * k, (p + 1) * k)].sort((a, b) => b - a);
  return v[0] - v[1] < eps;
}

describe('upsampleArgmax (runtime/upsample-labels): labels at the input size from logits at the output stride', () => {
  it('hand values: half-pixel taps clamped at the edges, and a class no source pixel has wins between two', () => {
    // One row of two pixels, 3 classes, to 4 columns: sources at x = -0.25, 0.25, 0.75, 1.25.
    // x=0 and x=3 clamp to a pure source pixel; x=1 is 0.75 A + 0.25 B = (1.5, 0.5, 1.6); x=2 is (0.5, 1.5, 1.6).
    const A = [2, 0, 1.6], B = [0, 2, 1.6];
    assert.deepEqual([...upsampleArgmax([...A, ...B], 1, 2, 3, 1, 4)], [0, 2, 2, 1]);
    // Without the third class: 0, 0, 1, 1; an exact tie (1, 1) goes to the lower id.
    assert.deepEqual([...upsampleArgmax([1, 0, 0, 1], 1, 2, 2, 1, 4)], [0, 0, 1, 1]);
    assert.deepEqual([...upsampleArgmax([1, 0, 0, 1], 1, 2, 2, 1, 2)], [0, 1]);
    // Ties inside a source pixel go to the lower id, as argmaxLabels does.
    assert.deepEqual([...upsampleArgmax([1, 1, 1, 1], 1, 2, 2, 1, 4)], [0, 0, 0, 0]);
    assert.throws(() => upsampleArgmax([1, 2, 3], 1, 2, 2, 1, 4), /not 1x2 pixels of 2 classes/);
  });

  it('equals tfjs ResizeBilinear(half-pixel) + arg-max on random logits and on blocky scene-like maps (stride 8 and odd sizes)', () => {
    const rand = mulberry32(7);
    const cases: [number, number, number, number, number, string][] = [
      [8, 16, 19, 64, 128, 'noise'], [5, 7, 4, 40, 56, 'noise'], [8, 16, 19, 64, 128, 'blocks'], [3, 3, 2, 24, 24, 'blocks'], [8, 16, 19, 61, 97, 'noise'],
    ];
    for (const [sh, sw, k, dh, dw, kind] of cases) {
      const logits = new Float32Array(sh * sw * k);
      if (kind === 'noise') for (let i = 0; i < logits.length; i++) logits[i] = rand() * 8 - 4;
      else {
        // Regions of one winning class (rows of 2-3 source pixels) with small noise: most output pixels take the shortcut.
        for (let y = 0; y < sh; y++) for (let x = 0; x < sw; x++) {
          const c = (Math.floor(y / 3) * 5 + Math.floor(x / 2)) % k;
          for (let j = 0; j < k; j++) logits[(y * sw + x) * k + j] = (j === c ? 3 : 0) + rand();
        }
      }
      const got = upsampleArgmax(logits, sh, sw, k, dh, dw);
      const { labels: want, up } = resizeThenArgmax(logits, sh, sw, k, dh, dw);
      let differ = 0;
      for (let p = 0; p < want.length; p++) {
        if (got[p] === want[p]) continue;
        differ++;
        // Only float32 rounding in tfjs may decide a pixel differently: its top two within 1e-5.
        assert.ok(nearTie(up, k, p, 1e-5), `${kind} ${sh}x${sw}->${dh}x${dw}: pixel ${p} is ${got[p]}, tfjs says ${want[p]} with a clear margin`);
      }
      assert.ok(differ <= 2, `${kind}: ${differ} near-tie pixels differ`);
    }
  });

  it('equals a plain float64 upsample-then-arg-max (same interpolation order) exactly: the shortcut and the class pruning change no pixel', () => {
    const naive = (l: ArrayLike<number>, sh: number, sw: number, k: number, dh: number, dw: number) => {
      const out = new Uint8Array(dh * dw);
      for (let y = 0; y < dh; y++) for (let x = 0; x < dw; x++) {
        const [y0, y1, fy] = halfPixelTaps(y, sh, dh), [x0, x1, fx] = halfPixelTaps(x, sw, dw);
        let best = -Infinity, id = 0;
        for (let c = 0; c < k; c++) {
          const left = (1 - fy) * l[(y0 * sw + x0) * k + c] + fy * l[(y1 * sw + x0) * k + c];
          const right = (1 - fy) * l[(y0 * sw + x1) * k + c] + fy * l[(y1 * sw + x1) * k + c];
          const v = (1 - fx) * left + fx * right;
          if (v > best) { best = v; id = c; }
        }
        out[y * dw + x] = id;
      }
      return out;
    };
    const rand = mulberry32(11);
    for (const [sh, sw, k, dh, dw, spread] of [[8, 16, 19, 64, 128, 8], [6, 9, 5, 48, 72, 0.5], [4, 4, 3, 13, 29, 3]]) {
      // Two dominant classes per region and a spread of the rest: many boundary pixels where pruning skips classes.
      const l = Float64Array.from({ length: sh * sw * k }, (_, i) => ((i % k) === ((i / k / 3) | 0) % k ? spread : 0) + rand() * spread);
      assert.deepEqual(upsampleArgmax(l, sh, sw, k, dh, dw), naive(l, sh, sw, k, dh, dw), `${sh}x${sw}x${k} -> ${dh}x${dw}`);
    }
    // Pruning at its edge: class 2's largest corner equals the floor (class 0's smallest): kept, and it ties nowhere it would win.
    const edge = [3, 0, 3, 5, 0, 1, 3, 0, 1, 5, 0, 1];  // 2x2 pixels, 3 classes
    assert.deepEqual(upsampleArgmax(edge, 2, 2, 3, 4, 4), naive(edge, 2, 2, 3, 4, 4));
    // NaN never wins (as in argmaxLabels); a pixel whose logits are all NaN is class 0.
    // 1x2 pixels of 5 classes: A wins with class 1 (tied with 4, lower id), B with 4; between them
    // classes 0-2 are NaN and 4 beats 3 (0.75 + 0.5 and 0.25 + 1.5 against 0).
    const nan = [NaN, 1, 0, 0, 1, NaN, NaN, NaN, 0, 2];
    assert.deepEqual([...upsampleArgmax(nan, 1, 2, 5, 1, 4)], [1, 4, 4, 4]);
    assert.deepEqual([...upsampleArgmax([NaN, NaN, NaN, NaN], 1, 2, 2, 1, 2)], [0, 0]);
  });

  it('the raw values of an int8 output (a per-tensor affine map of the logits) give the same labels', () => {
    const rand = mulberry32(3);
    const [sh, sw, k] = [8, 16, 19];
    const logits = Float32Array.from({ length: sh * sw * k }, () => rand() * 6 - 3);
    const scale = 0.05, zero = -7;
    const q = Int8Array.from(logits, (v) => Math.max(-128, Math.min(127, Math.round(v / scale) + zero)));
    const deq = Float32Array.from(q, (v) => (v - zero) * scale);
    const got = upsampleArgmax(q, sh, sw, k, 64, 128), want = upsampleArgmax(deq, sh, sw, k, 64, 128);
    // Integer logits tie often (two classes' interpolations both 40.5); rounding in the dequantised
    // values may break such a tie either way. Every other pixel must agree.
    const { up } = resizeThenArgmax(Float32Array.from(q), sh, sw, k, 64, 128);
    let differ = 0;
    for (let p = 0; p < got.length; p++) if (got[p] !== want[p]) { differ++; assert.ok(nearTie(up, k, p, 1e-4), `pixel ${p}: ${got[p]} vs ${want[p]} without a tie`); }
    assert.ok(differ < got.length / 100, `${differ} ties broken differently`);
  });
});
