import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { crossEntropy, gradientPenalty, l1, lsganCritic, lsganGenerator, wganCritic, wganGenerator } from '../../train/losses';
import { imageCritic } from '../../train/models/nets';

const v = (t: tf.Tensor) => { const x = t.dataSync()[0]; t.dispose(); return x; };
const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);

describe('losses against hand-computed values', () => {
  it('cross entropy: mean of -log softmax at the label, label 255 ignored', () => {
    const logits = tf.tensor2d([[1, 2, 3], [0, 0, 0], [5, 0, 0]]);
    const labels = tf.tensor1d([2, 1, 255], 'int32');
    const ce1 = -Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
    const ce2 = Math.log(3);
    close(v(crossEntropy(logits, labels)), (ce1 + ce2) / 2);
    // Per-pixel logits [N,H,W,K] reduce the same way.
    close(v(crossEntropy(tf.reshape(logits, [1, 3, 1, 3]), tf.tensor3d([[[2], [1], [255]]], [1, 3, 1], 'int32'))), (ce1 + ce2) / 2);
    // Every label ignored: 0, not NaN.
    close(v(crossEntropy(logits, tf.tensor1d([255, 255, 255], 'int32'))), 0);
  });
  it('L1: mean absolute difference', () => {
    close(v(l1(tf.tensor([1, -2, 3, 0]), tf.tensor([0, 0, 3, 1]))), (1 + 2 + 0 + 1) / 4);
  });
  it('least squares GAN: critic (D(real)-1)^2 + D(fake)^2, generator (D(fake)-1)^2', () => {
    const real = tf.tensor([0.5, 1.5]), fake = tf.tensor([0.2, -0.4]);
    close(v(lsganCritic(real, fake)), (0.25 + 0.25) / 2 + (0.04 + 0.16) / 2);
    close(v(lsganGenerator(fake)), (0.64 + 1.96) / 2);
  });
  it('Wasserstein: critic E[D(fake)] - E[D(real)], generator -E[D(fake)]', () => {
    close(v(wganCritic(tf.tensor([1, 3]), tf.tensor([-1, 0]))), -0.5 - 2);
    close(v(wganGenerator(tf.tensor([-1, 0]))), 0.5);
  });

  describe('gradient penalty', () => {
    // A linear critic D(x) = sum(a * x) has gradient a everywhere: penalty = (|a| - 1)^2 exactly.
    it('equals (||a|| - 1)^2 for a linear critic', () => {
      const a = tf.tensor4d([[[[0.3]], [[0.4]]]]); // |a| = 0.5
      const critic = (x: tf.Tensor4D) => tf.sum(tf.mul(x, a), [1, 2, 3]) as tf.Tensor1D;
      const real = tf.randomNormal([3, 2, 1, 1]) as tf.Tensor4D, fake = tf.randomNormal([3, 2, 1, 1]) as tf.Tensor4D;
      close(v(gradientPenalty(critic, real, fake, tf.tensor1d([0.1, 0.5, 0.9]))), 0.25);
    });

    // D(x) = sum(a * x^2) has gradient 2 a x, which varies with x: the penalty pins down where the
    // gradient is taken. At x_hat = eps real + (1 - eps) fake, ||grad|| = 2 sqrt(sum(a^2 x_hat^2)).
    it('takes the gradient at the interpolates x_hat (a quadratic critic, by hand)', () => {
      const av = [0.5, -1, 2, 0.25], real2 = [[1, 0, -1, 2], [0.5, 0.5, 0, -1]], fake2 = [[-1, 2, 0.5, 0], [0, -0.5, 1, 1]], ev = [0.25, 0.75];
      const a = tf.tensor4d(av, [1, 2, 2, 1]);
      const critic = (x: tf.Tensor4D) => tf.sum(tf.mul(a, tf.square(x)), [1, 2, 3]) as tf.Tensor1D;
      const at = (x: number[]) => (2 * Math.sqrt(x.reduce((t, xi, j) => t + (av[j] * xi) ** 2, 0)) - 1) ** 2;
      const hand = (at(real2[0].map((r, j) => ev[0] * r + (1 - ev[0]) * fake2[0][j])) + at(real2[1].map((r, j) => ev[1] * r + (1 - ev[1]) * fake2[1][j]))) / 2;
      const atReal = (at(real2[0]) + at(real2[1])) / 2;
      assert.ok(Math.abs(hand - atReal) > 1, 'the case must tell x_hat from the real images');
      const real = tf.tensor4d(real2.flat(), [2, 2, 2, 1]), fake = tf.tensor4d(fake2.flat(), [2, 2, 2, 1]);
      close(v(gradientPenalty(critic, real, fake, tf.tensor1d(ev))), hand);
    });

    it('matches finite differences: in the input (the norm) and in the critic weights (second order)', () => {
      const D = imageCritic('D_test', 7, [16, 16, 1], [4, 6, 8]);
      const real = tf.randomUniform([2, 16, 16, 1], -1, 1, 'float32', 1) as tf.Tensor4D;
      const fake = tf.randomUniform([2, 16, 16, 1], -1, 1, 'float32', 2) as tf.Tensor4D;
      const eps = tf.tensor1d([0.3, 0.7]);
      const critic = (x: tf.Tensor4D) => D.apply(x, 'train');
      // (1) The gradient norm inside the penalty: directional finite difference of D at x_hat.
      const xHat = tf.tidy(() => tf.add(tf.mul(tf.reshape(eps, [-1, 1, 1, 1]), real), tf.mul(tf.sub(1, tf.reshape(eps, [-1, 1, 1, 1])), fake))) as tf.Tensor4D;
      const g = tf.grad((x: tf.Tensor) => tf.sum(critic(x as tf.Tensor4D)))(xHat);
      const dir = tf.randomNormal(xHat.shape, 0, 1, 'float32', 3);
      const h = 1e-2;
      const fd = (v(tf.sum(critic(tf.add(xHat, tf.mul(dir, h)) as tf.Tensor4D))) - v(tf.sum(critic(tf.sub(xHat, tf.mul(dir, h)) as tf.Tensor4D)))) / (2 * h);
      close(v(tf.sum(tf.mul(g, dir))), fd, 2e-2);
      // (2) d(penalty)/d(weights) by backprop through the inner gradient vs central differences.
      // The penalty is only piecewise smooth in weights before a ReLU (a perturbation flips units),
      // so probe the last conv and an instance-norm scale, which the inner gradient still crosses.
      for (const name of ['D_test/conv4/w', 'D_test/in2/gamma']) checkParam(name);
      function checkParam(name: string) {
      const w = D.store.trainable.get(name)!;
      const { grads } = tf.variableGrads(() => gradientPenalty(critic, real, fake, eps), [w]);
      const analytic = grads[w.name];
      const wDir = tf.randomNormal(w.shape, 0, 1, 'float32', 4);
      const w0 = tf.clone(w);
      const at = (s: number) => { w.assign(tf.add(w0, tf.mul(wDir, s))); return v(gradientPenalty(critic, real, fake, eps)); };
      const hw = 2e-3;
      const fdw = (at(hw) - at(-hw)) / (2 * hw);
      w.assign(w0);
      const an = v(tf.sum(tf.mul(analytic, wDir)));
      assert.ok(Math.abs(an) > 1e-4, 'second-order gradient should be non-zero');
      close(an, fdw, 1e-2);
      }
      D.store.dispose();
    });
  });
});
