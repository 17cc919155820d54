/**
 * The inference graph of a trained encoder + classifier: only what deployment runs (f then h; no
 * decoders, no critics), emitted layer by layer by the model's own networks (train/models); the
 * graph passes (fold.ts)
 * then fold batch norm into the conv before it (or keep it as a per-channel scale and shift where it
 * precedes the conv, DenseNet's pre-activation) and fuse ReLUs. Dilated convs are native dilated
 * convs (the space-to-batch form is a training device). No architecture is described here.
 */
import { UserError } from '../core/errors';
import type { I2IModel } from '../train/i2i';
import { GraphBuilder, type Graph, type RawGraph } from '../train/models/ir';
import { foldGraph } from './fold';

export type { Act, Graph, Node, RawGraph } from '../train/models/ir';

/** Floating-point operations of one inference (a multiply-add counts 2): convs, depthwise convs, dense layers, affines, adds, pools, resizing. */
export function graphFlops(g: Graph): number {
  const numel = (t: number) => g.shapes[t].reduce((a, b) => a * b, 1);
  return g.nodes.reduce((sum, n) => {
    switch (n.op) {
      case 'conv2d': return sum + 2 * numel(n.output) * n.kernel[0] * n.kernel[1] * n.kernel[2];
      case 'depthwise2d': return sum + 2 * numel(n.output) * n.kernel[0] * n.kernel[1];  // one k x k filter per output value
      case 'dense': return sum + 2 * numel(n.input) * n.units;
      case 'affine': return sum + 2 * numel(n.output);
      case 'add': return sum + numel(n.output);
      case 'avgpool': case 'maxpool': return sum + numel(n.output) * n.size * n.size;
      case 'resize': return sum + 8 * numel(n.output);  // 4 taps, a multiply-add each
      default: return sum;
    }
  }, 0);
}

/**
 * Where a segmenter's logits are upsampled to the input size: by a bilinear resize at the end of the
 * model ('model'), or after it by the runtime (runtime/upsample-labels.ts), the model ending at the
 * encoder's output stride ('runtime'). Both give the same labels.
 */
export type Upsample = 'model' | 'runtime';

/**
 * f then h of a live model (restored from its checkpoint: `openRun`) for an input of [1, H, W, C]:
 * the very networks that trained emit themselves. Segmenters output per-pixel logits, upsampled
 * bilinearly to the input size (half-pixel centres, as at evaluation) unless `upsample` is
 * 'runtime'; classifiers output class logits. Target images go through ADDA's untied target
 * encoder where there is one. The encoder's output map is marked as the graph's `features` (pooled
 * per channel, the drift score's input).
 */
export function inferenceGraph(model: I2IModel, inputHW: [number, number], upsample: Upsample): Graph {
  return foldGraph(rawInferenceGraph(model, inputHW, upsample));
}

/** How many input pixels per output pixel along each side (1 for classifiers and models that upsample). */
export function outputStride(g: Graph | RawGraph): number {
  const [, h, w] = g.shapes[g.input], out = g.shapes[g.output];
  if (out.length !== 4) return 1;
  const s = h / out[1];
  if (!Number.isInteger(s) || w / out[2] !== s) throw new Error(`${g.name}: output ${out.join('x')} is not a whole stride of the input ${h}x${w}`);
  return s;
}

/**
 * The same graph before the graph passes: one node per training op (batch norm as an affine with
 * running statistics, ReLUs on their own). convert's parity reference runs it (convert/reference.ts).
 * Each call copies the weights afresh: foldGraph modifies a raw graph in place.
 */
export function rawInferenceGraph(model: I2IModel, inputHW: [number, number], upsample: Upsample): RawGraph {
  const config = model.config;
  if (config.kind === 'segment' && (inputHW[0] % 8 || inputHW[1] % 8)) throw new UserError(`Input ${inputHW[0]}x${inputHW[1]} is not a multiple of 8, the encoder's output stride.`, 'Pass --input HxW with both sides multiples of 8, e.g. 512x1024.');
  if (config.kind === 'classify' && (inputHW[0] !== config.data.imageSize || inputHW[1] !== config.data.imageSize)) throw new UserError(`The classifier takes ${config.data.imageSize}x${config.data.imageSize} inputs, not ${inputHW.join('x')}.`, `Pass --input ${config.data.imageSize}x${config.data.imageSize}.`);
  const g = new GraphBuilder();
  const x = g.input([1, inputHW[0], inputHW[1], config.data.channels]);
  const z = model.targetEncoder().emit(g, x);
  let out = model.h.emit(g, z);
  if (config.kind === 'segment' && upsample === 'model') out = g.resize(out, inputHW);
  return g.graph(x, out, `${config.task}/${config.method}/${config.model.encoder}`, z);
}
