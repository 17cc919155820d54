/**
 * The networks besides the encoders (those are in registry.ts): classifiers, decoders, critics.
 * They know nothing of adaptation: train/i2i.ts composes them. Paper symbols: f = encoder,
 * h = classifier, g_x / g_y = source / target decoders (first two layers shared, here the network
 * `g_shared`), D_z = feature critic, D_x / D_y = image critics.
 */
import * as tf from '../../core/tf';
import { UserError } from '../../core/errors';
import { batchNorm, convTranspose, conv2d, dense, instanceNorm, leaky, leakyLayer, relu, sequential, Store, tanhLayer, type Layer, type Mode } from './layers';
import type { ExportNet, Net } from './net';

export type { Encoder, ExportNet, Net } from './net';

/** h: flatten the latent map, one linear layer to class logits. */
export function linearClassifier(name: string, seed: number, zShape: [number, number, number], classes: number): ExportNet<tf.Tensor4D, tf.Tensor2D> {
  const s = new Store(name, seed);
  const d = zShape[0] * zShape[1] * zShape[2];
  const fc = dense(s, 'fc', d, classes);
  return { name, store: s, apply: (z) => fc.apply(tf.reshape(z, [z.shape[0], d])), emit: (g, z) => fc.emit(g, g.flatten(z)) };
}

/**
 * h after global average pooling (Office, 5.2): the mean of each feature channel over the map, one
 * linear layer to class logits. Exported as an average pool over the whole (square) map.
 */
export function gapClassifier(name: string, seed: number, channels: number, classes: number): ExportNet<tf.Tensor4D, tf.Tensor2D> {
  const s = new Store(name, seed);
  const fc = dense(s, 'fc', channels, classes);
  return {
    name, store: s,
    apply: (z) => fc.apply(tf.mean(z, [1, 2]) as tf.Tensor2D),
    emit: (g, z) => {
      const [, h, w] = g.shape(z);
      if (h !== w) throw new Error(`gapClassifier: the export pools a square map, got ${h}x${w}`);
      return fc.emit(g, g.flatten(g.pool('avgpool', z, h, h, 'valid')));
    },
  };
}

/** A decoder g = head(g_shared(z)); `head` alone runs on g_shared's output. */
export type Decoder = Net<tf.Tensor4D, tf.Tensor4D> & { head: (x: tf.Tensor4D, mode: Mode) => tf.Tensor4D };

/**
 * Decoders: 4x4 stride-2 transposed convs (widths, then the image channels), BN+ReLU, tanh last.
 * The first two layers form `g_shared`, used by both g_x and g_y (one set of variables).
 */
export function decoders(seed: number, zShape: [number, number, number], outShape: [number, number, number], widths = [512, 256, 128]) {
  const steps = Math.round(Math.log2(outShape[0] / zShape[0]));
  if (2 ** steps * zShape[0] !== outShape[0] || steps !== widths.length + 1) {
    throw new UserError(`Decoders of ${widths.length + 1} stride-2 layers (model.decoderWidths ${JSON.stringify(widths)}) cannot map the ${zShape[0]}x${zShape[1]} features to ${outShape[0]}x${outShape[1]} images.`,
      `Give model.decoderWidths ${steps - 1} widths (digits 3, Office 4), or an image size that is the features' side times 2^(widths + 1).`);
  }
  const shared = new Store('g_shared', seed);
  const trunk: Layer[] = [];
  let c = zShape[2];
  for (let i = 0; i < 2; i++) {
    trunk.push(convTranspose(shared, `deconv${i + 1}`, c, widths[i], 4, 2, { bias: false }), batchNorm(shared, `bn${i + 1}`, widths[i]), relu);
    c = widths[i];
  }
  const trunkLayer = sequential(...trunk);
  const trunkNet: Net<tf.Tensor4D, tf.Tensor4D> = { name: 'g_shared', store: shared, apply: (x, mode) => trunkLayer.apply(x, mode) };
  const head = (name: string): Decoder => {
    const s = new Store(name, seed + name.length);
    const layers: Layer[] = [];
    let ch = c;
    for (let i = 2; i < widths.length; i++) {
      layers.push(convTranspose(s, `deconv${i + 1}`, ch, widths[i], 4, 2, { bias: false }), batchNorm(s, `bn${i + 1}`, widths[i]), relu);
      ch = widths[i];
    }
    layers.push(convTranspose(s, `deconv${widths.length + 1}`, ch, outShape[2], 4, 2), tanhLayer);
    const own = sequential(...layers);
    const headOnly = (x: tf.Tensor4D, mode: Mode) => own.apply(x, mode);
    return { name, store: s, head: headOnly, apply: (z, mode) => headOnly(trunkNet.apply(z, mode), mode) };
  };
  return { shared: trunkNet, gx: head('g_x'), gy: head('g_y') };
}

/** D_z: linear 500, 500, 1 with leaky ReLU 0.2 between; a least-squares GAN critic on features. */
export function featureCritic(name: string, seed: number, zShape: [number, number, number], widths = [500, 500]): Net<tf.Tensor4D, tf.Tensor2D> {
  const s = new Store(name, seed);
  const d = zShape[0] * zShape[1] * zShape[2];
  const fcs = [...widths, 1].map((w, i, all) => dense(s, `fc${i + 1}`, i === 0 ? d : all[i - 1], w, 'he'));
  return {
    name, store: s,
    apply: (z) => {
      let h = tf.reshape(z, [z.shape[0], d]) as tf.Tensor2D;
      fcs.forEach((fc, i) => { h = fc.apply(h); if (i < fcs.length - 1) h = leaky(h); });
      return h;
    },
  };
}

/**
 * D_x / D_y: 4x4 stride-2 convs (64, 128, 256, then 1), instance norm and leaky ReLU 0.2.
 * No sigmoid or tanh: WGAN-GP differentiates this twice. Output: one score per sample (the mean
 * of the final patch map).
 */
export type ImageCritic = Net<tf.Tensor4D, tf.Tensor1D> & {
  /** The patch scores [n, h/16, w/16, 1] whose mean `apply` is: what least squares scores (PatchGAN). */
  patches(x: tf.Tensor4D, mode: Mode): tf.Tensor4D;
};

export function imageCritic(name: string, seed: number, inShape: [number, number, number], widths = [64, 128, 256]): ImageCritic {
  const s = new Store(name, seed);
  const layers: Layer[] = [];
  let c = inShape[2];
  widths.forEach((w, i) => {
    layers.push(conv2d(s, `conv${i + 1}`, c, w, 4, 2), instanceNorm(s, `in${i + 1}`, w), leakyLayer);
    c = w;
  });
  layers.push(conv2d(s, `conv${widths.length + 1}`, c, 1, 4, 2));
  const body = sequential(...layers);
  return { name, store: s, patches: (x, mode) => body.apply(x, mode), apply: (x, mode) => tf.mean(body.apply(x, mode), [1, 2, 3]) as tf.Tensor1D };
}

/** Per-pixel classifier for segmentation: a 1x1 conv from the latent map to class logits. */
export function pixelClassifier(name: string, seed: number, channels: number, classes: number): ExportNet<tf.Tensor4D, tf.Tensor4D> {
  const s = new Store(name, seed);
  const conv = conv2d(s, 'conv', channels, classes, 1, 1);
  return { name, store: s, apply: (z, mode) => conv.apply(z, mode), emit: (g, z) => conv.emit(g, z) };
}

/**
 * Segmentation decoders (5.3): a 3x3 conv, then three 4x4 stride-2 transposed convs back to the
 * image from output stride 8; widths 512/256/128 then 3 (tanh). The 3x3 conv and the first
 * transposed conv form `g_shared`.
 */
export function segmentationDecoders(seed: number, channels: number, widths = [512, 256, 128], imageChannels = 3) {
  const shared = new Store('g_shared', seed);
  const trunk = sequential(
    conv2d(shared, 'conv1', channels, widths[0], 3, 1, { bias: false }), batchNorm(shared, 'bn1', widths[0]), relu,
    convTranspose(shared, 'deconv2', widths[0], widths[1], 4, 2, { bias: false }), batchNorm(shared, 'bn2', widths[1]), relu,
  );
  const trunkNet: Net<tf.Tensor4D, tf.Tensor4D> = { name: 'g_shared', store: shared, apply: (x, mode) => trunk.apply(x, mode) };
  const head = (name: string): Decoder => {
    const s = new Store(name, seed + name.length);
    const own = sequential(
      convTranspose(s, 'deconv3', widths[1], widths[2], 4, 2, { bias: false }), batchNorm(s, 'bn3', widths[2]), relu,
      convTranspose(s, 'deconv4', widths[2], imageChannels, 4, 2), tanhLayer,
    );
    const headOnly = (x: tf.Tensor4D, mode: Mode) => own.apply(x, mode);
    return { name, store: s, head: headOnly, apply: (z, mode) => headOnly(trunkNet.apply(z, mode), mode) };
  };
  return { shared: trunkNet, gx: head('g_x'), gy: head('g_y') };
}

/**
 * D_z for feature maps (the paper's 1x1-conv feature discriminator; FCNs in the wild): 1x1 convs
 * (widths, then 1) with leaky ReLU 0.2 between, one least-squares score per feature-map position.
 */
export function pixelFeatureCritic(name: string, seed: number, channels: number, widths = [500, 500]): Net<tf.Tensor4D, tf.Tensor4D> {
  const s = new Store(name, seed);
  const convs = [...widths, 1].map((w, i, all) => conv2d(s, `conv${i + 1}`, i === 0 ? channels : all[i - 1], w, 1, 1));
  return {
    name, store: s,
    apply: (z, mode) => {
      let h = z;
      convs.forEach((conv, i) => { h = conv.apply(h, mode); if (i < convs.length - 1) h = leaky(h); });
      return h;
    },
  };
}
