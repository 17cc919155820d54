/**
 * Labels at the input size from logits at 1/stride of it (bundles whose models end at the encoder's
 * output stride, `ModelFile.outputStride`): bilinear upsampling with half-pixel centres, the
 * sampling the model's own ResizeBilinear used when it ended at the input size, then the arg-max;
 * without ever holding the K x H x W upsampled logits.
 *
 * Why it is exact and cheap: an output pixel interpolates four source pixels with non-negative
 * weights summing to 1. Where those four share one arg-max c, every logit difference l_c - l_j is
 * >= 0 at all four (> 0 for j < c, ties going to the lower id), and so is their convex combination:
 * the pixel's label is c without interpolating anything. Only pixels between differently labelled
 * source pixels (class boundaries, a few percent of a road scene) interpolate, and only the classes
 * that can win there: a class whose largest corner logit is below another's smallest cannot.
 * At 512x1024 with 19 classes this is a few ms in JS, where TFLite's RESIZE_BILINEAR of the logits
 * took 150-180 ms a frame (README, bench:student-latency).
 */
import { halfPixelTaps } from '../core/half-pixel';
import { argmaxLabels } from './image';

/**
 * Per output index along one axis: the two source indices and the second one's weight; and the runs
 * of consecutive output indices that share their two source indices (`stride` long inside the map).
 */
interface Axis { lo: Int32Array; hi: Int32Array; fr: Float64Array; runs: Int32Array }

const axes = new Map<string, Axis>();

function axis(inSize: number, outSize: number): Axis {
  const key = `${inSize}:${outSize}`;
  let a = axes.get(key);
  if (!a) {
    const lo = new Int32Array(outSize), hi = new Int32Array(outSize), fr = new Float64Array(outSize), starts: number[] = [];
    for (let o = 0; o < outSize; o++) {
      [lo[o], hi[o], fr[o]] = halfPixelTaps(o, inSize, outSize);
      if (o === 0 || lo[o] !== lo[o - 1] || hi[o] !== hi[o - 1]) starts.push(o);
    }
    a = { lo, hi, fr, runs: Int32Array.from([...starts, outSize]) };
    axes.set(key, a);
  }
  return a;
}

/**
 * `logits` [sh * sw * k] (NHWC, one frame; float or the raw values of an int8 output: a per-tensor
 * affine map keeps both the interpolation and the arg-max) -> labels [dh * dw], ties to the lower id.
 */
export function upsampleArgmax(logits: ArrayLike<number>, sh: number, sw: number, k: number, dh: number, dw: number): Uint8Array {
  if (logits.length !== sh * sw * k) throw new RangeError(`${logits.length} logits are not ${sh}x${sw} pixels of ${k} classes`);
  const low = argmaxLabels(logits, k);
  const ys = axis(sh, dh), xs = axis(sw, dw);
  const out = new Uint8Array(dh * dw);
  // The classes that can win between four source pixels (ascending ids: ties to the lower), and their logits down the left and right columns.
  const cand = new Uint8Array(k), left = new Float64Array(k), right = new Float64Array(k);
  for (let y = 0; y < dh; y++) {
    const r0 = ys.lo[y] * sw, r1 = ys.hi[y] * sw, fy = ys.fr[y];
    const o = y * dw;
    // A run of output columns between the same two source columns: one check of its four corners.
    for (let r = 0; r + 1 < xs.runs.length; r++) {
      const from = xs.runs[r], to = xs.runs[r + 1];
      const x0 = xs.lo[from], x1 = xs.hi[from];
      const a = low[r0 + x0];
      if (a === low[r0 + x1] && a === low[r1 + x0] && a === low[r1 + x1]) { for (let x = o + from; x < o + to; x++) out[x] = a; continue; }
      // Between differently labelled source pixels the arg-max may be a class no corner has, but
      // not one whose largest corner logit is below some class's smallest: those are skipped.
      // The rest are interpolated down the two columns once, then across for each pixel.
      const p00 = (r0 + x0) * k, p01 = (r0 + x1) * k, p10 = (r1 + x0) * k, p11 = (r1 + x1) * k;
      let floor = -Infinity;
      for (let c = 0; c < k; c++) floor = Math.max(floor, Math.min(logits[p00 + c], logits[p01 + c], logits[p10 + c], logits[p11 + c]));
      let n = 0;
      for (let c = 0; c < k; c++) {
        if (Math.max(logits[p00 + c], logits[p01 + c], logits[p10 + c], logits[p11 + c]) < floor) continue;
        cand[n] = c;
        left[n] = (1 - fy) * logits[p00 + c] + fy * logits[p10 + c];
        right[n++] = (1 - fy) * logits[p01 + c] + fy * logits[p11 + c];
      }
      for (let x = from; x < to; x++) {
        const fx = xs.fr[x];
        let best = -Infinity, id = 0;
        for (let j = 0; j < n; j++) {
          const v = (1 - fx) * left[j] + fx * right[j];
          if (v > best) { best = v; id = cand[j]; }
        }
        out[o + x] = id;
      }
    }
  }
  return out;
}
