/**
 * A TFLite flatbuffer writer for the inference IR (convert/graph.ts): our own code for the subset of
 * tensorflow/lite/schema/schema.fbs we need (file identifier TFL3, schema version 3, buffer 0
 * empty). Field numbers below are the schema's field order; union type values are the position in
 * BuiltinOptions plus one. Filters are laid out OHWI ([CO, KH, KW, CI]), as CONV_2D reads them;
 * DEPTHWISE_CONV_2D reads [1, KH, KW, C] (depth multiplier 1), the IR's own depthwise layout.
 *
 * Three forms of one graph:
 * - float32 (default);
 * - full-integer int8 (`int8`): int8 activations per tensor with the calibrated parameters given,
 *   int8 weights symmetric per output channel, int32 biases at input scale x weight scale (the TFLite
 *   int8 quantisation spec); a float input is QUANTIZEd on entry and the logits DEQUANTIZEd on exit;
 * - a calibration form (`rangeOutputs`): float32 plus per-channel REDUCE_MIN / REDUCE_MAX / MEAN of
 *   every IR tensor as extra outputs, so the runtime itself measures them without keeping activations.
 * Where the graph marks its encoder features, a second output 'features' carries them averaged over
 * H and W in float32 (the drift score's input, core/drift.ts).
 * `argmax` ends the model with ARG_MAX (int32, the only output types TFLite's kernel has) and a CAST
 * to a uint8 label map.
 */
import * as flatbuffers from 'flatbuffers';
import type { Graph, Node } from './graph';

const OP = {
  ADD: 0, AVERAGE_POOL_2D: 1, CONCATENATION: 2, CONV_2D: 3, DEPTHWISE_CONV_2D: 4, DEQUANTIZE: 6, FULLY_CONNECTED: 9, MAX_POOL_2D: 17,
  RESHAPE: 22, RESIZE_BILINEAR: 23, PAD: 34, MEAN: 40, CAST: 53, ARG_MAX: 56, REDUCE_MAX: 82, REDUCE_MIN: 89, QUANTIZE: 114,
} as const;
const OPTIONS = { Conv2D: 1, DepthwiseConv2D: 2, Pool2D: 5, FullyConnected: 8, Concatenation: 10, Add: 11, ResizeBilinear: 15, Reshape: 17, Pad: 22, Reducer: 27, Cast: 37, ArgMax: 40 } as const;
const TYPE = { FLOAT32: 0, INT32: 2, UINT8: 3, INT8: 9 } as const;
const ACT = { none: 0, relu: 1 } as const;
const PADDING = { same: 0, valid: 1 } as const;
/**
 * Operator versions (tensorflow/lite/tools/versioning): int8 kernels and per-channel quantisation,
 * half-pixel resizing, need the versions that introduced them; everything else is version 1.
 */
const INT8_VERSION: Partial<Record<number, number>> = {
  [OP.CONV_2D]: 3, [OP.DEPTHWISE_CONV_2D]: 3, [OP.ADD]: 2, [OP.CONCATENATION]: 2, [OP.AVERAGE_POOL_2D]: 2, [OP.MAX_POOL_2D]: 2,
  [OP.PAD]: 2, [OP.FULLY_CONNECTED]: 4, [OP.QUANTIZE]: 2, [OP.DEQUANTIZE]: 2, [OP.ARG_MAX]: 2, [OP.RESIZE_BILINEAR]: 3,
};
/** The IR always resizes with half-pixel centres (RESIZE_BILINEAR version 3). */
const FLOAT_VERSION: Partial<Record<number, number>> = { [OP.RESIZE_BILINEAR]: 3 };
/** A dilated DEPTHWISE_CONV_2D needs version 2 in float32 (int8's version 3 covers it): ops may ask for more than the tables above. */
const DILATED_DEPTHWISE_VERSION = 2;

/** Affine int8 parameters of one activation tensor: real = scale * (q - zeroPoint). */
export interface TensorQuant { scale: number; zeroPoint: number }
export interface TfliteOptions {
  /** Full-integer int8 with these parameters for every IR tensor (convert/quantize.ts). */
  int8?: TensorQuant[];
  /** End with an arg-max: a uint8 label map instead of logits. */
  argmax?: boolean;
  /** Calibration form: outputs [model output, min t0, max t0, mean t0, min t1, ...], per channel, over the IR tensors. */
  rangeOutputs?: boolean;
  /** A second output 'features': the graph's features map averaged over H and W, float32 [1, C] (default: when the graph marks one; never in the calibration form). */
  features?: boolean;
}

interface Quant { scale: number[]; zeroPoint: number[]; dim: number }
interface TensorSpec { shape: number[]; type: number; buffer: number; name: string; quant?: Quant }
interface OpSpec { code: number; inputs: number[]; outputs: number[]; optionsType: number; options?: (b: flatbuffers.Builder) => number; version?: number }

/** A 16-byte aligned [ubyte] vector (Buffer.data is force_align 16); the builder's own createByteVector aligns to 1. */
function alignedBytes(b: flatbuffers.Builder, bytes: Uint8Array): number {
  b.startVector(1, bytes.length, 16);
  const raw = b as unknown as { bb: flatbuffers.ByteBuffer; space: number };
  raw.space -= bytes.length;
  raw.bb.setPosition(raw.space);
  raw.bb.bytes().set(bytes, raw.space);
  return b.endVector();
}

function intVector(b: flatbuffers.Builder, v: number[]): number {
  b.startVector(4, v.length, 4);
  for (let i = v.length - 1; i >= 0; i--) b.addInt32(v[i]);
  return b.endVector();
}

function offsetVector(b: flatbuffers.Builder, v: number[]): number {
  b.startVector(4, v.length, 4);
  for (let i = v.length - 1; i >= 0; i--) b.addOffset(v[i]);
  return b.endVector();
}

/** HWIO (tfjs) -> OHWI (TFLite). */
function hwioToOhwi(w: Float32Array, [kh, kw, ci, co]: [number, number, number, number]): Float32Array {
  const out = new Float32Array(w.length);
  for (let p = 0; p < kh * kw; p++) for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) out[(o * kh * kw + p) * ci + i] = w[(p * ci + i) * co + o];
  return out;
}

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

/**
 * Symmetric int8 weights, one scale per channel (channelOf(i) gives element i's channel): scale =
 * max|w| / 127, so the int8 range is [-127, 127] as the spec asks. An all-zero channel keeps scale 1.
 */
export function quantizeSymmetric(w: Float32Array, channels: number, channelOf: (i: number) => number): { q: Int8Array; scale: number[] } {
  const maxAbs = new Array<number>(channels).fill(0);
  for (let i = 0; i < w.length; i++) { const c = channelOf(i); maxAbs[c] = Math.max(maxAbs[c], Math.abs(w[i])); }
  const scale = maxAbs.map((m) => (m > 0 ? m / 127 : 1));
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) q[i] = clamp(Math.round(w[i] / scale[channelOf(i)]), -127, 127);
  return { q, scale };
}

/** int32 bias at scale inputScale * weightScale[c] (zero point 0), as int8 kernels accumulate. */
function quantizeBias(bias: Float32Array, inputScale: number, weightScale: number[]): { q: Int32Array; scale: number[] } {
  const scale = Array.from(bias, (_, c) => inputScale * weightScale[weightScale.length === 1 ? 0 : c]);
  return { q: Int32Array.from(bias, (v, c) => clamp(Math.round(v / scale[c]), -(2 ** 31), 2 ** 31 - 1)), scale };
}

export function writeTflite(g: Graph, opts: TfliteOptions = {}): Uint8Array {
  const q8 = opts.int8;
  if (q8 && opts.rangeOutputs) throw new Error('rangeOutputs is a float32 form');
  const buffers: Uint8Array[] = [new Uint8Array(0)];
  const perTensor = (t: TensorQuant): Quant => ({ scale: [t.scale], zeroPoint: [t.zeroPoint], dim: 0 });
  const tensors: TensorSpec[] = g.shapes.map((shape, i) => ({ shape, type: q8 ? TYPE.INT8 : TYPE.FLOAT32, buffer: 0, name: `t${i}`, quant: q8 && perTensor(q8[i]) }));
  const addTensor = (t: TensorSpec) => tensors.push(t) - 1;
  const constant = (data: Float32Array | Int32Array | Int8Array, shape: number[], name: string, quant?: Quant): number => {
    buffers.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    const type = data instanceof Int32Array ? TYPE.INT32 : data instanceof Int8Array ? TYPE.INT8 : TYPE.FLOAT32;
    return addTensor({ shape, type, buffer: buffers.length - 1, name, quant });
  };
  const ops: OpSpec[] = [];
  /** Options tables whose only field is fused_activation_function (Add, FullyConnected). */
  const fused = (act: number) => (b: flatbuffers.Builder) => { b.startObject(1); b.addFieldInt8(0, act, 0); return b.endObject(); };
  const empty = (b: flatbuffers.Builder) => { b.startObject(0); return b.endObject(); };
  /** Weights and bias of a conv-like op: float as given, or int8 per channel + int32 bias. */
  const weightsAndBias = (i: number, input: number, w: Float32Array, wShape: number[], channelDim: number, bias: Float32Array, perChannel: boolean): [number, number] => {
    if (!q8) return [constant(w, wShape, `op${i}/weights`), constant(Float32Array.from(bias), [bias.length], `op${i}/bias`)];
    const channels = perChannel ? wShape[channelDim] : 1;
    const inner = wShape.slice(channelDim + 1).reduce((a, b) => a * b, 1);
    const wq = quantizeSymmetric(w, channels, perChannel ? (k) => Math.floor(k / inner) % channels : () => 0);
    const bq = quantizeBias(bias, q8[input].scale, wq.scale);
    const biasScale = perChannel ? bq.scale : [bq.scale[0]];
    return [
      constant(wq.q, wShape, `op${i}/weights`, { scale: wq.scale, zeroPoint: wq.scale.map(() => 0), dim: perChannel ? channelDim : 0 }),
      constant(bq.q, [bias.length], `op${i}/bias`, { scale: biasScale, zeroPoint: biasScale.map(() => 0), dim: 0 }),
    ];
  };

  // Entry: the model takes float frames; int8 graphs quantise them first.
  let modelInput = g.input;
  if (q8) {
    modelInput = addTensor({ shape: g.shapes[g.input], type: TYPE.FLOAT32, buffer: 0, name: 'input' });
    ops.push({ code: OP.QUANTIZE, inputs: [modelInput], outputs: [g.input], optionsType: 0 });
  } else tensors[g.input].name = 'input';

  g.nodes.forEach((n: Node, i) => {
    switch (n.op) {
      case 'conv2d': {
        const [kh, kw, ci, co] = n.kernel;
        const [w, bias] = weightsAndBias(i, n.input, hwioToOhwi(n.weights, n.kernel), [co, kh, kw, ci], 0, n.bias, true);
        ops.push({ code: OP.CONV_2D, inputs: [n.input, w, bias], outputs: [n.output], optionsType: OPTIONS.Conv2D, options: (b) => {
          b.startObject(6);
          b.addFieldInt8(0, PADDING[n.padding], 0);
          b.addFieldInt32(1, n.stride, 0); b.addFieldInt32(2, n.stride, 0);
          b.addFieldInt8(3, ACT[n.act], 0);
          b.addFieldInt32(4, n.dilation, 1); b.addFieldInt32(5, n.dilation, 1);
          return b.endObject();
        } });
        break;
      }
      case 'depthwise2d': {
        // Per-channel int8 weights on dimension 3, the channel of [1, KH, KW, C] (TFLite's int8 spec for this op).
        const [kh, kw, c] = n.kernel;
        const [w, bias] = weightsAndBias(i, n.input, n.weights, [1, kh, kw, c], 3, n.bias, true);
        ops.push({ code: OP.DEPTHWISE_CONV_2D, inputs: [n.input, w, bias], outputs: [n.output], optionsType: OPTIONS.DepthwiseConv2D, version: n.dilation > 1 ? DILATED_DEPTHWISE_VERSION : undefined, options: (b) => {
          // fields: padding, stride_w, stride_h, depth_multiplier, fused_activation_function, dilation_w_factor, dilation_h_factor
          b.startObject(7);
          b.addFieldInt8(0, PADDING[n.padding], 0);
          b.addFieldInt32(1, n.stride, 0); b.addFieldInt32(2, n.stride, 0);
          b.addFieldInt32(3, 1, 0);
          b.addFieldInt8(4, ACT[n.act], 0);
          b.addFieldInt32(5, n.dilation, 1); b.addFieldInt32(6, n.dilation, 1);
          return b.endObject();
        } });
        break;
      }
      case 'affine': {
        // A per-channel scale and shift is a 1x1 depthwise conv: one op, fused ReLU, and in int8 one
        // weight scale per channel (a MUL by an int8 constant would share one scale across channels).
        const c = n.scale.length;
        const [w, bias] = weightsAndBias(i, n.input, n.scale, [1, 1, 1, c], 3, n.shift, true);
        ops.push({ code: OP.DEPTHWISE_CONV_2D, inputs: [n.input, w, bias], outputs: [n.output], optionsType: OPTIONS.DepthwiseConv2D, options: (b) => {
          b.startObject(7);
          b.addFieldInt8(0, PADDING.same, 0);
          b.addFieldInt32(1, 1, 0); b.addFieldInt32(2, 1, 0);
          b.addFieldInt32(3, 1, 0);
          b.addFieldInt8(4, ACT[n.act], 0);
          return b.endObject();
        } });
        break;
      }
      case 'pad': {
        const [t, bo, l, r] = n.pads;
        ops.push({ code: OP.PAD, inputs: [n.input, constant(Int32Array.from([0, 0, t, bo, l, r, 0, 0]), [4, 2], `pad${i}`)], outputs: [n.output], optionsType: OPTIONS.Pad, options: empty });
        break;
      }
      case 'concat':
        ops.push({ code: OP.CONCATENATION, inputs: n.inputs, outputs: [n.output], optionsType: OPTIONS.Concatenation, options: (b) => { b.startObject(2); b.addFieldInt32(0, 3, 0); return b.endObject(); } });
        break;
      case 'avgpool': case 'maxpool':
        ops.push({ code: n.op === 'avgpool' ? OP.AVERAGE_POOL_2D : OP.MAX_POOL_2D, inputs: [n.input], outputs: [n.output], optionsType: OPTIONS.Pool2D, options: (b) => {
          b.startObject(6);
          b.addFieldInt8(0, PADDING[n.padding], 0);
          b.addFieldInt32(1, n.stride, 0); b.addFieldInt32(2, n.stride, 0);
          b.addFieldInt32(3, n.size, 0); b.addFieldInt32(4, n.size, 0);
          return b.endObject();
        } });
        break;
      case 'add':
        ops.push({ code: OP.ADD, inputs: n.inputs, outputs: [n.output], optionsType: OPTIONS.Add, options: fused(ACT[n.act]) });
        break;
      case 'reshape': {
        const shape = g.shapes[n.output];
        ops.push({ code: OP.RESHAPE, inputs: [n.input, constant(Int32Array.from(shape), [shape.length], `reshape${i}/shape`)], outputs: [n.output], optionsType: OPTIONS.Reshape, options: (b) => {
          const ns = intVector(b, shape);
          b.startObject(1); b.addFieldOffset(0, ns, 0); return b.endObject();
        } });
        break;
      }
      case 'dense': {
        // FULLY_CONNECTED weights are [units, in]; int8 weights per tensor (per-channel FC is a late addition to TFLite).
        const inDim = n.weights.length / n.units;
        const wt = new Float32Array(n.weights.length);
        for (let r = 0; r < inDim; r++) for (let u = 0; u < n.units; u++) wt[u * inDim + r] = n.weights[r * n.units + u];
        const [w, bias] = weightsAndBias(i, n.input, wt, [n.units, inDim], 0, n.bias, false);
        ops.push({ code: OP.FULLY_CONNECTED, inputs: [n.input, w, bias], outputs: [n.output], optionsType: OPTIONS.FullyConnected, options: fused(ACT[n.act]) });
        break;
      }
      case 'resize': {
        const [, h, w] = g.shapes[n.output];
        ops.push({ code: OP.RESIZE_BILINEAR, inputs: [n.input, constant(Int32Array.from([h, w]), [2], `resize${i}/size`)], outputs: [n.output], optionsType: OPTIONS.ResizeBilinear, options: (b) => {
          // fields: new_height (deprecated), new_width (deprecated), align_corners, half_pixel_centers
          b.startObject(4); b.addFieldInt8(2, 0, 0); b.addFieldInt8(3, n.halfPixelCenters ? 1 : 0, 0); return b.endObject();
        } });
        break;
      }
    }
  });

  // Exit: logits (dequantised in int8), or an arg-max label map.
  const outShape = g.shapes[g.output];
  let modelOutput = g.output;
  if (opts.argmax) {
    const idx = addTensor({ shape: outShape.slice(0, -1), type: TYPE.INT32, buffer: 0, name: 'argmax' });
    modelOutput = addTensor({ shape: outShape.slice(0, -1), type: TYPE.UINT8, buffer: 0, name: 'output' });
    ops.push({ code: OP.ARG_MAX, inputs: [g.output, constant(Int32Array.from([outShape.length - 1]), [1], 'argmax/axis')], outputs: [idx], optionsType: OPTIONS.ArgMax, options: (b) => { b.startObject(1); b.addFieldInt8(0, TYPE.INT32, 0); return b.endObject(); } });
    ops.push({ code: OP.CAST, inputs: [idx], outputs: [modelOutput], optionsType: OPTIONS.Cast, options: (b) => { b.startObject(2); b.addFieldInt8(0, TYPE.INT32, 0); b.addFieldInt8(1, TYPE.UINT8, 0); return b.endObject(); } });
  } else if (q8) {
    modelOutput = addTensor({ shape: outShape, type: TYPE.FLOAT32, buffer: 0, name: 'output' });
    ops.push({ code: OP.DEQUANTIZE, inputs: [g.output], outputs: [modelOutput], optionsType: 0 });
  } else tensors[g.output].name = 'output';

  const outputs = [modelOutput];
  if (g.features !== undefined && opts.features !== false && !opts.rangeOutputs) {
    // A global AVERAGE_POOL_2D (XNNPACK runs it, in int8 too, where MEAN split the delegated graph
    // and cost 5.7% of a small model's frame), a RESHAPE to [N, C], and for int8 a DEQUANTIZE of
    // just those C values: float features whatever the precision.
    const shape = g.shapes[g.features];
    let src = g.features;
    const type = q8 ? TYPE.INT8 : TYPE.FLOAT32, quant = q8 && perTensor(q8[g.features]);
    if (shape.length === 4) {
      const [n, h, w, c] = shape;
      const pooled = addTensor({ shape: [n, 1, 1, c], type, buffer: 0, name: 'features/pooled', quant });
      ops.push({ code: OP.AVERAGE_POOL_2D, inputs: [src], outputs: [pooled], optionsType: OPTIONS.Pool2D, options: (b) => {
        b.startObject(6);
        b.addFieldInt8(0, PADDING.valid, 0);
        b.addFieldInt32(1, 1, 0); b.addFieldInt32(2, 1, 0);
        b.addFieldInt32(3, w, 0); b.addFieldInt32(4, h, 0);
        return b.endObject();
      } });
      src = addTensor({ shape: [n, c], type, buffer: 0, name: q8 ? 'features/int8' : 'features', quant });
      ops.push({ code: OP.RESHAPE, inputs: [pooled, constant(Int32Array.from([n, c]), [2], 'features/shape')], outputs: [src], optionsType: OPTIONS.Reshape, options: (b) => {
        const ns = intVector(b, [n, c]);
        b.startObject(1); b.addFieldOffset(0, ns, 0); return b.endObject();
      } });
    }
    if (q8) {
      const f = addTensor({ shape: g.shapes[g.features].length === 4 ? [shape[0], shape[3]] : shape, type: TYPE.FLOAT32, buffer: 0, name: 'features' });
      ops.push({ code: OP.DEQUANTIZE, inputs: [src], outputs: [f], optionsType: 0 });
      src = f;
    }
    tensors[src].name = 'features';  // the runtime finds it by name, whatever its rank
    outputs.push(src);
  }
  if (opts.rangeOutputs) {
    g.shapes.forEach((shape, t) => {
      // Per channel (all axes but the last): per-tensor ranges follow, and channel ranges guide equalisation.
      const axes = constant(Int32Array.from(shape.slice(0, -1).map((_, d) => d)), [shape.length - 1], `range${t}/axes`);
      for (const code of [OP.REDUCE_MIN, OP.REDUCE_MAX, OP.MEAN]) {
        const r = addTensor({ shape: shape.slice(-1), type: TYPE.FLOAT32, buffer: 0, name: `range${t}/${code}` });
        ops.push({ code, inputs: [t, axes], outputs: [r], optionsType: OPTIONS.Reducer, options: (b) => { b.startObject(1); b.addFieldInt8(0, 0, 0); return b.endObject(); } });
        outputs.push(r);
      }
    });
  }
  return serialise(tensors, ops, buffers, [modelInput], outputs, g.name, Boolean(q8));
}

function serialise(tensors: TensorSpec[], ops: OpSpec[], buffers: Uint8Array[], inputs: number[], outputs: number[], name: string, int8: boolean): Uint8Array {
  const b = new flatbuffers.Builder(1 << 20);
  const codes = [...new Set(ops.map((o) => o.code))];
  const codeOffsets = codes.map((code) => {
    b.startObject(4);
    b.addFieldInt8(0, code, 0);      // deprecated_builtin_code
    const version = Math.max((int8 ? INT8_VERSION : FLOAT_VERSION)[code] ?? 1, ...ops.filter((o) => o.code === code).map((o) => o.version ?? 1));
    b.addFieldInt32(2, version, 1);  // version
    b.addFieldInt32(3, code, 0);     // builtin_code
    return b.endObject();
  });
  const floats = (v: number[]) => { b.startVector(4, v.length, 4); for (let i = v.length - 1; i >= 0; i--) b.addFloat32(v[i]); return b.endVector(); };
  const longs = (v: number[]) => { b.startVector(8, v.length, 8); for (let i = v.length - 1; i >= 0; i--) b.addInt64(BigInt(v[i])); return b.endVector(); };
  const tensorOffsets = tensors.map((t) => {
    let quant = 0;
    if (t.quant) {
      // QuantizationParameters: min 0, max 1, scale 2, zero_point 3, details_type 4, details 5, quantized_dimension 6.
      const s = floats(t.quant.scale), z = longs(t.quant.zeroPoint);
      b.startObject(7); b.addFieldOffset(2, s, 0); b.addFieldOffset(3, z, 0); b.addFieldInt32(6, t.quant.dim, 0);
      quant = b.endObject();
    }
    const tname = b.createString(t.name);
    const shape = intVector(b, t.shape);
    b.startObject(5);
    b.addFieldOffset(0, shape, 0);
    b.addFieldInt8(1, t.type, 0);
    b.addFieldInt32(2, t.buffer, 0);
    b.addFieldOffset(3, tname, 0);
    if (quant) b.addFieldOffset(4, quant, 0);
    return b.endObject();
  });
  const opOffsets = ops.map((o) => {
    const ins = intVector(b, o.inputs), outs = intVector(b, o.outputs);
    const options = o.options?.(b) ?? 0;
    b.startObject(5);
    b.addFieldInt32(0, codes.indexOf(o.code), 0);
    b.addFieldOffset(1, ins, 0);
    b.addFieldOffset(2, outs, 0);
    if (options) { b.addFieldInt8(3, o.optionsType, 0); b.addFieldOffset(4, options, 0); }
    return b.endObject();
  });
  const sgTensors = offsetVector(b, tensorOffsets), sgOps = offsetVector(b, opOffsets);
  const sgIn = intVector(b, inputs), sgOut = intVector(b, outputs), sgName = b.createString('main');
  b.startObject(5);
  b.addFieldOffset(0, sgTensors, 0); b.addFieldOffset(1, sgIn, 0); b.addFieldOffset(2, sgOut, 0); b.addFieldOffset(3, sgOps, 0); b.addFieldOffset(4, sgName, 0);
  const subgraph = b.endObject();
  const bufferOffsets = buffers.map((data) => {
    const d = data.length ? alignedBytes(b, data) : 0;
    b.startObject(1);
    if (d) b.addFieldOffset(0, d, 0);
    return b.endObject();
  });
  const opcodes = offsetVector(b, codeOffsets), subgraphs = offsetVector(b, [subgraph]), bufs = offsetVector(b, bufferOffsets);
  const desc = b.createString(`i2i-adapt ${name}${int8 ? ' (int8)' : ''}`);
  b.startObject(5);
  b.addFieldInt32(0, 3, 0);
  b.addFieldOffset(1, opcodes, 0); b.addFieldOffset(2, subgraphs, 0); b.addFieldOffset(3, desc, 0); b.addFieldOffset(4, bufs, 0);
  b.finish(b.endObject(), 'TFL3');
  return b.asUint8Array();
}
