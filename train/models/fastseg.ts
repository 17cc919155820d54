/**
 * A segmentation encoder built for CPU real time: Fast-SCNN's layout (Poudel et al. 2019) with
 * plain convolutions. A shared "learning to downsample" stem reaches output stride 8 in three
 * stride-2 3x3 convs; a global branch goes on to stride 32 (residual 3x3 blocks at 16 and 32) for
 * context; the two meet by a bilinear upsampling of the global branch added to a 1x1 projection of
 * the stride-8 features (the two-branch idea of BiSeNet at one stem's cost). Early downsampling keeps
 * the large maps thin; the wide layers run on maps 16x and 64x smaller than the stride-8 one.
 *
 * Plain 3x3 convs rather than Fast-SCNN's depthwise-separable ones: they are the op this project's
 * training kernels (core/wasm-kernels) and int8 exporter already run fast, and int8 TFLite's
 * 3x3 convs run near 48 GFLOP/s here. Measured (bench:student-latency, int8, one thread,
 * 512x1024, logits not upsampled): this encoder 28 ms; MobileNetV2s (train/models/mobilenetv2.ts)
 * 285-1324 ms, the lightest at 2-2.2x the FLOPs 10-14x slower, undilated ones included. Keras
 * publishes no ImageNet weights for it: it trains from scratch.
 */
import * as tf from '../../core/tf';
import { upsampleBilinear } from '../../core/upsample';
import { batchNorm, conv2d, relu, residual, sequential, Store, type ExportLayer } from './layers';
import { encoderOf, type Encoder } from './net';

export interface FastSegOptions {
  /** Widths of the three stride-2 stem convs (strides 2, 4, 8). */
  stem: [number, number, number];
  /** Widths of the global branch at strides 16 and 32, and its residual blocks at each. */
  global: [number, number];
  blocks: [number, number];
  /** Channels of the fused stride-8 features (the encoder's output). */
  out: number;
}

/** The student of bench:distill (chosen by its int8 latency at 512x1024: README, "Distillation"). */
export const FASTSEG: FastSegOptions = { stem: [16, 32, 48], global: [64, 96], blocks: [1, 1], out: 64 };

/** relu(a(x) + resize(b(x)) to a's size): the fusion of a full-resolution and a coarse branch. */
function fuse(a: ExportLayer, b: ExportLayer): ExportLayer {
  return {
    apply: (x, mode) => {
      const hi = a.apply(x, mode), lo = b.apply(x, mode);
      return tf.relu(tf.add(hi, upsampleBilinear(lo, [hi.shape[1], hi.shape[2]]))) as tf.Tensor4D;
    },
    emit: (g, x) => {
      const hi = a.emit(g, x), lo = b.emit(g, x);
      const [, h, w] = g.shapes[hi];
      return g.relu(g.add(hi, g.resize(lo, [h, w])));
    },
  };
}

export function fastSeg(name: string, seed: number, channelsIn: number, o: FastSegOptions = FASTSEG): Encoder & { outStride: number } {
  const s = new Store(name, seed);
  const cbr = (tag: string, cin: number, cout: number, k: number, stride: number) =>
    sequential(conv2d(s, tag, cin, cout, k, stride, { bias: false }), batchNorm(s, `${tag}_bn`, cout), relu);
  const block = (tag: string, c: number) => sequential(residual(sequential(
    conv2d(s, `${tag}_a`, c, c, 3, 1, { bias: false }), batchNorm(s, `${tag}_a_bn`, c), relu,
    conv2d(s, `${tag}_b`, c, c, 3, 1, { bias: false }), batchNorm(s, `${tag}_b_bn`, c),
  )), relu);
  const [c1, c2, c3] = o.stem, [g1, g2] = o.global;
  const stem = sequential(cbr('down1', channelsIn, c1, 3, 2), cbr('down2', c1, c2, 3, 2), cbr('down3', c2, c3, 3, 2));
  const global = sequential(
    cbr('global16', c3, g1, 3, 2), ...Array.from({ length: o.blocks[0] }, (_, i) => block(`global16_${i}`, g1)),
    cbr('global32', g1, g2, 3, 2), ...Array.from({ length: o.blocks[1] }, (_, i) => block(`global32_${i}`, g2)),
    conv2d(s, 'global_proj', g2, o.out, 1, 1, { bias: false }), batchNorm(s, 'global_proj_bn', o.out),
  );
  const detail = sequential(conv2d(s, 'detail_proj', c3, o.out, 1, 1, { bias: false }), batchNorm(s, 'detail_proj_bn', o.out));
  const body = sequential(stem, fuse(detail, global));
  return { ...encoderOf(name, s, body, [0, 0, o.out]), outStride: 8 };
}
