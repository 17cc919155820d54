/**
 * Dilated ResNet (He et al.; dilated as in Murez et al. 5.3 and Yu et al.): output stride 8, the
 * last two stages dilated (2 and 4) instead of strided, then a dilation-2 and a dilation-1 3x3 conv
 * (randomly initialised) against gridding. Layer names and the stem's explicit padding follow Keras'
 * ResNet50 (conv1, bn_conv1, res2a_branch2a, bn2a_branch2a, res2a_branch1, ...), so its ImageNet
 * weights load by name and, undilated, reproduce Keras' features exactly. ResNet34 (basic blocks)
 * uses the same naming. `undilated` options give the classification backbone (output stride 32).
 */
import { batchNorm, contextHead, conv2d, maxPool, relu, residual, sequential, Store, zeroPad, type ExportLayer } from './layers';
import { encoderOf, type Encoder } from './net';

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

/**
 * The classification form (Office, 5.2): the same network without dilation or context head, so
 * output stride 32 (7x7 features of a 224 crop) and Keras' ImageNet features unchanged.
 */
export function undilated(o: ResNetOptions): ResNetOptions {
  return { ...o, dilations: o.blocks.map(() => 1), headChannels: 0 };
}

export const RESNET_BN_EPS = 1e-3; // Keras ResNet50's epsilon
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

export function dilatedResNet(name: string, seed: number, channelsIn: number, o: ResNetOptions): Encoder & { outStride: number } {
  const s = new Store(name, seed);
  const stages: ExportLayer[] = [
    conv2d(s, 'conv1', channelsIn, 64, 7, 2, { pad: 3 }), batchNorm(s, 'bn_conv1', 64, 0.99, RESNET_BN_EPS), relu,
    // Keras: ZeroPadding2D(1) then a 3x3 stride-2 'valid' max pool (inputs are >= 0 after ReLU).
    zeroPad(1), maxPool(3, 2, 'valid'),
  ];
  const expansion = o.block === 'bottleneck' ? 4 : 1;
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
      const conv = (branch: string, cin: number, cout: number, k: number, cs: number, dil = 1) => sequential(
        conv2d(s, `res${tag}_branch${branch}`, cin, cout, k, cs, { dilation: dil }),
        batchNorm(s, `bn${tag}_branch${branch}`, cout, 0.99, RESNET_BN_EPS),
      );
      const w = o.widths[si];
      const body = o.block === 'bottleneck'
        ? sequential(conv('2a', c, w, 1, st), relu, conv('2b', w, w, 3, 1, d), relu, conv('2c', w, out, 1, 1))
        : sequential(conv('2a', c, w, 3, st, st === 1 ? d : 1), relu, conv('2b', w, out, 3, 1, d));
      const shortcut = st !== 1 || c !== out ? conv('1', c, out, 1, st) : undefined;
      stages.push(residual(body, shortcut), relu);
      c = out;
    }
  });
  const head = contextHead(s, c, o.headChannels);
  stages.push(head.layer);
  return { ...encoderOf(name, s, sequential(...stages), [0, 0, head.channels]), outStride: stride };
}
