/**
 * The inference IR: a flat list of NHWC nodes over numbered tensors, what the exporters (convert/)
 * write as TFLite and tfjs graph models. Layers emit themselves into it (layers.ts `emit`) one
 * training op per node, batch norm as a per-channel `affine`, ReLU and channel reversal as nodes of
 * their own: a `RawGraph`. convert/ then folds affines into the convs before them and fuses ReLUs,
 * which yields a `Graph` of the exporters' node set only.
 *
 * Weights are laid out as tfjs reads them: conv2d HWIO [KH, KW, CI, CO]; depthwise2d (depth
 * multiplier 1) [KH, KW, C, 1], which in memory is also TFLite's [1, KH, KW, C]: in both, element i
 * belongs to channel i % C, as a conv2d's to output channel i % CO.
 */

export type Act = 'none' | 'relu';
export type Node =
  | { op: 'conv2d'; input: number; output: number; weights: Float32Array; bias: Float32Array; kernel: [number, number, number, number]; stride: number; dilation: number; padding: 'same' | 'valid'; act: Act }
  | { op: 'depthwise2d'; input: number; output: number; weights: Float32Array; bias: Float32Array; kernel: [number, number, number, 1]; stride: number; dilation: number; padding: 'same' | 'valid'; act: Act }
  | { op: 'affine'; input: number; output: number; scale: Float32Array; shift: Float32Array; act: Act }
  | { op: 'pad'; input: number; output: number; pads: [number, number, number, number] }
  | { op: 'concat'; inputs: number[]; output: number }
  | { op: 'avgpool' | 'maxpool'; input: number; output: number; size: number; stride: number; padding: 'same' | 'valid' }
  | { op: 'add'; inputs: [number, number]; output: number; act: Act }
  | { op: 'reshape'; input: number; output: number }
  | { op: 'dense'; input: number; output: number; weights: Float32Array; bias: Float32Array; units: number; act: Act }
  | { op: 'resize'; input: number; output: number; halfPixelCenters: boolean };

/** `features`: the encoder's output map, exported pooled per channel as a second output (drift). */
export interface Graph { shapes: number[][]; nodes: Node[]; input: number; output: number; name: string; features?: number }

/** Nodes that exist only before the graph passes: they have no exporter of their own. */
export type RawNode = Node | { op: 'relu'; input: number; output: number } | { op: 'reverse-channels'; input: number; output: number };
export interface RawGraph { shapes: number[][]; nodes: RawNode[]; input: number; output: number; name: string; features?: number }

export type ConvParams = Pick<Extract<Node, { op: 'conv2d' }>, 'weights' | 'bias' | 'kernel' | 'stride' | 'dilation' | 'padding'>;

/** A conv's or depthwise conv's output channels: element i of its weights (and bias i % this) belongs to channel i % this. */
export const outChannels = (n: Extract<Node, { op: 'conv2d' | 'depthwise2d' }>): number => (n.op === 'conv2d' ? n.kernel[3] : n.kernel[2]);

export type DepthwiseParams = Pick<Extract<Node, { op: 'depthwise2d' }>, 'weights' | 'bias' | 'kernel' | 'stride' | 'dilation' | 'padding'>;

const spatial = (size: number, k: number, stride: number, padding: 'same' | 'valid') =>
  padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - k) / stride) + 1;

/** Appends nodes and infers every tensor's shape; each tensor is created just before its producer. */
export class GraphBuilder {
  readonly shapes: number[][] = [];
  readonly nodes: RawNode[] = [];

  shape(t: number): number[] { return this.shapes[t]; }

  input(shape: number[]): number { return this.tensor(shape); }

  conv2d(x: number, p: ConvParams): number {
    const [n, h, w, c] = this.shapes[x];
    const [kh, kw, ci, co] = p.kernel;
    if (c !== ci) throw new Error(`conv2d: input has ${c} channels, the kernel ${ci}`);
    const y = this.tensor([n, spatial(h, kh, p.stride, p.padding), spatial(w, kw, p.stride, p.padding), co]);
    this.nodes.push({ op: 'conv2d', input: x, output: y, ...p, act: 'none' });
    return y;
  }

  /** A depthwise conv, one k x k filter per channel (depth multiplier 1). */
  depthwise2d(x: number, p: DepthwiseParams): number {
    const [n, h, w, c] = this.shapes[x];
    const [kh, kw, ci] = p.kernel;
    if (c !== ci) throw new Error(`depthwise2d: input has ${c} channels, the kernel ${ci}`);
    if (p.weights.length !== kh * kw * c || p.bias.length !== c) throw new Error(`depthwise2d: ${p.weights.length} weights and ${p.bias.length} biases for a ${kh}x${kw} kernel over ${c} channels`);
    if (p.stride > 1 && p.dilation > 1) throw new Error('depthwise2d: a dilated conv must be stride 1');
    // 'same' with dilation d pads as a kernel of extent (k - 1) d + 1 would; the output size is ceil(size / stride) either way.
    const y = this.tensor([n, spatial(h, (kh - 1) * p.dilation + 1, p.stride, p.padding), spatial(w, (kw - 1) * p.dilation + 1, p.stride, p.padding), c]);
    this.nodes.push({ op: 'depthwise2d', input: x, output: y, ...p, act: 'none' });
    return y;
  }

  affine(x: number, scale: Float32Array, shift: Float32Array): number {
    const y = this.tensor([...this.shapes[x]]);
    this.nodes.push({ op: 'affine', input: x, output: y, scale, shift, act: 'none' });
    return y;
  }

  relu(x: number): number { return this.unary('relu', x); }
  reverseChannels(x: number): number { return this.unary('reverse-channels', x); }

  pad(x: number, p: number): number {
    const [n, h, w, c] = this.shapes[x];
    const y = this.tensor([n, h + 2 * p, w + 2 * p, c]);
    this.nodes.push({ op: 'pad', input: x, output: y, pads: [p, p, p, p] });
    return y;
  }

  pool(op: 'avgpool' | 'maxpool', x: number, size: number, stride: number, padding: 'same' | 'valid'): number {
    const [n, h, w, c] = this.shapes[x];
    const y = this.tensor([n, spatial(h, size, stride, padding), spatial(w, size, stride, padding), c]);
    this.nodes.push({ op, input: x, output: y, size, stride, padding });
    return y;
  }

  concat(xs: number[]): number {
    const s = this.shapes[xs[0]];
    const y = this.tensor([s[0], s[1], s[2], xs.reduce((a, x) => a + this.shapes[x][3], 0)]);
    this.nodes.push({ op: 'concat', inputs: xs, output: y });
    return y;
  }

  add(a: number, b: number): number {
    const y = this.tensor([...this.shapes[a]]);
    this.nodes.push({ op: 'add', inputs: [a, b], output: y, act: 'none' });
    return y;
  }

  /** [n, ...] -> [n, prod(...)]. */
  flatten(x: number): number {
    const [n, ...rest] = this.shapes[x];
    const y = this.tensor([n, rest.reduce((a, b) => a * b, 1)]);
    this.nodes.push({ op: 'reshape', input: x, output: y });
    return y;
  }

  dense(x: number, weights: Float32Array, bias: Float32Array, units: number): number {
    const y = this.tensor([this.shapes[x][0], units]);
    this.nodes.push({ op: 'dense', input: x, output: y, weights, bias, units, act: 'none' });
    return y;
  }

  /** Bilinear resize with half-pixel centres (as evaluation upsamples logits). */
  resize(x: number, hw: [number, number]): number {
    const [n, , , c] = this.shapes[x];
    const y = this.tensor([n, hw[0], hw[1], c]);
    this.nodes.push({ op: 'resize', input: x, output: y, halfPixelCenters: true });
    return y;
  }

  graph(input: number, output: number, name: string, features?: number): RawGraph {
    return { shapes: this.shapes, nodes: this.nodes, input, output, name, features };
  }

  private unary(op: 'relu' | 'reverse-channels', x: number): number {
    const y = this.tensor([...this.shapes[x]]);
    this.nodes.push({ op, input: x, output: y });
    return y;
  }

  private tensor(shape: number[]): number {
    this.shapes.push(shape);
    return this.shapes.length - 1;
  }
}
