/**
 * The sampling of bilinear resizing with half-pixel centres, without tfjs: core/upsample.ts builds
 * its matrices from it, and the runtime's label upsampling (runtime/upsample-labels.ts) its taps, so
 * TFLite workers that never load tfjs compute what the exported ResizeBilinear computed.
 */

/**
 * Taps of output index `o` along one axis, as the forward kernels compute them with half-pixel
 * centres: [floor, ceil, fraction]. Near the edges the source coordinate leaves [0, in - 1]; both
 * taps then clamp to the same pixel, which gets the whole weight.
 */
export function halfPixelTaps(o: number, inSize: number, outSize: number): [number, number, number] {
  const src = (inSize / outSize) * (o + 0.5) - 0.5;
  const lo = Math.max(0, Math.floor(src));
  const hi = Math.min(inSize - 1, Math.ceil(src));
  return [lo, hi, src - lo];
}
