/**
 * Training kernels for the wasm backend, built from its fast forward kernels.
 *
 * tfjs-backend-wasm ships no Conv2DBackpropFilter, so nothing with a convolution can train on it,
 * and its Conv2DBackpropInput (the input gradient of conv2d and the forward pass of conv2dTranspose)
 * is a scalar loop about 12x slower than its XNNPACK forward conv. Both are re-expressed here as ONE
 * forward Conv2D that XNNPACK runs:
 *
 * - filter gradient dW[kh,kw,ci,co] = sum_{b,oh,ow} x[b, oh*s+kh-pt, ow*s+kw-pl, ci] dy[b,oh,ow,co]
 *   is a stride-1 conv with the roles of batch and channels swapped: input x^T [CI,H,W,B], filter
 *   dy^T [OH,OW,B,CO], dilation = the forward stride, output [CI,KH,KW,CO] -> transposed back.
 * - input gradient of a stride-s conv: s*s stride-1 convs with sub-kernels (one per output phase),
 *   interleaved by DepthToSpace; where sizes do not divide or the strides differ ([2,1]), one conv
 *   over zero-inserted dy with the kernel rotated by 180 degrees.
 *
 * Everything runs at kernel level (no engine ops), so nothing is recorded on a gradient tape and
 * every intermediate buffer is released here. test/core/wasm-kernels.test.ts compares both
 * against the cpu backend on strided, padded and odd-sized cases.
 */
import * as tf from './tf';
import type { KernelBackend, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from './tf';

type Backend = KernelBackend & { disposeData(id: object): boolean };

function call(name: string, backend: Backend, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
  const kernel = tf.getKernel(name, 'wasm');
  if (!kernel) throw new Error(`wasm backend has no ${name} kernel`);
  return kernel.kernelFunc({ inputs, backend, attrs }) as TensorInfo;
}

function release(backend: Backend, ...infos: TensorInfo[]): void {
  for (const t of infos) backend.disposeData(t.dataId);
}

function convInfo(xShape: number[], filterShape: number[], attrs: NamedAttrMap) {
  const { strides, pad, dimRoundingMode, dataFormat } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (dataFormat !== undefined && dataFormat !== 'NHWC') throw new Error('wasm training kernels support NHWC only');
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    strides, 1, pad, dimRoundingMode, false, 'channelsLast');
}

/** dW for y = conv2d(x, W, stride, pad): one dilated forward conv over transposed operands. */
function conv2dBackpropFilter(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs: NamedAttrMap }): TensorInfo {
  const backend = args.backend as Backend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const filterShape = (args.attrs as unknown as tf.Conv2DBackpropFilterAttrs).filterShape;
  const info = convInfo(x.shape, filterShape, args.attrs);
  const [kh, kw] = [info.filterHeight, info.filterWidth];
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const [oh, ow] = [dy.shape[1], dy.shape[2]];
  const { top, left } = info.padInfo;
  // Rows of x read by the last tap: top pad + enough rows so the output is exactly KH x KW.
  const bottom = kh - 1 + (oh - 1) * sh - top - (x.shape[1] - 1);
  const right = kw - 1 + (ow - 1) * sw - left - (x.shape[2] - 1);
  let xIn = x;
  const owned: TensorInfo[] = [];
  if (bottom < 0 || right < 0) {
    // Rows/columns past the last tap never meet dy: drop them.
    xIn = call('Slice', backend, { x }, {
      begin: [0, 0, 0, 0],
      size: [x.shape[0], x.shape[1] + Math.min(bottom, 0), x.shape[2] + Math.min(right, 0), x.shape[3]],
    });
    owned.push(xIn);
  }
  const xT = call('Transpose', backend, { x: xIn }, { perm: [3, 1, 2, 0] });   // [CI,H,W,B]
  const dyT = call('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] });   // [OH,OW,B,CO]
  const out = call('Conv2D', backend, { x: xT, filter: dyT }, {
    strides: [1, 1],
    pad: [[0, 0], [top, Math.max(bottom, 0)], [left, Math.max(right, 0)], [0, 0]],
    dilations: [sh, sw],
    dataFormat: 'NHWC',
  } as unknown as NamedAttrMap);                                               // [CI,KH,KW,CO]
  const dW = call('Transpose', backend, { x: out }, { perm: [1, 2, 0, 3] });   // [KH,KW,CI,CO]
  release(backend, xT, dyT, out, ...owned);
  return dW;
}

/** dx for y = conv2d(x, W, stride, pad) (also conv2dTranspose's forward pass). */
function conv2dBackpropInput(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs: NamedAttrMap }): TensorInfo {
  const backend = args.backend as Backend;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const inputShape = (args.attrs as unknown as tf.Conv2DBackpropInputAttrs).inputShape;
  const info = convInfo(inputShape, filter.shape, args.attrs);
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const [h, w] = [inputShape[1], inputShape[2]];
  // DepthToSpace interleaves equal blocks only: unequal strides ([2,1]) take the zero-insertion path.
  if (sh > 1 && sh === sw && h % sh === 0 && w % sw === 0 && info.filterHeight >= sh && info.filterWidth >= sw) {
    return polyphaseBackpropInput(backend, dy, filter, inputShape, info);
  }
  return zeroInsertBackpropInput(backend, dy, filter, inputShape, info);
}

type ConvInfo = ReturnType<typeof convInfo>;

/**
 * Stride-s input gradient as s*s stride-1 convs, one per output phase (r_h, r_w), each with the
 * sub-kernel of taps that reach that phase, then interleaved by DepthToSpace. For output row
 * i = s*q + r: dx[i] = sum_m dy[q + c - m] W[s*m + r'], r' = (r + pad) mod s, c = floor((r + pad)/s):
 * a plain correlation of dy with the flipped sub-kernel. No multiply touches an inserted zero.
 */
function polyphaseBackpropInput(backend: Backend, dy: TensorInfo, filter: TensorInfo, inputShape: number[], info: ConvInfo): TensorInfo {
  const [kh, kw, ci, co] = filter.shape;
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const [b, oh, ow] = dy.shape;
  const [qh, qw] = [inputShape[1] / sh, inputShape[2] / sw];
  // A view of the filter on the wasm heap (read before any allocation below can move the heap).
  const wv = (backend as unknown as { typedArrayFromHeap(t: TensorInfo): Float32Array }).typedArrayFromHeap(filter).slice();
  const phase = (r: number, s: number, k: number, pad: number) => {
    const rp = (((r + pad) % s) + s) % s;
    const c = Math.floor((r + pad) / s);
    const m = Math.ceil((k - rp) / s);
    return { rp, c, m, taps: Array.from({ length: m }, (_, j) => s * (m - 1 - j) + rp) };
  };
  const outs: TensorInfo[] = [];
  const owned: TensorInfo[] = [];
  for (let rh = 0; rh < sh; rh++) {
    const ph = phase(rh, sh, kh, info.padInfo.top);
    for (let rw = 0; rw < sw; rw++) {
      const pw = phase(rw, sw, kw, info.padInfo.left);
      // Sub-kernel [mh, mw, co, ci] (forward-conv layout: in = co, out = ci), flipped.
      const sub = new Float32Array(ph.m * pw.m * co * ci);
      for (let jh = 0; jh < ph.m; jh++) for (let jw = 0; jw < pw.m; jw++) {
        const src = (ph.taps[jh] * kw + pw.taps[jw]) * ci * co;
        const dst = (jh * pw.m + jw) * co * ci;
        for (let a = 0; a < ci; a++) for (let o = 0; o < co; o++) sub[dst + o * ci + a] = wv[src + a * co + o];
      }
      const subT = (backend as unknown as { makeOutput(s: number[], d: string, o?: number, v?: Float32Array): TensorInfo })
        .makeOutput([ph.m, pw.m, co, ci], 'float32', undefined, sub);
      owned.push(subT);
      // Window of dy for output q starts at q + c - (m - 1): pad (or crop) dy to match.
      const top = ph.m - 1 - ph.c, left = pw.m - 1 - pw.c;
      const bottom = qh + ph.m - 1 - oh - top, right = qw + pw.m - 1 - ow - left;
      let src: TensorInfo = dy;
      const cut = [Math.max(-top, 0), Math.max(-left, 0)];
      const keep = [oh - cut[0] + Math.min(bottom, 0), ow - cut[1] + Math.min(right, 0)];
      if (cut[0] || cut[1] || keep[0] !== oh || keep[1] !== ow) {
        src = call('Slice', backend, { x: dy }, { begin: [0, cut[0], cut[1], 0], size: [b, keep[0], keep[1], co] });
        owned.push(src);
      }
      outs.push(call('Conv2D', backend, { x: src, filter: subT }, {
        strides: [1, 1],
        pad: [[0, 0], [Math.max(top, 0), Math.max(bottom, 0)], [Math.max(left, 0), Math.max(right, 0)], [0, 0]],
        dilations: [1, 1], dataFormat: 'NHWC',
      } as unknown as NamedAttrMap));
    }
  }
  owned.push(...outs);
  const stacked = outs.length === 1 ? outs[0] : call('Concat', backend, outs as unknown as NamedTensorInfoMap, { axis: 3 });
  if (outs.length > 1) owned.push(stacked);
  const dx = call('DepthToSpace', backend, { x: stacked }, { blockSize: sh, dataFormat: 'NHWC' });
  release(backend, ...owned);
  return dx;
}

/** General case: conv over zero-inserted dy with the rotated filter. */
function zeroInsertBackpropInput(backend: Backend, dy: TensorInfo, filter: TensorInfo, inputShape: number[], info: ConvInfo): TensorInfo {
  const [kh, kw] = [info.filterHeight, info.filterWidth];
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const [b, oh, ow, co] = dy.shape;
  const [h, w] = [inputShape[1], inputShape[2]];
  const owned: TensorInfo[] = [];
  let dyz: TensorInfo = dy;
  if (sh > 1 || sw > 1) {
    // Zero insertion: each dy sample followed by (s-1) zeros along H and W.
    const r6 = call('Reshape', backend, { x: dy }, { shape: [b, oh, 1, ow, 1, co] });
    const p6 = call('PadV2', backend, { x: r6 }, {
      paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0,
    });
    dyz = call('Reshape', backend, { x: p6 }, { shape: [b, oh * sh, ow * sw, co] });
    owned.push(r6, p6, dyz);
  }
  const rev = call('Reverse', backend, { x: filter }, { dims: [0, 1] });
  const wRot = call('Transpose', backend, { x: rev }, { perm: [0, 1, 3, 2] }); // [KH,KW,CO,CI]
  owned.push(rev, wRot);
  const padTop = kh - 1 - info.padInfo.top;
  const padLeft = kw - 1 - info.padInfo.left;
  const padBottom = h + kh - 1 - dyz.shape[1] - padTop;
  const padRight = w + kw - 1 - dyz.shape[2] - padLeft;
  if (padTop < 0 || padLeft < 0) throw new Error('conv padding larger than the kernel is not supported');
  let dx = call('Conv2D', backend, { x: dyz, filter: wRot }, {
    strides: [1, 1],
    pad: [[0, 0], [padTop, Math.max(padBottom, 0)], [padLeft, Math.max(padRight, 0)], [0, 0]],
    dilations: [1, 1],
    dataFormat: 'NHWC',
  } as unknown as NamedAttrMap);
  if (padBottom < 0 || padRight < 0) {
    const full = dx;
    dx = call('Slice', backend, { x: full }, { begin: [0, 0, 0, 0], size: [b, h, w, inputShape[3]] });
    owned.push(full);
  }
  release(backend, ...owned);
  return dx;
}

/**
 * tfjs-wasm's OneHot ignores `dtype` and writes int32 bits into float32 outputs (1 reads as
 * 1.4e-45). Run it as int32 and cast, so tf.oneHot is correct for every caller.
 */
let stockOneHot: tf.KernelConfig | undefined;
function oneHot(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs: NamedAttrMap }): TensorInfo {
  const backend = args.backend as Backend;
  const dtype = (args.attrs as unknown as tf.OneHotAttrs).dtype ?? 'int32';
  const asInt = stockOneHot!.kernelFunc({ inputs: args.inputs, backend: args.backend as KernelBackend, attrs: { ...args.attrs, dtype: 'int32' } }) as TensorInfo;
  if (dtype === 'int32') return asInt;
  const out = call('Cast', backend, { x: asInt }, { dtype });
  release(backend, asInt);
  return out;
}

let registered = false;

/** Registers (or replaces) the wasm kernels above. Safe to call more than once. */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  stockOneHot = tf.getKernel('OneHot', 'wasm');
  for (const [kernelName, kernelFunc] of [
    ['OneHot', oneHot],
    ['Conv2DBackpropFilter', conv2dBackpropFilter],
    ['Conv2DBackpropInput', conv2dBackpropInput],
  ] as const) {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    // OneHot wraps the stock kernel, whose wasm binding is made by its setupFunc at backend start.
    const setupFunc = kernelName === 'OneHot' ? stockOneHot?.setupFunc : undefined;
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc, setupFunc });
  }
  registered = true;
}
