/**
 * The loss functions of the I2I objective, each in one place:
 * - crossEntropy  L_c and L_trc (pixels with label `ignore` excluded, as for segmentation)
 * - weightedCrossEntropy  self-training's st and mic (a weight per pixel: the pseudo-labels' confidence)
 * - l1            L_id and L_cyc
 * - lsgan*        L_z (least-squares GAN, a=0 fake, b=1 real, generator target c=1)
 * - wgan*         L_tr (Wasserstein critic with gradient penalty)
 * - IMAGE_GAN     which pair L_tr and the image critics use (config.model.imageCriticLoss)
 */
import * as tf from '../../core/tf';

export const IGNORE_LABEL = 255;

/** Mean cross entropy over items whose label != ignore. logits [..., K], labels int32 [...]. */
export function crossEntropy(logits: tf.Tensor, labels: tf.Tensor, ignore = IGNORE_LABEL): tf.Scalar {
  return tf.tidy(() => {
    const k = logits.shape[logits.shape.length - 1];
    const flat = tf.reshape(logits, [-1, k]) as tf.Tensor2D;
    const lab = tf.reshape(labels, [-1]).toInt();
    const valid = tf.notEqual(lab, tf.scalar(ignore, 'int32'));
    const safe = tf.where(valid, lab, tf.zerosLike(lab));
    const logp = tf.logSoftmax(flat);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(safe, k, 1, 0, 'float32')), 1);
    const w = tf.cast(valid, 'float32');
    const count = tf.maximum(tf.sum(w), tf.scalar(1));
    return tf.div(tf.neg(tf.sum(tf.mul(picked, w))), count) as tf.Scalar;
  });
}

/**
 * Cross entropy with a weight per item: sum of w * CE over items whose label != ignore, divided by
 * their count (DACS: the mean over pixels of the pixel-wise weighted loss). logits [..., K];
 * labels int32 and weights float32 of the logits' shape without K.
 */
export function weightedCrossEntropy(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor, ignore = IGNORE_LABEL): tf.Scalar {
  return tf.tidy(() => {
    const k = logits.shape[logits.shape.length - 1];
    const lab = tf.reshape(labels, [-1]).toInt();
    const valid = tf.notEqual(lab, tf.scalar(ignore, 'int32'));
    const safe = tf.where(valid, lab, tf.zerosLike(lab));
    const logp = tf.logSoftmax(tf.reshape(logits, [-1, k]) as tf.Tensor2D);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(safe, k, 1, 0, 'float32')), 1);
    const v = tf.cast(valid, 'float32');
    const count = tf.maximum(tf.sum(v), tf.scalar(1));
    return tf.div(tf.neg(tf.sum(tf.mul(picked, tf.mul(v, tf.reshape(weights, [-1]))))), count) as tf.Scalar;
  });
}

export function l1(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.mean(tf.abs(tf.sub(a, b))) as tf.Scalar;
}

/** Critic side: real scored 1, fake scored 0. */
export function lsganCritic(real: tf.Tensor, fake: tf.Tensor): tf.Scalar {
  return tf.add(tf.mean(tf.square(tf.sub(real, 1))), tf.mean(tf.square(fake))) as tf.Scalar;
}

/** Generator side: fakes should be scored as real (1). */
export function lsganGenerator(fake: tf.Tensor): tf.Scalar {
  return tf.mean(tf.square(tf.sub(fake, 1))) as tf.Scalar;
}

/** Wasserstein critic: minimise D(fake) - D(real). */
export function wganCritic(real: tf.Tensor, fake: tf.Tensor): tf.Scalar {
  return tf.sub(tf.mean(fake), tf.mean(real)) as tf.Scalar;
}

export function wganGenerator(fake: tf.Tensor): tf.Scalar {
  return tf.neg(tf.mean(fake)) as tf.Scalar;
}

/**
 * Gradient penalty (Gulrajani et al.): mean over samples of (||grad_x D(x_hat)||_2 - 1)^2 at
 * x_hat = eps * real + (1 - eps) * fake, eps ~ U(0,1) per sample. The inner gradient stays on the
 * tape, so differentiating this with respect to the critic's variables is second order.
 */
export function gradientPenalty(critic: (x: tf.Tensor4D) => tf.Tensor1D, real: tf.Tensor4D, fake: tf.Tensor4D, eps: tf.Tensor1D): tf.Scalar {
  const e = tf.reshape(eps, [-1, 1, 1, 1]);
  const xHat = tf.add(tf.mul(e, real), tf.mul(tf.sub(1, e), fake)) as tf.Tensor4D;
  const g = tf.grad((x: tf.Tensor) => tf.sum(critic(x as tf.Tensor4D)))(xHat);
  const norm = tf.sqrt(tf.add(tf.sum(tf.square(g), [1, 2, 3]), 1e-12));
  return tf.mean(tf.square(tf.sub(norm, 1))) as tf.Scalar;
}

/**
 * The image critics' adversarial loss by name: the critic's and the generator's side, and whether a
 * gradient penalty joins the critic's (WGAN-GP's Lipschitz constraint; least squares needs none).
 */
export const IMAGE_GAN = {
  'wgan-gp': { critic: wganCritic, generator: wganGenerator, penalty: true },
  lsgan: { critic: lsganCritic, generator: lsganGenerator, penalty: false },
} as const;
