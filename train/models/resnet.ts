/**
 * Dilated ResNet (He et al.; dilated as in Murez et al. 5.3 and Yu et al.): output stride 8, the
 * last two stages dilated (2 and 4) instead of strided, then a dilation-2 and a dilation-1 3x3 conv
 * (randomly initialised) against gridding. Layer names and the stem's explicit padding follow Keras'
 * ResNet50 (conv1, bn_conv1, res2a_branch2a, bn2a_branch2a, res2a_branch1, ...), so its ImageNet
 * weights load by name and, undilated, reproduce Keras' features exactly. ResNet34 (basic blocks)
 * uses the same naming.
 */
import * as tf from '../../core/tf';
import { batchNorm, contextHead, conv2d, Store, type Layer, type Mode } from './layers';
import type { Encoder } from './nets';

export interface ResNetOptions {
  block: 'basic' | 'bottleneck';
  blocks: number[];
  widths: number[];
  /** Dilation of each stage (2..5); a dilated stage keeps stride 1. */
  dilations: number[];
  headChannels: number;
}

export const RESNET50: ResNetOptions = { block: 'bottleneck', blocks: [3, 4, 6, 3], widths: [64, 128, 256, 512], dilations: [1, 1, 2, 4], headChannels: 512 };
export const RESNET34: ResNetOptions = { block: 'basic', blocks: [3, 4, 6, 3], widths: [64, 128, 256, 512], dilations: [1, 1, 2, 4], headChannels: 512 };

export const RESNET_BN_EPS = 1e-3; // Keras ResNet50's epsilon
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

export function dilatedResNet(name: string, seed: number, channelsIn: number, o: ResNetOptions): Encoder & { outStride: number } {
  const s = new Store(name, seed);
  const relu = (x: tf.Tensor4D) => tf.relu(x);
  const stemConv = conv2d(s, 'conv1', channelsIn, 64, 7, 2, { pad: 3 });
  const stemBn = batchNorm(s, 'bn_conv1', 64, 0.99, RESNET_BN_EPS);
  const expansion = o.block === 'bottleneck' ? 4 : 1;
  const units: Layer[] = [];
  let c = 64;
  let stride = 4;
  o.blocks.forEach((n, si) => {
    const stage = si + 2;
    const d = o.dilations[si] ?? 1;
    for (let bi = 0; bi < n; bi++) {
      const tag = `${stage}${LETTERS[bi]}`;
      const st = bi === 0 && stage > 2 && d === 1 ? 2 : 1;
      if (st === 2) stride *= 2;
      const out = o.widths[si] * expansion;
      const conv = (branch: string, cin: number, cout: number, k: number, cs: number, dil = 1) => {
        const cv = conv2d(s, `res${tag}_branch${branch}`, cin, cout, k, cs, { dilation: dil });
        const bn = batchNorm(s, `bn${tag}_branch${branch}`, cout, 0.99, RESNET_BN_EPS);
        return (x: tf.Tensor4D, mode: Mode) => bn(cv(x, mode), mode);
      };
      const w = o.widths[si];
      const body = o.block === 'bottleneck'
        ? [conv('2a', c, w, 1, st), conv('2b', w, w, 3, 1, d), conv('2c', w, out, 1, 1)]
        : [conv('2a', c, w, 3, st, st === 1 ? d : 1), conv('2b', w, out, 3, 1, d)];
      const shortcut = st !== 1 || c !== out ? conv('1', c, out, 1, st) : undefined;
      units.push((x, mode) => {
        let h = x;
        body.forEach((l, i) => { h = l(h, mode); if (i < body.length - 1) h = relu(h); });
        return relu(tf.add(h, shortcut ? shortcut(x, mode) : x) as tf.Tensor4D);
      });
      c = out;
    }
  });
  const head = contextHead(s, c, o.headChannels);
  c = head.channels;
  const apply = (x: tf.Tensor4D, mode: Mode): tf.Tensor4D => {
    let h = relu(stemBn(stemConv(x, mode), mode));
    // Keras: ZeroPadding2D(1) then a 3x3 stride-2 'valid' max pool (inputs are >= 0 after ReLU).
    h = tf.maxPool(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid');
    for (const u of units) h = u(h, mode);
    h = head.layer(h, mode);
    return h;
  };
  return { name, store: s, apply, outShape: [0, 0, c], outStride: stride };
}
