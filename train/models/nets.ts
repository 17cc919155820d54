/**
 * The networks of section 5.1 (digits). They know nothing of adaptation: train/i2i.ts composes
 * them. Paper symbols: f = encoder, h = classifier, g_x / g_y = source / target decoders (first two
 * layers shared, here the network `g_shared`), D_z = feature critic, D_x / D_y = image critics.
 */
import * as tf from '../../core/tf';
import { batchNorm, convTranspose, conv2d, dense, instanceNorm, leaky, relu, sequential, Store, type Layer, type Mode } from './layers';

export interface Net<I extends tf.Tensor = tf.Tensor4D, O extends tf.Tensor = tf.Tensor> {
  name: string;
  store: Store;
  apply(x: I, mode: Mode): O;
}

export type Encoder = Net<tf.Tensor4D, tf.Tensor4D> & { outShape: [number, number, number] };

/** Modified LeNet: 4 conv 4x4 stride 2 (64, 64, 128, 128), each with BN and ReLU. */
export function lenetEncoder(name: string, seed: number, inShape: [number, number, number], widths = [64, 64, 128, 128]): Encoder {
  const s = new Store(name, seed);
  const layers: Layer[] = [];
  let c = inShape[2];
  widths.forEach((w, i) => {
    layers.push(conv2d(s, `conv${i + 1}`, c, w, 4, 2, { bias: false }), batchNorm(s, `bn${i + 1}`, w), relu);
    c = w;
  });
  const div = 2 ** widths.length;
  return { name, store: s, apply: sequential(...layers), outShape: [Math.ceil(inShape[0] / div), Math.ceil(inShape[1] / div), c] };
}

/**
 * A small DenseNet for 32x32 digits: stem conv, then dense blocks (BN-ReLU-conv3x3, growth k,
 * concatenated) separated by transitions (BN-ReLU-conv1x1 with compression 0.5, avg-pool 2).
 */
export function denseNetSmallEncoder(name: string, seed: number, inShape: [number, number, number], opts = { growth: 12, layersPerBlock: [4, 4, 4], stem: 24 }): Encoder {
  const s = new Store(name, seed);
  const stem = conv2d(s, 'stem', inShape[2], opts.stem, 3, 2, { bias: false });
  let c = opts.stem;
  const blocks: Layer[] = [];
  opts.layersPerBlock.forEach((n, bi) => {
    const units: { bn: Layer; conv: Layer }[] = [];
    for (let li = 0; li < n; li++) {
      units.push({ bn: batchNorm(s, `block${bi + 1}/l${li + 1}/bn`, c), conv: conv2d(s, `block${bi + 1}/l${li + 1}/conv`, c, opts.growth, 3, 1, { bias: false }) });
      c += opts.growth;
    }
    const cin = c;
    const cout = Math.floor(c / 2);
    const tbn = batchNorm(s, `trans${bi + 1}/bn`, cin);
    const tconv = conv2d(s, `trans${bi + 1}/conv`, cin, cout, 1, 1, { bias: false });
    c = cout;
    blocks.push((x, mode) => {
      let h = x;
      for (const u of units) h = tf.concat([h, u.conv(tf.relu(u.bn(h, mode)), mode)], 3);
      const t = tconv(tf.relu(tbn(h, mode)), mode);
      return tf.avgPool(t, 2, 2, 'valid');
    });
  });
  const finalBn = batchNorm(s, 'final/bn', c);
  const div = 2 * 2 ** opts.layersPerBlock.length;
  return {
    name, store: s,
    apply: (x, mode) => tf.relu(finalBn(blocks.reduce((h, b) => b(h, mode), stem(x, mode)), mode)) as tf.Tensor4D,
    outShape: [Math.floor(inShape[0] / div), Math.floor(inShape[1] / div), c],
  };
}

/** h: flatten the latent map, one linear layer to class logits. */
export function linearClassifier(name: string, seed: number, zShape: [number, number, number], classes: number): Net<tf.Tensor4D, tf.Tensor2D> {
  const s = new Store(name, seed);
  const d = zShape[0] * zShape[1] * zShape[2];
  const fc = dense(s, 'fc', d, classes);
  return { name, store: s, apply: (z) => fc(tf.reshape(z, [z.shape[0], d])) };
}

/** A decoder g = head(g_shared(z)); `head` alone runs on g_shared's output. */
export type Decoder = Net<tf.Tensor4D, tf.Tensor4D> & { head: Layer };

/**
 * Decoders: 4x4 stride-2 transposed convs (widths, then the image channels), BN+ReLU, tanh last.
 * The first two layers form `g_shared`, used by both g_x and g_y (one set of variables).
 */
export function decoders(seed: number, zShape: [number, number, number], outShape: [number, number, number], widths = [512, 256, 128]) {
  const steps = Math.round(Math.log2(outShape[0] / zShape[0]));
  if (2 ** steps * zShape[0] !== outShape[0] || steps !== widths.length + 1) {
    throw new Error(`decoder: ${widths.length + 1} stride-2 layers cannot map ${zShape[0]}x${zShape[1]} to ${outShape[0]}x${outShape[1]}`);
  }
  const shared = new Store('g_shared', seed);
  const trunk: Layer[] = [];
  let c = zShape[2];
  for (let i = 0; i < 2; i++) {
    trunk.push(convTranspose(shared, `deconv${i + 1}`, c, widths[i], 4, 2, { bias: false }), batchNorm(shared, `bn${i + 1}`, widths[i]), relu);
    c = widths[i];
  }
  const trunkNet: Net<tf.Tensor4D, tf.Tensor4D> = { name: 'g_shared', store: shared, apply: sequential(...trunk) };
  const head = (name: string): Decoder => {
    const s = new Store(name, seed + name.length);
    const layers: Layer[] = [];
    let ch = c;
    for (let i = 2; i < widths.length; i++) {
      layers.push(convTranspose(s, `deconv${i + 1}`, ch, widths[i], 4, 2, { bias: false }), batchNorm(s, `bn${i + 1}`, widths[i]), relu);
      ch = widths[i];
    }
    layers.push(convTranspose(s, `deconv${widths.length + 1}`, ch, outShape[2], 4, 2), (x) => tf.tanh(x));
    const own = sequential(...layers);
    return { name, store: s, head: own, apply: (z, mode) => own(trunkNet.apply(z, mode), mode) };
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
      fcs.forEach((fc, i) => { h = fc(h); if (i < fcs.length - 1) h = leaky(h); });
      return h;
    },
  };
}

/**
 * D_x / D_y: 4x4 stride-2 convs (64, 128, 256, then 1), instance norm and leaky ReLU 0.2.
 * No sigmoid or tanh: WGAN-GP differentiates this twice. Output: one score per sample (the mean
 * of the final patch map).
 */
export function imageCritic(name: string, seed: number, inShape: [number, number, number], widths = [64, 128, 256]): Net<tf.Tensor4D, tf.Tensor1D> {
  const s = new Store(name, seed);
  const layers: Layer[] = [];
  let c = inShape[2];
  widths.forEach((w, i) => {
    layers.push(conv2d(s, `conv${i + 1}`, c, w, 4, 2), instanceNorm(s, `in${i + 1}`, w), leaky);
    c = w;
  });
  layers.push(conv2d(s, `conv${widths.length + 1}`, c, 1, 4, 2));
  const body = sequential(...layers);
  return { name, store: s, apply: (x, mode) => tf.mean(body(x, mode), [1, 2, 3]) as tf.Tensor1D };
}

/** Per-pixel classifier for segmentation: a 1x1 conv from the latent map to class logits. */
export function pixelClassifier(name: string, seed: number, channels: number, classes: number): Net<tf.Tensor4D, tf.Tensor4D> {
  const s = new Store(name, seed);
  const conv = conv2d(s, 'conv', channels, classes, 1, 1);
  return { name, store: s, apply: (z, mode) => conv(z, mode) };
}

/**
 * Segmentation decoders (5.3): a 3x3 conv, then three 4x4 stride-2 transposed convs back to the
 * image from output stride 8; widths 512/256/128 then 3 (tanh). The 3x3 conv and the first
 * transposed conv form `g_shared`.
 */
export function segmentationDecoders(seed: number, channels: number, widths = [512, 256, 128], imageChannels = 3) {
  const shared = new Store('g_shared', seed);
  const trunkNet: Net<tf.Tensor4D, tf.Tensor4D> = {
    name: 'g_shared', store: shared,
    apply: sequential(
      conv2d(shared, 'conv1', channels, widths[0], 3, 1, { bias: false }), batchNorm(shared, 'bn1', widths[0]), relu,
      convTranspose(shared, 'deconv2', widths[0], widths[1], 4, 2, { bias: false }), batchNorm(shared, 'bn2', widths[1]), relu,
    ),
  };
  const head = (name: string): Decoder => {
    const s = new Store(name, seed + name.length);
    const own = sequential(
      convTranspose(s, 'deconv3', widths[1], widths[2], 4, 2, { bias: false }), batchNorm(s, 'bn3', widths[2]), relu,
      convTranspose(s, 'deconv4', widths[2], imageChannels, 4, 2), (x) => tf.tanh(x),
    );
    return { name, store: s, head: own, apply: (z, mode) => own(trunkNet.apply(z, mode), mode) };
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
      convs.forEach((conv, i) => { h = conv(h, mode); if (i < convs.length - 1) h = leaky(h); });
      return h;
    },
  };
}
