/**
 * Pixels to the networks' input range [-1, 1], in one place for every stage that feeds a network:
 * v / (max / 2) - 1, with max = 255 for 8-bit values and 1 for values already in [0, 1] (the digit
 * readers' ImageSet, resized before this step).
 *
 * Bit-identical to the two formulas it replaced: v / 127.5 - 1 for 8-bit frames (the bundle
 * manifest's 'x/127.5-1', which deployment applies) and x * 2 - 1 for [0, 1] values (dividing by
 * 0.5 is exact, like multiplying by 2). The two paths are not interchangeable: the digits store
 * v / 255 in float32 first, and that rounding times 2 minus 1 differs from v / 127.5 - 1 (in
 * float32) for 128 of the 256 byte values, so each keeps its own input scale.
 */
export type PixelMax = 255 | 1;

export function toSigned(v: number, max: PixelMax = 255): number {
  return v / (max / 2) - 1;
}

/** Element-wise `toSigned` of a whole buffer (e.g. sharp's raw RGB bytes). */
export function pixelsToSigned(src: ArrayLike<number>, max: PixelMax = 255, out: Float32Array<ArrayBufferLike> = new Float32Array(src.length)): Float32Array<ArrayBufferLike> {
  for (let i = 0; i < src.length; i++) out[i] = toSigned(src[i], max);
  return out;
}
