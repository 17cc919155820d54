/**
 * Dilated DenseNet (Huang et al.; dilated as in Murez et al. 5.3): output stride 8, the last two
 * dense blocks dilated (2 and 4) instead of preceded by strided pooling, then a dilation-2 and a
 * dilation-1 3x3 conv (randomly initialised) against gridding. Layer names follow Keras'
 * DenseNet121 (conv1/conv, conv2_block1_0_bn, pool2_conv, bn, ...) so ImageNet weights map by name.
 * Width and depth are configuration: DenseNet121 is blocks [6, 12, 24, 16], growth 32, stem 64.
 */
import { avgPool, batchNorm, contextHead, conv2d, denseConnect, maxPool, recomputed, relu, sequential, Store, zeroPad, type ExportLayer } from './layers';
import { encoderOf, type Encoder } from './net';

export interface DenseNetOptions {
  blocks: number[];
  growth: number;
  stem: number;
  /** Bottleneck width multiplier (1x1 conv to bnSize * growth). */
  bnSize: number;
  compression: number;
  /** Dilation of each block; a block with dilation > 1 is not preceded by a strided pool. */
  dilations: number[];
  /** Channels of the two anti-gridding convs after the backbone (0 to omit them). */
  headChannels: number;
  /** Recompute each dense block in the backward pass instead of keeping its activations. */
  recompute?: boolean;
  /** 'keras' (default): explicit padding as Keras' DenseNet; 'same': runs made before it. */
  stemPadding?: 'keras' | 'same';
}

export const DENSENET121: DenseNetOptions = { blocks: [6, 12, 24, 16], growth: 32, stem: 64, bnSize: 4, compression: 0.5, dilations: [1, 1, 2, 4], headChannels: 512 };
/** A variant that trains on a CPU in minutes: same topology, fewer and narrower layers. */
export const DENSENET_SMALL: DenseNetOptions = { blocks: [2, 2, 2, 2], growth: 8, stem: 16, bnSize: 2, compression: 0.5, dilations: [1, 1, 2, 4], headChannels: 32 };

export const DENSENET_BN_EPS = 1.001e-5; // Keras DenseNet's epsilon, so ImageNet statistics reproduce exactly

export function dilatedDenseNet(name: string, seed: number, channelsIn: number, o: DenseNetOptions): Encoder & { outStride: number } {
  const s = new Store(name, seed);
  const stages: ExportLayer[] = [
    // Keras' explicit padding (3 around the stem conv, 1 around the pool), not 'same': at even sizes
    // 'same' pads 2/3 and 0/1, a one-pixel shift from the network the ImageNet weights were trained in.
    conv2d(s, 'conv1/conv', channelsIn, o.stem, 7, 2, { bias: false, ...(o.stemPadding === 'same' ? {} : { pad: 3 }) }), batchNorm(s, 'conv1/bn', o.stem, 0.9, DENSENET_BN_EPS), relu,
    ...(o.stemPadding === 'same' ? [maxPool(3, 2, 'same')] : [zeroPad(1), maxPool(3, 2, 'valid')]),
  ];
  let c = o.stem;
  let stride = 4;
  o.blocks.forEach((n, bi) => {
    const block = `conv${bi + 2}`;
    const d = o.dilations[bi] ?? 1;
    const before = new Set(s.trainable.keys());
    const units: ExportLayer[] = [];
    for (let i = 1; i <= n; i++) {
      const p = `${block}_block${i}`;
      units.push(denseConnect(sequential(
        batchNorm(s, `${p}_0_bn`, c, 0.9, DENSENET_BN_EPS), relu,
        conv2d(s, `${p}_1_conv`, c, o.bnSize * o.growth, 1, 1, { bias: false }),
        batchNorm(s, `${p}_1_bn`, o.bnSize * o.growth, 0.9, DENSENET_BN_EPS), relu,
        conv2d(s, `${p}_2_conv`, o.bnSize * o.growth, o.growth, 3, 1, { bias: false, dilation: d }),
      )));
      c += o.growth;
    }
    const denseBlock = sequential(...units);
    stages.push(o.recompute ? recomputed(denseBlock, [...s.trainable].filter(([k]) => !before.has(k)).map(([, v]) => v)) : denseBlock);
    if (bi < o.blocks.length - 1) {
      // Transition: BN-ReLU-1x1 conv (compression); the pool is dropped before a dilated block.
      const p = `pool${bi + 2}`;
      const out = Math.floor(c * o.compression);
      stages.push(batchNorm(s, `${p}_bn`, c, 0.9, DENSENET_BN_EPS), relu, conv2d(s, `${p}_conv`, c, out, 1, 1, { bias: false }));
      if ((o.dilations[bi + 1] ?? 1) === 1) {
        stages.push(avgPool(2, 2, 'valid'));
        stride *= 2;
      }
      c = out;
    }
  });
  stages.push(batchNorm(s, 'bn', c, 0.9, DENSENET_BN_EPS), relu);
  const head = contextHead(s, c, o.headChannels);
  stages.push(head.layer);
  return { ...encoderOf(name, s, sequential(...stages), [0, 0, head.channels]), outStride: stride };
}
