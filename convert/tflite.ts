/**
 * A TFLite flatbuffer writer for the inference IR (convert/graph.ts): our own code for the subset of
 * tensorflow/lite/schema/schema.fbs we need (file identifier TFL3, schema version 3, buffer 0
 * empty). Field numbers below are the schema's field order; union type values are the position in
 * BuiltinOptions plus one. Filters are laid out OHWI ([CO, KH, KW, CI]), as CONV_2D reads them.
 */
import * as flatbuffers from 'flatbuffers';
import type { Graph, Node } from './graph';

const OP = { ADD: 0, AVERAGE_POOL_2D: 1, CONCATENATION: 2, CONV_2D: 3, FULLY_CONNECTED: 9, MAX_POOL_2D: 17, MUL: 18, RESHAPE: 22, RESIZE_BILINEAR: 23, PAD: 34 } as const;
const OPTIONS = { Conv2D: 1, Pool2D: 5, FullyConnected: 8, Concatenation: 10, Add: 11, ResizeBilinear: 15, Reshape: 17, Mul: 21, Pad: 22 } as const;
const TYPE = { FLOAT32: 0, INT32: 2 } as const;
const ACT = { none: 0, relu: 1 } as const;
const PADDING = { same: 0, valid: 1 } as const;

interface TensorSpec { shape: number[]; type: number; buffer: number; name: string }
interface OpSpec { code: number; inputs: number[]; outputs: number[]; optionsType: number; options: (b: flatbuffers.Builder) => number }

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

export function writeTflite(g: Graph): Uint8Array {
  const buffers: Uint8Array[] = [new Uint8Array(0)];
  const tensors: TensorSpec[] = g.shapes.map((shape, i) => ({ shape, type: TYPE.FLOAT32, buffer: 0, name: `t${i}` }));
  tensors[g.input].name = 'input';
  tensors[g.output].name = 'output';
  const constant = (data: Float32Array | Int32Array, shape: number[], name: string): number => {
    buffers.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    tensors.push({ shape, type: data instanceof Int32Array ? TYPE.INT32 : TYPE.FLOAT32, buffer: buffers.length - 1, name });
    return tensors.length - 1;
  };
  const ops: OpSpec[] = [];
  /** Options tables whose only field is fused_activation_function (Add, Mul, FullyConnected). */
  const fused = (act: number) => (b: flatbuffers.Builder) => { b.startObject(1); b.addFieldInt8(0, act, 0); return b.endObject(); };
  g.nodes.forEach((n: Node, i) => {
    switch (n.op) {
      case 'conv2d': {
        const w = constant(hwioToOhwi(n.weights, n.kernel), [n.kernel[3], n.kernel[0], n.kernel[1], n.kernel[2]], `conv${i}/filter`);
        const bias = constant(n.bias, [n.kernel[3]], `conv${i}/bias`);
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
      case 'affine': {
        const c = n.scale.length;
        const mid = tensors.push({ shape: [...g.shapes[n.input]], type: TYPE.FLOAT32, buffer: 0, name: `affine${i}/scaled` }) - 1;
        ops.push({ code: OP.MUL, inputs: [n.input, constant(n.scale, [c], `affine${i}/scale`)], outputs: [mid], optionsType: OPTIONS.Mul, options: fused(ACT.none) });
        ops.push({ code: OP.ADD, inputs: [mid, constant(n.shift, [c], `affine${i}/shift`)], outputs: [n.output], optionsType: OPTIONS.Add, options: fused(ACT[n.act]) });
        break;
      }
      case 'pad': {
        const [t, bo, l, r] = n.pads;
        ops.push({ code: OP.PAD, inputs: [n.input, constant(Int32Array.from([0, 0, t, bo, l, r, 0, 0]), [4, 2], `pad${i}`)], outputs: [n.output], optionsType: OPTIONS.Pad, options: (b) => { b.startObject(0); return b.endObject(); } });
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
        // FULLY_CONNECTED weights are [units, in].
        const inDim = n.weights.length / n.units;
        const wt = new Float32Array(n.weights.length);
        for (let r = 0; r < inDim; r++) for (let u = 0; u < n.units; u++) wt[u * inDim + r] = n.weights[r * n.units + u];
        ops.push({ code: OP.FULLY_CONNECTED, inputs: [n.input, constant(wt, [n.units, inDim], `fc${i}/weights`), constant(Float32Array.from(n.bias), [n.units], `fc${i}/bias`)], outputs: [n.output], optionsType: OPTIONS.FullyConnected, options: fused(ACT[n.act]) });
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

  const b = new flatbuffers.Builder(1 << 20);
  const codes = [...new Set(ops.map((o) => o.code))];
  const codeOffsets = codes.map((code) => {
    b.startObject(4);
    b.addFieldInt8(0, code, 0);      // deprecated_builtin_code
    b.addFieldInt32(2, 1, 1);        // version
    b.addFieldInt32(3, code, 0);     // builtin_code
    return b.endObject();
  });
  const tensorOffsets = tensors.map((t) => {
    const name = b.createString(t.name);
    const shape = intVector(b, t.shape);
    b.startObject(6);
    b.addFieldOffset(0, shape, 0);
    b.addFieldInt8(1, t.type, 0);
    b.addFieldInt32(2, t.buffer, 0);
    b.addFieldOffset(3, name, 0);
    return b.endObject();
  });
  const opOffsets = ops.map((o) => {
    const inputs = intVector(b, o.inputs), outputs = intVector(b, o.outputs);
    const options = o.options(b);
    b.startObject(5);
    b.addFieldInt32(0, codes.indexOf(o.code), 0);
    b.addFieldOffset(1, inputs, 0);
    b.addFieldOffset(2, outputs, 0);
    b.addFieldInt8(3, o.optionsType, 0);
    b.addFieldOffset(4, options, 0);
    return b.endObject();
  });
  const sgTensors = offsetVector(b, tensorOffsets), sgOps = offsetVector(b, opOffsets);
  const sgIn = intVector(b, [g.input]), sgOut = intVector(b, [g.output]), sgName = b.createString('main');
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
  const desc = b.createString(`i2i-adapt ${g.name}`);
  b.startObject(5);
  b.addFieldInt32(0, 3, 0);
  b.addFieldOffset(1, opcodes, 0); b.addFieldOffset(2, subgraphs, 0); b.addFieldOffset(3, desc, 0); b.addFieldOffset(4, bufs, 0);
  b.finish(b.endObject(), 'TFL3');
  return b.asUint8Array();
}
