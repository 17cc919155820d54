/**
 * A depthwise-separable latency candidate for the real-time student (bench:student-latency): the
 * MobileNetV2 encoder (Sandler et al. 2018) as DeepLabV3 uses it for segmentation. A 3x3 stride-2
 * stem conv, then stages of inverted residual blocks: expand 1x1 (t times the input width) + BN +
 * ReLU, depthwise 3x3 + BN + ReLU, project 1x1 + BN (linear bottleneck), with an identity shortcut
 * where the block keeps stride and width. Once the output stride is reached, a stage's stride
 * becomes dilation (DeepLab's rule: that stage's first block keeps the rate so far, its later blocks
 * and the stages after it use the rate times the dropped stride), so at output stride 8 the 64-wide
 * stage runs at rates 1, 2, 2, 2, the 96-wide at 2, the 160-wide at 2, 4, 4 and the 320-wide at 4.
 *
 * ReLU, not the paper's ReLU6: the inference IR (ir.ts) has ReLU only, and for a latency candidate
 * the two cost the same (both fuse into the conv before them in TFLite).
 *
 * A latency candidate only, not in the registry (registry.ts): random initialisation, no ImageNet
 * weights. `apply` is the forward pass (tf.depthwiseConv2d with native dilation) for evaluation and
 * for checking the export against; training it would need a differentiable dilated depthwise conv
 * (tfjs has none; layers.ts atrousConv2d is the conv2d version of the cure) and the depthwise
 * backprop kernels wasm lacks.
 */
import * as tf from '../../core/tf';
import { batchNorm, conv2d, relu, residual, sequential, Store, type ExportLayer } from './layers';
import { encoderOf, type Encoder } from './net';

/** One stage of the paper's Table 2: expansion t, output width c, n blocks, first block's stride s. */
export interface InvertedResidualStage { t: number; c: number; n: number; s: number }

/** The paper's Table 2 between the stem and the final 1x1 conv (1280 wide, a classifier's, left out). */
export const MOBILENETV2_STAGES: readonly InvertedResidualStage[] = [
  { t: 1, c: 16, n: 1, s: 1 },
  { t: 6, c: 24, n: 2, s: 2 },
  { t: 6, c: 32, n: 3, s: 2 },
  { t: 6, c: 64, n: 4, s: 2 },
  { t: 6, c: 96, n: 3, s: 1 },
  { t: 6, c: 160, n: 3, s: 2 },
  { t: 6, c: 320, n: 1, s: 1 },
];

export interface MobileNetV2Options {
  /** Width multiplier (the paper's alpha): every width times this, rounded to a multiple of 8. */
  width: number;
  /** How many stages of MOBILENETV2_STAGES to build: 7 ends at 320 channels, 5 at 96. */
  stages: number;
  /** Output stride (a power of 2, at least 2): strides beyond it become dilation. */
  outputStride: number;
}

export const MOBILENETV2: MobileNetV2Options = { width: 1, stages: MOBILENETV2_STAGES.length, outputStride: 8 };

/** The paper's channel rounding: to the nearest multiple of 8, at least 8, never below 90% of `v`. */
export function roundChannels(v: number, divisor = 8): number {
  const r = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return r < 0.9 * v ? r + divisor : r;
}

/** A depthwise 3x3-style conv (depth multiplier 1, 'same' padding, no bias: a batch norm follows). */
function depthwise(s: Store, name: string, c: number, k: number, stride: number, dilation: number): ExportLayer {
  const w = s.param(`${name}/w`, [k, k, c, 1], 'he', k * k);
  return {
    apply: (x) => tf.depthwiseConv2d(x, w as tf.Tensor4D, stride, 'same', 'NHWC', dilation),
    emit: (g, x) => g.depthwise2d(x, { weights: Float32Array.from(w.dataSync() as Float32Array), bias: new Float32Array(c), kernel: [k, k, c, 1], stride, dilation, padding: 'same' }),
  };
}

/** The encoder f; its output is `outStride` times smaller than the input, `outShape[2]` channels. */
export function mobileNetV2(name: string, seed: number, channelsIn: number, o: MobileNetV2Options = MOBILENETV2): Encoder & { outStride: number } {
  if (o.stages < 1 || o.stages > MOBILENETV2_STAGES.length) throw new Error(`mobileNetV2: stages must be 1..${MOBILENETV2_STAGES.length}, not ${o.stages}`);
  const s = new Store(name, seed);
  const bn = (tag: string, c: number) => batchNorm(s, `${tag}_bn`, c);
  const stemWidth = roundChannels(32 * o.width);
  const layers: ExportLayer[] = [sequential(conv2d(s, 'stem', channelsIn, stemWidth, 3, 2, { bias: false }), bn('stem', stemWidth), relu)];
  let cin = stemWidth, stride = 2, rate = 1;
  MOBILENETV2_STAGES.slice(0, o.stages).forEach((st, i) => {
    const cout = roundChannels(st.c * o.width);
    for (let j = 0; j < st.n; j++) {
      const tag = `block${i + 1}_${j + 1}`;
      // Each block's depthwise conv runs at the rate before it; a dropped stride raises the rate for those after.
      const blockRate = rate;
      let blockStride = j === 0 ? st.s : 1;
      if (blockStride > 1 && stride >= o.outputStride) { rate *= blockStride; blockStride = 1; }
      else stride *= blockStride;
      const hidden = cin * st.t;
      const body = sequential(
        ...(st.t === 1 ? [] : [conv2d(s, `${tag}_expand`, cin, hidden, 1, 1, { bias: false }), bn(`${tag}_expand`, hidden), relu]),
        depthwise(s, `${tag}_dw`, hidden, 3, blockStride, blockRate), bn(`${tag}_dw`, hidden), relu,
        conv2d(s, `${tag}_project`, hidden, cout, 1, 1, { bias: false }), bn(`${tag}_project`, cout),
      );
      layers.push(blockStride === 1 && cin === cout ? residual(body) : body);
      cin = cout;
    }
  });
  return { ...encoderOf(name, s, sequential(...layers), [0, 0, cin]), outStride: stride };
}
