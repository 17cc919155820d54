/**
 * A PNG decoder that keeps what the file stores: palette indices stay indices (sharp and OpenCV
 * expand them to colours, which loses GTA5's labelIds). Every colour type, bit depths 1..16, the
 * five row filters and Adam7 interlacing (PNG specification, ISO/IEC 15948). Ancillary chunks are
 * skipped; every chunk's CRC is checked, so a damaged file is named instead of read as noise.
 */
import * as zlib from 'node:zlib';
import { UserError } from '../../core/errors';

/** A file that cannot be decoded (truncated, corrupted): callers that can go on without it skip it. */
export class DamagedFileError extends UserError {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file} is damaged (${reason}).`, 'Replace it with a good copy or delete it.');
    this.name = 'DamagedFileError';
  }
}

export interface PngRaster {
  width: number;
  height: number;
  /** 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
  colorType: number;
  bitDepth: number;
  /** Samples per pixel (palette: 1, the index). */
  channels: number;
  interlaced: boolean;
  /** Row-major samples, `channels` per pixel; Uint16Array for 16-bit files. */
  samples: Uint8Array | Uint16Array;
  /** Palette as RGB triples (colour type 3; optional for 2 and 6). */
  palette?: Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
// Adam7 passes: x start, y start, x step, y step.
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The header alone (33 bytes): size and type without inflating anything. */
export function pngHeader(buf: Uint8Array, file: string): { width: number; height: number; colorType: number; bitDepth: number; interlaced: boolean } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 33 || !b.subarray(0, 8).equals(SIGNATURE)) {
    // A damaged file (zeroed, overwritten) as much as a wrong one: skipped by name like any damage.
    if (b.length >= 8 && !b.subarray(0, 8).equals(SIGNATURE)) throw new DamagedFileError(file, 'no PNG signature (not a PNG, or overwritten)');
    throw new DamagedFileError(file, 'shorter than a PNG header');
  }
  if (b.toString('latin1', 12, 16) !== 'IHDR') throw new DamagedFileError(file, 'the first chunk is not IHDR');
  const h = { width: b.readUInt32BE(16), height: b.readUInt32BE(20), bitDepth: b[24], colorType: b[25], interlaced: b[28] === 1 };
  if (!(h.colorType in CHANNELS) || !DEPTHS[h.colorType].includes(h.bitDepth) || h.width === 0 || h.height === 0 || b[28] > 1) {
    throw new DamagedFileError(file, `invalid header: colour type ${h.colorType}, bit depth ${h.bitDepth}, ${h.width}x${h.height}`);
  }
  return h;
}

export function decodePng(buf: Uint8Array, file: string): PngRaster {
  const h = pngHeader(buf, file);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const idat: Buffer[] = [];
  let palette: Uint8Array | undefined;
  let ended = false;
  for (let o = 8; o < b.length && !ended;) {
    if (o + 12 > b.length) throw new DamagedFileError(file, 'truncated inside a chunk header');
    const len = b.readUInt32BE(o), type = b.toString('latin1', o + 4, o + 8);
    if (o + 12 + len > b.length) throw new DamagedFileError(file, `truncated inside its ${type} chunk`);
    if (b.readUInt32BE(o + 8 + len) !== crc32(b, o + 4, o + 8 + len)) throw new DamagedFileError(file, `CRC mismatch in its ${type} chunk`);
    const data = b.subarray(o + 8, o + 8 + len);
    if (type === 'PLTE') palette = Uint8Array.from(data);
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') ended = true;
    o += 12 + len;
  }
  if (!ended) throw new DamagedFileError(file, 'truncated: no IEND chunk');
  if (idat.length === 0) throw new DamagedFileError(file, 'no image data');
  if (h.colorType === 3 && !palette) throw new DamagedFileError(file, 'a palette image without its palette');
  let raw: Buffer;
  // Bounded: a small file cannot inflate into more than its header's image needs (with Adam7's
  // per-pass filter bytes, at most 7 extra rows' worth).
  const rowBytes = Math.ceil((h.width * CHANNELS[h.colorType] * h.bitDepth) / 8) + 1;
  const limit = rowBytes * (h.height + 7) * (h.interlaced ? 2 : 1);
  try { raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: limit }); } catch (e) { throw new DamagedFileError(file, `its image data does not inflate within its size: ${(e as Error).message}`); }

  const channels = CHANNELS[h.colorType];
  const total = h.width * h.height * channels;
  const samples = h.bitDepth === 16 ? new Uint16Array(total) : new Uint8Array(total);
  const passes = h.interlaced ? ADAM7 : [[0, 0, 1, 1]];
  let offset = 0;
  for (const [xs, ys, dx, dy] of passes) {
    const pw = Math.ceil((h.width - xs) / dx), ph = Math.ceil((h.height - ys) / dy);
    if (pw <= 0 || ph <= 0) continue; // an empty pass has no bytes at all, not even filter bytes
    offset = unfilterPass(raw, offset, pw, ph, channels, h.bitDepth, file, (x, y, c, v) => {
      samples[((ys + y * dy) * h.width + xs + x * dx) * channels + c] = v;
    });
  }
  return { width: h.width, height: h.height, colorType: h.colorType, bitDepth: h.bitDepth, channels, interlaced: h.interlaced, samples, palette };
}

/** Undoes the row filters of one (sub)image starting at `offset`; hands each sample to `put`. */
function unfilterPass(raw: Buffer, offset: number, w: number, hgt: number, channels: number, depth: number, file: string,
  put: (x: number, y: number, c: number, v: number) => void): number {
  const bitsPerPixel = channels * depth;
  const stride = Math.ceil((w * bitsPerPixel) / 8);
  const bpp = Math.max(1, bitsPerPixel >> 3); // the filters' byte distance to "the pixel on the left"
  if (raw.length < offset + (stride + 1) * hgt) throw new DamagedFileError(file, 'its image data is shorter than its size');
  let prev = new Uint8Array(stride), cur = new Uint8Array(stride);
  for (let y = 0; y < hgt; y++) {
    const filter = raw[offset];
    const line = raw.subarray(offset + 1, offset + 1 + stride);
    offset += stride + 1;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp] : 0, up = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      let p: number;
      switch (filter) {
        case 0: p = 0; break;
        case 1: p = a; break;
        case 2: p = up; break;
        case 3: p = (a + up) >> 1; break;
        case 4: {
          const e = a + up - c, pa = Math.abs(e - a), pb = Math.abs(e - up), pc = Math.abs(e - c);
          p = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
          break;
        }
        default: throw new DamagedFileError(file, `unknown row filter ${filter}`);
      }
      cur[i] = (line[i] + p) & 0xff;
    }
    if (depth === 8) for (let x = 0, i = 0; x < w; x++) for (let c = 0; c < channels; c++) put(x, y, c, cur[i++]);
    else if (depth === 16) for (let x = 0, i = 0; x < w; x++) for (let c = 0; c < channels; c++, i += 2) put(x, y, c, (cur[i] << 8) | cur[i + 1]);
    else {
      // 1, 2 or 4 bits (one channel): packed from the most significant bit, rows padded to a byte.
      const perByte = 8 / depth, mask = (1 << depth) - 1;
      for (let x = 0; x < w; x++) put(x, y, 0, (cur[(x / perByte) | 0] >> ((perByte - 1 - (x % perByte)) * depth)) & mask);
    }
    [prev, cur] = [cur, prev];
  }
  return offset;
}
