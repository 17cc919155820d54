/**
 * ResizeBilinearGrad that honours `halfPixelCenters`. tfjs's gradient passes the attribute, but the
 * cpu and wasm kernels ignore it and differentiate the legacy sampling instead, so the gradient of
 * tf.image.resizeBilinear(x, size, false, true) (segmentation logits upsampled to label resolution)
 * was wrong. This kernel is the exact adjoint of the cpu backend's forward sampling (same source
 * coordinates, clamping and weights), computed on the host; it is cheap next to a conv.
 */
import * as tf from './tf';
import type { KernelBackend, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from './tf';

type HostBackend = KernelBackend & {
  readSync(dataId: object): tf.BackendValues;
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values?: tf.BackendValues): TensorInfo;  // cpu
  makeOutput?(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.BackendValues): TensorInfo;  // wasm
};

/** Source taps of output index o along one axis: [floor, ceil, fraction], as the forward kernel computes them. */
export function bilinearTaps(o: number, inSize: number, outSize: number, alignCorners: boolean, halfPixelCenters: boolean): [number, number, number] {
  const ratio = (alignCorners && outSize > 1 ? inSize - 1 : inSize) / (alignCorners && outSize > 1 ? outSize - 1 : outSize);
  const src = halfPixelCenters ? ratio * (o + 0.5) - 0.5 : ratio * o;
  const lo = Math.max(0, Math.floor(src));
  const hi = Math.min(inSize - 1, Math.ceil(src));
  return [lo, hi, src - lo];
}

function resizeBilinearGrad(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs: NamedAttrMap }): TensorInfo {
  const backend = args.backend as HostBackend;
  const { images, dy } = args.inputs as { images: TensorInfo; dy: TensorInfo };
  const { alignCorners, halfPixelCenters } = args.attrs as unknown as { alignCorners: boolean; halfPixelCenters?: boolean };
  const [batch, inH, inW, ch] = images.shape;
  const [, outH, outW] = dy.shape;
  const g = backend.readSync(dy.dataId) as Float32Array;
  const dx = new Float32Array(batch * inH * inW * ch);
  const cols = Array.from({ length: outW }, (_, c) => bilinearTaps(c, inW, outW, alignCorners, !!halfPixelCenters));
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < outH; r++) {
      const [top, bot, fr] = bilinearTaps(r, inH, outH, alignCorners, !!halfPixelCenters);
      const topRow = (b * inH + top) * inW, botRow = (b * inH + bot) * inW;
      for (let c = 0; c < outW; c++) {
        const [left, right, fc] = cols[c];
        const o = ((b * outH + r) * outW + c) * ch;
        const wTL = (1 - fr) * (1 - fc), wTR = (1 - fr) * fc, wBL = fr * (1 - fc), wBR = fr * fc;
        const tl = (topRow + left) * ch, tr = (topRow + right) * ch, bl = (botRow + left) * ch, br = (botRow + right) * ch;
        for (let d = 0; d < ch; d++) {
          const v = g[o + d];
          dx[tl + d] += v * wTL; dx[tr + d] += v * wTR; dx[bl + d] += v * wBL; dx[br + d] += v * wBR;
        }
      }
    }
  }
  const shape = [batch, inH, inW, ch];
  return backend.makeTensorInfo ? backend.makeTensorInfo(shape, 'float32', dx) : backend.makeOutput!(shape, 'float32', undefined, dx);
}

/** Replaces ResizeBilinearGrad on the host-memory backends (cpu, wasm). */
export function registerResizeGrad(backendName: 'cpu' | 'wasm'): void {
  if (tf.getKernel('ResizeBilinearGrad', backendName)) tf.unregisterKernel('ResizeBilinearGrad', backendName);
  tf.registerKernel({ kernelName: 'ResizeBilinearGrad', backendName, kernelFunc: resizeBilinearGrad as unknown as tf.KernelFunc });
}
