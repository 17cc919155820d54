/**
 * A TensorFlow.js graph model (model.json: a TF GraphDef as JSON + a weights manifest) written from
 * the inference IR, with weights stored as float32, float16 or uint8 through the manifest's own
 * `quantization` field, so stock loaders (tf.loadGraphModel) dequantise them. Ops used: Conv2D
 * (dilations), DepthwiseConv2dNative (dilations; filter [KH, KW, C, 1]), BiasAdd, Mul, AddV2, Relu, ConcatV2, AvgPool, MaxPool, Pad, Reshape, MatMul,
 * ResizeBilinear (half_pixel_centers), ArgMax (with --argmax: int32 labels, tfjs has no uint8 tensors).
 */
import type { Graph, Node } from './graph';

export type WeightPrecision = 'fp32' | 'fp16' | 'uint8';

interface GraphNode { name: string; op: string; input?: string[]; attr?: Record<string, unknown> }
interface WeightSpec { name: string; shape: number[]; dtype: 'float32' | 'int32'; quantization?: { dtype: 'uint8' | 'float16'; min?: number; scale?: number } }

const b64 = (s: string) => Buffer.from(s).toString('base64');
const ints = (v: number[]) => ({ list: { i: v.map(String) } });
const FLOAT = { type: 'DT_FLOAT' };

/** float32 -> IEEE half bits (round to nearest even). */
export function floatToHalf(f: number): number {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setFloat32(0, f);
  const x = buf.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  let exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1), mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = sign | (exp << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return half;
}

export function writeTfjsGraph(g: Graph, precision: WeightPrecision, argmax = false): { modelJson: object; weights: Uint8Array } {
  const nodes: GraphNode[] = [];
  const specs: WeightSpec[] = [];
  const chunks: Uint8Array[] = [];
  const name = (t: number) => (t === g.input ? 'input' : `t${t}`);
  const constant = (id: string, values: Float32Array | Int32Array, shape: number[]) => {
    const isInt = values instanceof Int32Array;
    nodes.push({ name: id, op: 'Const', attr: { dtype: { type: isInt ? 'DT_INT32' : 'DT_FLOAT' }, value: { tensor: { dtype: isInt ? 'DT_INT32' : 'DT_FLOAT', tensorShape: { dim: shape.map((s) => ({ size: String(s) })) } } } } });
    if (isInt || precision === 'fp32') {
      specs.push({ name: id, shape, dtype: isInt ? 'int32' : 'float32' });
      chunks.push(new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)));
    } else if (precision === 'fp16') {
      const h = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) h[i] = floatToHalf(values[i]);
      specs.push({ name: id, shape, dtype: 'float32', quantization: { dtype: 'float16' } });
      chunks.push(new Uint8Array(h.buffer));
    } else {
      // Affine uint8 per tensor: v ~ q * scale + min, q in 0..255.
      let lo = Infinity, hi = -Infinity;
      for (const v of values) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      const scale = hi > lo ? (hi - lo) / 255 : 1;
      const q = new Uint8Array(values.length);
      for (let i = 0; i < values.length; i++) q[i] = Math.max(0, Math.min(255, Math.round((values[i] - lo) / scale)));
      specs.push({ name: id, shape, dtype: 'float32', quantization: { dtype: 'uint8', min: lo, scale } });
      chunks.push(q);
    }
    return id;
  };
  const relu = (from: string, to: string) => nodes.push({ name: to, op: 'Relu', input: [from], attr: { T: FLOAT } });
  // Batch -1: the runtime batches frames (serve/'s micro-batching); the IR itself is built for batch 1.
  nodes.push({ name: 'input', op: 'Placeholder', attr: { dtype: FLOAT, shape: { shape: { dim: g.shapes[g.input].map((s, d) => ({ size: String(d === 0 ? -1 : s) })) } } } });
  g.nodes.forEach((n: Node) => {
    const out = name(n.output);
    switch (n.op) {
      case 'conv2d': {
        const w = constant(`${out}/filter`, n.weights, n.kernel);
        const b = constant(`${out}/bias`, n.bias, [n.kernel[3]]);
        nodes.push({ name: `${out}/conv`, op: 'Conv2D', input: [name(n.input), w], attr: { T: FLOAT, strides: ints([1, n.stride, n.stride, 1]), dilations: ints([1, n.dilation, n.dilation, 1]), padding: { s: b64(n.padding.toUpperCase()) }, data_format: { s: b64('NHWC') } } });
        nodes.push({ name: n.act === 'relu' ? `${out}/pre` : out, op: 'BiasAdd', input: [`${out}/conv`, b], attr: { T: FLOAT, data_format: { s: b64('NHWC') } } });
        if (n.act === 'relu') relu(`${out}/pre`, out);
        break;
      }
      case 'depthwise2d': {
        const w = constant(`${out}/filter`, n.weights, n.kernel);
        const b = constant(`${out}/bias`, n.bias, [n.kernel[2]]);
        nodes.push({ name: `${out}/conv`, op: 'DepthwiseConv2dNative', input: [name(n.input), w], attr: { T: FLOAT, strides: ints([1, n.stride, n.stride, 1]), dilations: ints([1, n.dilation, n.dilation, 1]), padding: { s: b64(n.padding.toUpperCase()) }, data_format: { s: b64('NHWC') } } });
        nodes.push({ name: n.act === 'relu' ? `${out}/pre` : out, op: 'BiasAdd', input: [`${out}/conv`, b], attr: { T: FLOAT, data_format: { s: b64('NHWC') } } });
        if (n.act === 'relu') relu(`${out}/pre`, out);
        break;
      }
      case 'affine': {
        const c = n.scale.length;
        nodes.push({ name: `${out}/scaled`, op: 'Mul', input: [name(n.input), constant(`${out}/scale`, n.scale, [c])], attr: { T: FLOAT } });
        nodes.push({ name: n.act === 'relu' ? `${out}/pre` : out, op: 'AddV2', input: [`${out}/scaled`, constant(`${out}/shift`, n.shift, [c])], attr: { T: FLOAT } });
        if (n.act === 'relu') relu(`${out}/pre`, out);
        break;
      }
      case 'pad': {
        const [t, bo, l, r] = n.pads;
        nodes.push({ name: out, op: 'Pad', input: [name(n.input), constant(`${out}/paddings`, Int32Array.from([0, 0, t, bo, l, r, 0, 0]), [4, 2])], attr: { T: FLOAT } });
        break;
      }
      case 'concat':
        nodes.push({ name: out, op: 'ConcatV2', input: [...n.inputs.map(name), constant(`${out}/axis`, Int32Array.from([3]), [])], attr: { T: FLOAT, N: { i: String(n.inputs.length) } } });
        break;
      case 'avgpool': case 'maxpool':
        nodes.push({ name: out, op: n.op === 'avgpool' ? 'AvgPool' : 'MaxPool', input: [name(n.input)], attr: { T: FLOAT, ksize: ints([1, n.size, n.size, 1]), strides: ints([1, n.stride, n.stride, 1]), padding: { s: b64(n.padding.toUpperCase()) }, data_format: { s: b64('NHWC') } } });
        break;
      case 'add':
        nodes.push({ name: n.act === 'relu' ? `${out}/pre` : out, op: 'AddV2', input: n.inputs.map(name), attr: { T: FLOAT } });
        if (n.act === 'relu') relu(`${out}/pre`, out);
        break;
      case 'reshape': {
        const shape = g.shapes[n.output].map((s, d) => (d === 0 ? -1 : s));
        nodes.push({ name: out, op: 'Reshape', input: [name(n.input), constant(`${out}/shape`, Int32Array.from(shape), [shape.length])], attr: { T: FLOAT } });
        break;
      }
      case 'dense': {
        const inDim = n.weights.length / n.units;
        nodes.push({ name: `${out}/mm`, op: 'MatMul', input: [name(n.input), constant(`${out}/weights`, n.weights, [inDim, n.units])], attr: { T: FLOAT, transpose_a: { b: false }, transpose_b: { b: false } } });
        nodes.push({ name: out, op: 'BiasAdd', input: [`${out}/mm`, constant(`${out}/bias`, Float32Array.from(n.bias), [n.units])], attr: { T: FLOAT } });
        break;
      }
      case 'resize': {
        const [, h, w] = g.shapes[n.output];
        nodes.push({ name: out, op: 'ResizeBilinear', input: [name(n.input), constant(`${out}/size`, Int32Array.from([h, w]), [2])], attr: { T: FLOAT, align_corners: { b: false }, half_pixel_centers: { b: n.halfPixelCenters } } });
        break;
      }
    }
  });
  // The output under a stable name: the logits, or their arg-max over the last axis (int32 labels).
  if (argmax) nodes.push({ name: 'output', op: 'ArgMax', input: [name(g.output), constant('output/dimension', Int32Array.from([g.shapes[g.output].length - 1]), [])], attr: { T: FLOAT, Tidx: { type: 'DT_INT32' }, output_type: { type: 'DT_INT32' } } });
  else nodes.push({ name: 'output', op: 'Identity', input: [name(g.output)], attr: { T: FLOAT } });
  // The encoder features averaged over H and W: the drift score's input (core/drift.ts).
  if (g.features !== undefined) {
    const fshape = g.shapes[g.features];
    if (fshape.length === 4) nodes.push({ name: 'features', op: 'Mean', input: [name(g.features), constant('features/axes', Int32Array.from([1, 2]), [2])], attr: { T: FLOAT, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } });
    else nodes.push({ name: 'features', op: 'Identity', input: [name(g.features)], attr: { T: FLOAT } });
  }
  const total = chunks.reduce((a, c) => a + c.length, 0);
  const weights = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { weights.set(c, off); off += c.length; }
  const modelJson = {
    format: 'graph-model',
    generatedBy: 'i2i-adapt',
    convertedBy: 'i2i-adapt convert',
    modelTopology: { node: nodes, library: {}, versions: {} },
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
  };
  return { modelJson, weights };
}
