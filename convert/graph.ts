/**
 * The inference graph of a trained encoder + classifier, in a small IR that the exporters write
 * (TFLite here): only what deployment runs (f then h; no decoders, no critics), with batch norm
 * folded into the conv before it, or kept as a per-channel scale and shift where it precedes the
 * conv (DenseNet's pre-activation), and dilated convs as native dilated convs (the space-to-batch
 * form is a training device). Built from the checkpoint's variables by each architecture's own
 * description, so a parity test against the training model guards every mirror.
 */
import { UserError } from '../core/errors';
import type { Tensor } from '../core/tf';
import type { Config } from '../train/config';
import type { I2IModel } from '../train/i2i';
import { modelState } from '../train/state';
import { DENSENET121, DENSENET_BN_EPS, DENSENET_SMALL, type DenseNetOptions } from '../train/models/densenet';
import { CONTEXT_DILATIONS } from '../train/models/layers';
import { RESNET34, RESNET50, RESNET_BN_EPS, type ResNetOptions } from '../train/models/resnet';

export type Act = 'none' | 'relu';
export type Node =
  | { op: 'conv2d'; input: number; output: number; weights: Float32Array; bias: Float32Array; kernel: [number, number, number, number]; stride: number; dilation: number; padding: 'same' | 'valid'; act: Act }
  | { op: 'affine'; input: number; output: number; scale: Float32Array; shift: Float32Array; act: Act }
  | { op: 'pad'; input: number; output: number; pads: [number, number, number, number] }
  | { op: 'concat'; inputs: number[]; output: number }
  | { op: 'avgpool' | 'maxpool'; input: number; output: number; size: number; stride: number; padding: 'same' | 'valid' }
  | { op: 'add'; inputs: [number, number]; output: number; act: Act }
  | { op: 'reshape'; input: number; output: number }
  | { op: 'dense'; input: number; output: number; weights: Float32Array; bias: Float32Array; units: number; act: Act }
  | { op: 'resize'; input: number; output: number; halfPixelCenters: boolean };

export interface Graph { shapes: number[][]; nodes: Node[]; input: number; output: number; name: string }

/** Named float32 values of the checkpoint (trainable "var:<net>/<layer>/<p>", buffers "buf:..."). */
export type Weights = Map<string, { shape: number[]; values: Float32Array }>;

/** Named tensors (a checkpoint's, or a live model's state) as Weights. */
export function tensorWeights(tensors: Map<string, Tensor>): Weights {
  return new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, values: t.dataSync() as Float32Array }]));
}

/** The Weights of a live model, named as its checkpoint would name them (train/state). */
export function modelWeights(m: I2IModel): Weights {
  return tensorWeights(modelState(m).tensors);
}

/** Floating-point operations of one inference (a multiply-add counts 2): convs, dense layers, affines, adds, pools, resizing. */
export function graphFlops(g: Graph): number {
  const numel = (t: number) => g.shapes[t].reduce((a, b) => a * b, 1);
  return g.nodes.reduce((sum, n) => {
    switch (n.op) {
      case 'conv2d': return sum + 2 * numel(n.output) * n.kernel[0] * n.kernel[1] * n.kernel[2];
      case 'dense': return sum + 2 * numel(n.input) * n.units;
      case 'affine': return sum + 2 * numel(n.output);
      case 'add': return sum + numel(n.output);
      case 'avgpool': case 'maxpool': return sum + numel(n.output) * n.size * n.size;
      case 'resize': return sum + 8 * numel(n.output);  // 4 taps, a multiply-add each
      default: return sum;
    }
  }, 0);
}

class Builder {
  shapes: number[][] = [];
  nodes: Node[] = [];
  constructor(readonly w: Weights, readonly net: string) {}
  tensor(shape: number[]): number { this.shapes.push(shape); return this.shapes.length - 1; }
  get(kind: 'var' | 'buf', name: string): { shape: number[]; values: Float32Array } {
    const t = this.w.get(`${kind}:${this.net}/${name}`);
    if (!t) throw new UserError(`The checkpoint has no ${this.net}/${name}, which the ${this.net} network needs.`, 'Convert a checkpoint written by i2i train with the same configuration.');
    return t;
  }
  has(name: string): boolean { return this.w.has(`var:${this.net}/${name}`); }
  /** BN (running statistics) as y = x * scale + shift. */
  bnAffine(name: string, eps: number): { scale: Float32Array; shift: Float32Array } {
    const g = this.get('var', `${name}/gamma`).values, b = this.get('var', `${name}/beta`).values;
    const m = this.get('buf', `${name}/mean`).values, v = this.get('buf', `${name}/var`).values;
    const scale = g.map((gi, i) => gi / Math.sqrt(v[i] + eps));
    return { scale, shift: b.map((bi, i) => bi - m[i] * scale[i]) };
  }
  conv(x: number, name: string, o: { stride?: number; dilation?: number; padding?: 'same' | 'valid'; bn?: { name: string; eps: number }; act?: Act } = {}): number {
    const w = this.get('var', `${name}/w`);
    const [kh, kw, ci, co] = w.shape;
    const weights = Float32Array.from(w.values);
    const bias = this.has(`${name}/b`) ? Float32Array.from(this.get('var', `${name}/b`).values) : new Float32Array(co);
    if (o.bn) {
      // Fold: W'[.., co] = W * scale[co]; b' = b * scale + shift.
      const { scale, shift } = this.bnAffine(o.bn.name, o.bn.eps);
      for (let i = 0; i < weights.length; i++) weights[i] *= scale[i % co];
      for (let c = 0; c < co; c++) bias[c] = bias[c] * scale[c] + shift[c];
    }
    const [n, h, wd] = this.shapes[x];
    const stride = o.stride ?? 1, padding = o.padding ?? 'same';
    const out = padding === 'same' ? [Math.ceil(h / stride), Math.ceil(wd / stride)] : [Math.floor((h - kh) / stride) + 1, Math.floor((wd - kw) / stride) + 1];
    const y = this.tensor([n, out[0], out[1], co]);
    if (this.shapes[x][3] !== ci) throw new Error(`${name}: input has ${this.shapes[x][3]} channels, the kernel ${ci}`);
    this.nodes.push({ op: 'conv2d', input: x, output: y, weights, bias, kernel: [kh, kw, ci, co], stride, dilation: o.dilation ?? 1, padding, act: o.act ?? 'none' });
    return y;
  }
  affine(x: number, scale: Float32Array, shift: Float32Array, act: Act): number {
    const y = this.tensor([...this.shapes[x]]);
    this.nodes.push({ op: 'affine', input: x, output: y, scale, shift, act });
    return y;
  }
  bn(x: number, name: string, eps: number, act: Act): number {
    const { scale, shift } = this.bnAffine(name, eps);
    return this.affine(x, scale, shift, act);
  }
  pad(x: number, p: number): number {
    const [n, h, w, c] = this.shapes[x];
    const y = this.tensor([n, h + 2 * p, w + 2 * p, c]);
    this.nodes.push({ op: 'pad', input: x, output: y, pads: [p, p, p, p] });
    return y;
  }
  pool(op: 'avgpool' | 'maxpool', x: number, size: number, stride: number, padding: 'same' | 'valid'): number {
    const [n, h, w, c] = this.shapes[x];
    const o = padding === 'same' ? [Math.ceil(h / stride), Math.ceil(w / stride)] : [Math.floor((h - size) / stride) + 1, Math.floor((w - size) / stride) + 1];
    const y = this.tensor([n, o[0], o[1], c]);
    this.nodes.push({ op, input: x, output: y, size, stride, padding });
    return y;
  }
  concat(xs: number[]): number {
    const s = this.shapes[xs[0]];
    const y = this.tensor([s[0], s[1], s[2], xs.reduce((a, x) => a + this.shapes[x][3], 0)]);
    this.nodes.push({ op: 'concat', inputs: xs, output: y });
    return y;
  }
  add(a: number, b: number, act: Act): number {
    const y = this.tensor([...this.shapes[a]]);
    this.nodes.push({ op: 'add', inputs: [a, b], output: y, act });
    return y;
  }
}

/** Input normalisation of an ImageNet-initialised encoder, as one per-channel affine on RGB. */
function normalise(g: Builder, x: number, mode: Config['model']['inputNorm']): { x: number; bgr: boolean } {
  if (mode === 'caffe') {
    // caffe: BGR(127.5 (x + 1)) - mean_BGR; the channel reversal is folded into the first conv.
    const meanRGB = [123.68, 116.779, 103.939];
    return { x: g.affine(x, Float32Array.from([127.5, 127.5, 127.5]), Float32Array.from(meanRGB.map((m) => 127.5 - m)), 'none'), bgr: true };
  }
  if (mode === 'torch') {
    const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
    return { x: g.affine(x, Float32Array.from(std.map((s) => 0.5 / s)), Float32Array.from(mean.map((m, i) => (0.5 - m) / std[i])), 'none'), bgr: false };
  }
  return { x, bgr: false };
}

/** Reverses the input channels of a conv's weights (HWIO) in place: BGR-trained kernels read RGB. */
function reverseInputChannels(node: Extract<Node, { op: 'conv2d' }>): void {
  const [kh, kw, ci, co] = node.kernel;
  const src = Float32Array.from(node.weights);
  for (let p = 0; p < kh * kw; p++) for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) node.weights[(p * ci + i) * co + o] = src[(p * ci + (ci - 1 - i)) * co + o];
}

function denseNet(g: Builder, x: number, o: DenseNetOptions): number {
  const eps = DENSENET_BN_EPS;
  let h = g.conv(x, 'conv1/conv', { stride: 2, bn: { name: 'conv1/bn', eps }, act: 'relu' });
  h = g.pool('maxpool', h, 3, 2, 'same');
  o.blocks.forEach((n, bi) => {
    const block = `conv${bi + 2}`;
    const d = o.dilations[bi] ?? 1;
    for (let i = 1; i <= n; i++) {
      const p = `${block}_block${i}`;
      let t = g.bn(h, `${p}_0_bn`, eps, 'relu');
      t = g.conv(t, `${p}_1_conv`, { bn: { name: `${p}_1_bn`, eps }, act: 'relu' });
      h = g.concat([h, g.conv(t, `${p}_2_conv`, { dilation: d })]);
    }
    if (bi < o.blocks.length - 1) {
      const p = `pool${bi + 2}`;
      const t = g.conv(g.bn(h, `${p}_bn`, eps, 'relu'), `${p}_conv`);
      h = (o.dilations[bi + 1] ?? 1) === 1 ? g.pool('avgpool', t, 2, 2, 'valid') : t;
    }
  });
  h = g.bn(h, 'bn', eps, 'relu');
  return contextHead(g, h, o.headChannels);
}

function resNet(g: Builder, x: number, o: ResNetOptions): number {
  const eps = RESNET_BN_EPS;
  let h = g.conv(g.pad(x, 3), 'conv1', { stride: 2, padding: 'valid', bn: { name: 'bn_conv1', eps }, act: 'relu' });
  h = g.pool('maxpool', g.pad(h, 1), 3, 2, 'valid');
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  o.blocks.forEach((n, si) => {
    const stage = si + 2, d = o.dilations[si] ?? 1;
    for (let bi = 0; bi < n; bi++) {
      const tag = `${stage}${letters[bi]}`;
      const st = bi === 0 && stage > 2 && d === 1 ? 2 : 1;
      const c = (b: string, inp: number, k: number, s: number, dil: number, act: Act) => g.conv(inp, `res${tag}_branch${b}`, { stride: s, dilation: k > 1 ? dil : 1, bn: { name: `bn${tag}_branch${b}`, eps }, act });
      let t: number;
      if (o.block === 'bottleneck') t = c('2c', c('2b', c('2a', h, 1, st, 1, 'relu'), 3, 1, d, 'relu'), 1, 1, 1, 'none');
      else t = c('2b', c('2a', h, 3, st, st === 1 ? d : 1, 'relu'), 3, 1, d, 'none');
      const short = g.has(`res${tag}_branch1/w`) ? c('1', h, 1, st, 1, 'none') : h;
      h = g.add(t, short, 'relu');
    }
  });
  return contextHead(g, h, o.headChannels);
}

/** The export side of train/models/layers contextHead (same names, dilations and BN epsilon). */
function contextHead(g: Builder, x: number, channels: number): number {
  if (channels === 0) return x;
  return CONTEXT_DILATIONS.reduce((h, d, i) => g.conv(h, `context${i + 1}/conv`, { dilation: d, bn: { name: `context${i + 1}/bn`, eps: 1e-5 }, act: 'relu' }), x);
}

function lenet(g: Builder, x: number, layers: number): number {
  let h = x;
  for (let i = 1; i <= layers; i++) h = g.conv(h, `conv${i}`, { stride: 2, bn: { name: `bn${i}`, eps: 1e-5 }, act: 'relu' });
  return h;
}

/**
 * f then h for an input of [1, H, W, C]. Segmenters output per-pixel logits upsampled bilinearly to
 * the input size (half-pixel centres, as at evaluation); classifiers output class logits.
 */
export function inferenceGraph(config: Config, weights: Weights, inputHW: [number, number]): Graph {
  // Target images go through ADDA's untied target encoder where there is one.
  const f = new Builder(weights, [...weights.keys()].some((k) => k.startsWith('var:f_t/')) ? 'f_t' : 'f');
  const x = f.tensor([1, inputHW[0], inputHW[1], config.data.channels]);
  const { x: xin, bgr } = normalise(f, x, config.model.inputNorm);
  const firstConv = f.nodes.length;
  const m = config.model;
  let z: number;
  if (config.kind === 'segment') {
    if (inputHW[0] % 8 || inputHW[1] % 8) throw new UserError(`Input ${inputHW[0]}x${inputHW[1]} is not a multiple of 8, the encoder's output stride.`, 'Pass --input HxW with both sides multiples of 8, e.g. 512x1024.');
    switch (m.encoder) {
      case 'densenet121': z = denseNet(f, xin, DENSENET121); break;
      case 'densenet-small': z = denseNet(f, xin, DENSENET_SMALL); break;
      case 'resnet34': z = resNet(f, xin, RESNET34); break;
      case 'resnet50': z = resNet(f, xin, RESNET50); break;
      default: throw new UserError(`Encoder ${m.encoder} has no exporter.`, 'Export densenet121, densenet-small, resnet34 or resnet50 segmenters.');
    }
  } else {
    if (m.encoder !== 'lenet') throw new UserError(`The ${m.encoder} digits encoder has no exporter yet.`, 'Export a LeNet (model.encoder=lenet) classifier.');
    if (inputHW[0] !== config.data.imageSize || inputHW[1] !== config.data.imageSize) throw new UserError(`The classifier takes ${config.data.imageSize}x${config.data.imageSize} inputs, not ${inputHW.join('x')}.`, `Pass --input ${config.data.imageSize}x${config.data.imageSize}.`);
    z = lenet(f, xin, m.encoderWidths.length);
  }
  if (bgr) reverseInputChannels(f.nodes.slice(firstConv).find((n) => n.op === 'conv2d') as Extract<Node, { op: 'conv2d' }>);
  // h, from the classifier's own variables.
  const h = new Builder(weights, 'h');
  h.shapes = f.shapes; h.nodes = f.nodes;
  let out: number;
  if (config.kind === 'segment') {
    const logits = h.conv(z, 'conv');
    out = h.tensor([1, inputHW[0], inputHW[1], h.shapes[logits][3]]);
    h.nodes.push({ op: 'resize', input: logits, output: out, halfPixelCenters: true });
  } else {
    const [n, hh, ww, c] = h.shapes[z];
    const flat = h.tensor([n, hh * ww * c]);
    h.nodes.push({ op: 'reshape', input: z, output: flat });
    const fc = h.get('var', 'fc/w');
    out = h.tensor([n, fc.shape[1]]);
    h.nodes.push({ op: 'dense', input: flat, output: out, weights: fc.values, bias: h.get('var', 'fc/b').values, units: fc.shape[1], act: 'none' });
  }
  return { shapes: h.shapes, nodes: h.nodes, input: x, output: out, name: `${config.task}/${config.method}/${m.encoder}` };
}
