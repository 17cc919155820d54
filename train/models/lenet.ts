/** The modified LeNet of section 5.1 (digits): 4 conv 4x4 stride 2 (64, 64, 128, 128), each with BN and ReLU. */
import { batchNorm, conv2d, relu, sequential, Store, type ExportLayer } from './layers';
import { encoderOf, type Encoder } from './net';

export function lenetEncoder(name: string, seed: number, inShape: [number, number, number], widths = [64, 64, 128, 128]): Encoder {
  const s = new Store(name, seed);
  const layers: ExportLayer[] = [];
  let c = inShape[2];
  widths.forEach((w, i) => {
    layers.push(conv2d(s, `conv${i + 1}`, c, w, 4, 2, { bias: false }), batchNorm(s, `bn${i + 1}`, w), relu);
    c = w;
  });
  const div = 2 ** widths.length;
  return encoderOf(name, s, sequential(...layers), [Math.ceil(inShape[0] / div), Math.ceil(inShape[1] / div), c]);
}
