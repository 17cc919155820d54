import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { backendInfo } from '../../core/backend';
import { resizeByMatrices, upsampleBilinear } from '../../core/upsample';

const ROOT = path.resolve(__dirname, '../..');
type HW = [number, number];
type Shape = [number, number, number, number];

/** Host copy of a tensor's values as float64. */
const host = (t: tf.Tensor) => Float64Array.from(t.dataSync());

/** Runs `f` with ResizeBilinearGrad on the current backend replaced by a kernel that throws. */
function withoutResizeGrad<T>(f: () => T): T {
  const be = tf.getBackend();
  const stock = tf.getKernel('ResizeBilinearGrad', be);
  if (stock) tf.unregisterKernel('ResizeBilinearGrad', be);
  tf.registerKernel({ kernelName: 'ResizeBilinearGrad', backendName: be, kernelFunc: () => { throw new Error(`ResizeBilinearGrad was called on ${be}`); } });
  try {
    return f();
  } finally {
    tf.unregisterKernel('ResizeBilinearGrad', be);
    if (stock) tf.registerKernel(stock);
  }
}

describe('upsampleBilinear (core/upsample): one gradient on every backend', function () {
  const home = () => backendInfo()?.tfName ?? 'cpu';
  after(async () => { await tf.setBackend(home()); });

  const cases: [Shape, HW][] = [
    [[2, 5, 7, 3], [40, 56]],   // segmentation: logits x8
    [[1, 6, 6, 2], [13, 17]],   // non-integer ratio
    [[1, 9, 8, 2], [4, 3]],     // downsampling
    [[1, 1, 3, 1], [5, 2]],     // a single row: both taps clamp to it
  ];

  for (const backend of ['cpu', 'wasm']) {
    describe(backend, function () {
      before(async function () {
        if (backend === 'wasm' && backendInfo()?.choice !== 'wasm') this.skip();
        await tf.setBackend(backend);
      });

      for (const [shape, size] of cases) {
        it(`${shape.join('x')} -> ${size.join('x')}: the value is tf.image.resizeBilinear(.., false, true) bit for bit; the matrices reproduce it`, () => {
          tf.tidy(() => {
            const x = tf.randomNormal(shape, 0, 1, 'float32', 7) as tf.Tensor4D;
            const native = host(tf.image.resizeBilinear(x, size, false, true));
            assert.deepEqual(host(upsampleBilinear(x, size)), native);
            // The matrices are what the gradient transposes: they must be the native forward's taps.
            // (1 - t) a + t b against a + (b - a) t: a few float32 roundings of values of order 1.
            const m = host(resizeByMatrices(x, size));
            const gap = m.reduce((g, v, i) => Math.max(g, Math.abs(v - native[i])), 0);
            assert.ok(gap < 1e-6, `matrix resize differs from the native kernel by ${gap}`);
          });
        });
      }

      // L(x) = sum(dy * up(x)^2) is quadratic in x, so central differences are exact for any step;
      // only float32 rounding of up(x) remains (the sum is taken in float64 on the host). With a
      // step of 0.25 and |up(x)| ~ 1 that is below 1e-6 (measured: 7e-7): tolerance 1e-5 * (1 + |g|).
      for (const [shape, size] of [[[1, 3, 4, 2], [7, 10]], [[1, 6, 5, 2], [4, 3]]] as [Shape, HW][]) {
        it(`${shape.join('x')} -> ${size.join('x')}: the gradient matches central differences`, () => {
          tf.tidy(() => {
            const x = tf.randomNormal(shape, 0, 1, 'float32', 11) as tf.Tensor4D;
            const dy = tf.randomNormal([shape[0], ...size, shape[3]], 0, 1, 'float32', 12);
            const dyv = host(dy);
            const loss = (xv: Float32Array) => tf.tidy(() => {
              const u = host(upsampleBilinear(tf.tensor4d(xv, x.shape), size));
              return u.reduce((s, v, i) => s + dyv[i] * v * v, 0);
            });
            const g = host(tf.grad((t: tf.Tensor) => tf.sum(tf.mul(dy, tf.square(upsampleBilinear(t as tf.Tensor4D, size)))))(x));
            const xv = x.dataSync() as Float32Array;
            const h = 0.25;
            for (let i = 0; i < xv.length; i++) {
              const p = Float32Array.from(xv), q = Float32Array.from(xv);
              p[i] += h; q[i] -= h;
              const fd = (loss(p) - loss(q)) / (2 * h);
              assert.ok(Math.abs(fd - g[i]) < 1e-5 * (1 + Math.abs(g[i])), `d/dx[${i}]: autodiff ${g[i]}, central difference ${fd}`);
            }
          });
        });
      }

      it('the gradient never calls ResizeBilinearGrad (the kernel tfjs-node gets wrong)', () => {
        const x = tf.randomNormal([1, 4, 4, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
        try {
          const gt = withoutResizeGrad(() => tf.grad((t: tf.Tensor) => tf.sum(upsampleBilinear(t as tf.Tensor4D, [32, 32])))(x));
          const g = host(gt);
          gt.dispose();
          // Each input pixel receives its total weight: (32 / 4)^2 = 64 output pixels' worth.
          assert.ok(g.every((v) => Math.abs(v - 64) < 1e-3), `column sums ${g.slice(0, 4).join(', ')}`);
          // The probe is real: differentiating the native op does reach the replaced kernel.
          assert.throws(() => withoutResizeGrad(() => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.image.resizeBilinear(t as tf.Tensor4D, [32, 32], false, true)))(x))), /ResizeBilinearGrad was called/);
        } finally {
          x.dispose();
        }
      });

      it('keeps tf.memory() flat', () => {
        const x = tf.randomNormal([2, 5, 7, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
        const grad = () => tf.tidy(() => { tf.grad((t: tf.Tensor) => tf.sum(upsampleBilinear(t as tf.Tensor4D, [40, 56])))(x).dataSync(); });
        grad();
        const before = tf.memory().numTensors;
        grad();
        assert.equal(tf.memory().numTensors, before);
        x.dispose();
      });
    });
  }

  it('initBackend replaces no stock kernel on cpu, and on wasm only the training kernels it lacks', function () {
    this.timeout(60000);
    // A fresh process: this one's kernels were registered by test/setup.ts before any test ran.
    const script = `
      const tf = require('@tensorflow/tfjs');
      require('@tensorflow/tfjs-backend-wasm');
      const snap = (b) => new Map(tf.getKernelsForBackend(b).map((k) => [k.kernelName, k.kernelFunc]));
      const stock = { cpu: snap('cpu'), wasm: snap('wasm') };
      require('./core/backend.ts').initBackend({ force: 'wasm', quiet: true }).then(() => {
        const changed = {};
        for (const b of ['cpu', 'wasm']) changed[b] = [...snap(b)].filter(([k, f]) => stock[b].get(k) !== f).map(([k]) => k).sort();
        process.stdout.write(JSON.stringify(changed));
        process.exit(0);
      });`;
    const out = execFileSync(process.execPath, ['-r', 'tsx/cjs', '-e', script], { cwd: ROOT, encoding: 'utf8' });
    // wasm: no Conv2DBackpropFilter at all, a slow Conv2DBackpropInput, OneHot without float32
    // (core/wasm-kernels). Nothing else: a kernel fixed for one backend stays broken on the others.
    assert.deepEqual(JSON.parse(out), { cpu: [], wasm: ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'OneHot'] });
  });
});
