/**
 * A small DenseNet for 32x32 digits (the paper's DenseNet option of section 4.1 at CPU size): stem
 * conv, then dense blocks (BN-ReLU-conv3x3, growth k, concatenated) separated by transitions
 * (BN-ReLU-conv1x1 with compression 0.5, avg-pool 2). Configurations written before it had its own
 * name call it 'densenet-small' (registry.ts).
 */
import { avgPool, batchNorm, conv2d, denseConnect, relu, sequential, Store, type ExportLayer } from './layers';
import { encoderOf, type Encoder } from './net';

export interface DenseNetDigitsOptions { growth: number; layersPerBlock: number[]; stem: number }
export const DENSENET_DIGITS: DenseNetDigitsOptions = { growth: 12, layersPerBlock: [4, 4, 4], stem: 24 };

export function denseNetDigitsEncoder(name: string, seed: number, inShape: [number, number, number], opts = DENSENET_DIGITS): Encoder {
  const s = new Store(name, seed);
  const stages: ExportLayer[] = [conv2d(s, 'stem', inShape[2], opts.stem, 3, 2, { bias: false })];
  let c = opts.stem;
  opts.layersPerBlock.forEach((n, bi) => {
    for (let li = 0; li < n; li++) {
      const bn = batchNorm(s, `block${bi + 1}/l${li + 1}/bn`, c);
      const conv = conv2d(s, `block${bi + 1}/l${li + 1}/conv`, c, opts.growth, 3, 1, { bias: false });
      stages.push(denseConnect(sequential(bn, relu, conv)));
      c += opts.growth;
    }
    const cout = Math.floor(c / 2);
    stages.push(batchNorm(s, `trans${bi + 1}/bn`, c), relu, conv2d(s, `trans${bi + 1}/conv`, c, cout, 1, 1, { bias: false }), avgPool(2, 2, 'valid'));
    c = cout;
  });
  stages.push(batchNorm(s, 'final/bn', c), relu);
  const div = 2 * 2 ** opts.layersPerBlock.length;
  return encoderOf(name, s, sequential(...stages), [Math.floor(inShape[0] / div), Math.floor(inShape[1] / div), c]);
}
