/**
 * Image helpers for the segmentation server: decode untrusted uploads (JPEG, PNG, WebP) to RGB,
 * resize them to the model's input, and encode the results (label PNGs, overlay JPEGs).
 *
 * Untrusted bytes are sniffed before sharp sees them, so other formats (SVG above all: librsvg
 * could fetch external resources) never reach a decoder. Pixel limits are checked from the
 * header (our own IHDR read for PNG, sharp's metadata otherwise) and again by sharp's
 * limitInputPixels, so an oversized image is refused before any pixel buffer is allocated.
 */
import * as zlib from 'node:zlib';
import sharp, { type Metadata, type OutputInfo, type Sharp, type SharpOptions } from 'sharp';

/** Raw interleaved RGB, 8-bit, row-major. */
export interface Frame { data: Buffer; width: number; height: number; channels: 3 }

/** A problem with an uploaded image, with the HTTP status the server should answer. */
export class ImageError extends Error {
  constructor(readonly status: 400 | 413 | 415, message: string, readonly hint: string) {
    super(message);
    this.name = 'ImageError';
  }
}

/** maxPixels bounds width * height after decoding; timeoutSeconds (optional) a decode's time (sharp's timeout: 400). */
export interface DecodeLimits { maxPixels: number; timeoutSeconds?: number }

export type ImageFormat = 'jpeg' | 'png' | 'webp';

const VOID = 255;
const ACCEPTED = 'accepted: JPEG, PNG, WebP';
const HINT_TYPE = 'Send the image as JPEG, PNG or WebP.';
const HINT_CORRUPT = 'Check that the whole file was sent, or re-encode it.';

const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG_SIG = Buffer.from([0xff, 0xd8, 0xff]);

/** The accepted format of an encoded image from its magic bytes; undefined for anything else. */
export function imageFormat(buf: Buffer): ImageFormat | undefined {
  try { return sniff(buf); } catch { return undefined; }
}

/** The accepted format from magic bytes, or a 415 naming what the bytes look like. */
function sniff(buf: Buffer): ImageFormat {
  if (buf.length === 0) throw new ImageError(400, 'empty body: no image bytes were received', 'Send the encoded image as the request body.');
  const starts = (sig: Buffer, at = 0) => buf.length >= at + sig.length && buf.subarray(at, at + sig.length).equals(sig);
  if (starts(JPEG_SIG)) return 'jpeg';
  if (starts(PNG_SIG)) return 'png';
  const riff = starts(Buffer.from('RIFF', 'latin1'));
  if (riff && starts(Buffer.from('WEBP', 'latin1'), 8)) return 'webp';
  // A few bytes that begin an accepted signature are a cut-off upload, not another format.
  const isPrefix = (sig: Buffer) => buf.length < sig.length && sig.subarray(0, buf.length).equals(buf);
  if (isPrefix(JPEG_SIG) || isPrefix(PNG_SIG) || (buf.length < 12 && (riff || isPrefix(Buffer.from('RIFF', 'latin1'))))) {
    throw new ImageError(400, `the image is truncated or corrupt: only ${buf.length} bytes`, HINT_CORRUPT);
  }
  throw new ImageError(415, `unsupported image type: ${describe(buf)} (${ACCEPTED})`, HINT_TYPE);
}

/** A name for bytes that are not an accepted image, for the 415 message. */
function describe(buf: Buffer): string {
  const ascii = (a: number, b: number) => buf.toString('latin1', a, Math.min(b, buf.length));
  if (ascii(0, 4) === 'GIF8') return 'GIF';
  if (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*') return 'TIFF';
  if (ascii(0, 2) === 'BM') return 'BMP';
  if (ascii(0, 5) === '%PDF-') return 'PDF';
  if (ascii(4, 8) === 'ftyp') return /^avi[fs]$/.test(ascii(8, 12)) ? 'AVIF' : 'HEIF/ISO media';
  if (ascii(0, 4) === 'RIFF') return `RIFF ${JSON.stringify(ascii(8, 12))} (not WebP)`;
  const text = buf.toString('utf8', 0, Math.min(buf.length, 1024)).replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('<')) return /<svg[\s>/]/i.test(text) ? 'SVG' : 'XML/HTML text';
  const hex = [...buf.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return `unrecognised data (starts ${hex})`;
}

function checkLimits(limits: DecodeLimits): number {
  const m = limits.maxPixels;
  // sharp reads limitInputPixels 0 as "no limit": refuse it rather than silently disable the check.
  if (!Number.isInteger(m) || m < 1) throw new RangeError(`maxPixels must be a positive integer (got ${m})`);
  return m;
}

function tooLarge(width: number, height: number, max: number): ImageError {
  return new ImageError(413, `the image is ${width}x${height} (${width * height} pixels), over the limit of ${max} pixels`, `Downscale it to at most ${max} pixels before sending.`);
}

/** sharp's errors as ImageErrors; its messages are the reasons we pass on. */
function fromSharp(e: unknown, max: number): ImageError {
  if (e instanceof ImageError) return e;
  const reason = (e instanceof Error ? e.message : String(e)).trim();
  if (/exceeds pixel limit/i.test(reason)) return new ImageError(413, `the image has more than ${max} pixels (its header says so)`, `Downscale it to at most ${max} pixels before sending.`);
  if (/timeout/i.test(reason)) return new ImageError(400, `the image took too long to decode (${reason})`, 'Send an ordinary JPEG, PNG or WebP frame (baseline JPEG at quality 85 decodes in milliseconds).');
  if (/unsupported image format/i.test(reason)) return new ImageError(415, `unsupported image type: ${reason} (${ACCEPTED})`, HINT_TYPE);
  return new ImageError(400, `the image is truncated or corrupt: ${reason || 'unreadable'}`, HINT_CORRUPT);
}

function sharpOptions(max: number): SharpOptions {
  // failOn 'warning' (the strictest) so a cut-off or damaged JPEG/PNG is an error, not a grey-filled frame.
  return { limitInputPixels: max, sequentialRead: true, failOn: 'warning' };
}

/**
 * Header-only look at an upload: format and oriented size (EXIF orientation 5..8 swaps them),
 * with the 400/413/415 checks that need no decoding. Truncation past the header is found by the
 * decoders, not here.
 */
export async function probeImage(buf: Buffer, limits: DecodeLimits): Promise<{ format: ImageFormat; width: number; height: number }> {
  const max = checkLimits(limits);
  const format = sniff(buf);
  // sharp refuses a header-only PNG as "corrupt header" before its pixel limit applies, so read
  // the IHDR size ourselves: a bomb header is a 413, whatever follows it.
  if (format === 'png' && buf.length >= 24 && buf.toString('latin1', 12, 16) === 'IHDR') {
    const w = buf.readUInt32BE(16), h = buf.readUInt32BE(20);
    if (w * h > max) throw tooLarge(w, h, max);
  }
  let meta: Metadata;
  try {
    meta = await sharp(buf, sharpOptions(max)).metadata();
  } catch (e) {
    throw fromSharp(e, max);
  }
  if (meta.format !== format) throw new ImageError(415, `unsupported image type: ${meta.format} (${ACCEPTED})`, HINT_TYPE);
  if (!meta.width || !meta.height) throw new ImageError(400, 'the image is truncated or corrupt: no size in its header', HINT_CORRUPT);
  // Unreachable while sharp's metadata() enforces limitInputPixels itself (0.35 does); kept in
  // case a release reads headers without it.
  if (meta.width * meta.height > max) throw tooLarge(meta.width, meta.height, max);
  const { width, height } = meta.autoOrient ?? { width: meta.width, height: meta.height };
  return { format, width, height };
}

/**
 * EXIF-oriented, alpha dropped (as train/ and convert/ read frames), sRGB with 3 channels (sharp
 * converts to sRGB by default too; said here so greyscale input never yields one channel).
 */
function rgbPipeline(buf: Buffer, max: number): Sharp {
  return sharp(buf, sharpOptions(max)).rotate().removeAlpha().toColourspace('srgb');
}

async function rawRgb(img: Sharp, max: number, width: number, height: number): Promise<Buffer> {
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw fromSharp(e, max);
  }
  const { data, info } = out;
  if (info.channels !== 3 || info.width !== width || info.height !== height || data.length !== width * height * 3) {
    // An image whose decoded form disagrees with its header (odd multi-page or animated files): the
    // caller's input, so a 400, never a 500.
    throw new ImageError(400, `the image decodes to ${info.width}x${info.height}x${info.channels}, not the ${width}x${height}x3 its header promises`, 'Send a single still frame (JPEG, PNG or WebP).');
  }
  return data;
}

/** The whole image, oriented, as RGB bytes. */
export async function decodeFrame(buf: Buffer, limits: DecodeLimits): Promise<Frame> {
  const { width, height } = await probeImage(buf, limits);
  const max = checkLimits(limits);
  const data = await rawRgb(rgbPipeline(buf, max), max, width, height);
  return { data, width, height, channels: 3 };
}

/**
 * The image resized to the model's input (fit 'fill', kernel 'linear', as convert/ resizes its
 * calibration frames) in one sharp pipeline, plus the oriented original size to map labels back.
 */
export async function decodeToInput(buf: Buffer, input: { height: number; width: number }, limits: DecodeLimits): Promise<{ pixels: Buffer; width: number; height: number }> {
  if (!(Number.isInteger(input.width) && Number.isInteger(input.height) && input.width > 0 && input.height > 0)) {
    throw new RangeError(`input size must be positive integers (got ${input.width}x${input.height})`);
  }
  const { width, height } = await probeImage(buf, limits);
  const max = checkLimits(limits);
  // At the input size already, no resize: libvips' same-size linear resize is an identity (checked
  // bit-exact on JPEG and PNG) that still costs ~0.5 ms at 512x1024.
  let img = width === input.width && height === input.height ? rgbPipeline(buf, max) : rgbPipeline(buf, max).resize(input.width, input.height, { fit: 'fill', kernel: 'linear' });
  if (limits.timeoutSeconds) img = img.timeout({ seconds: limits.timeoutSeconds });
  const pixels = await rawRgb(img, max, input.width, input.height);
  return { pixels, width, height };
}

function checkSize(what: string, w: number, h: number): void {
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) throw new RangeError(`${what} must be positive integers (got ${w}x${h})`);
}

/**
 * Nearest-neighbour resize of a label map with pixel centres aligned:
 * src x = floor((x + 0.5) * sw / dw), computed in integers as floor((2x + 1) * sw / (2 dw)).
 * At the same size it returns `labels` itself (not a copy).
 */
export function resizeLabels(labels: Uint8Array, sw: number, sh: number, dw: number, dh: number): Uint8Array {
  checkSize('source size', sw, sh);
  checkSize('target size', dw, dh);
  if (labels.length !== sw * sh) throw new RangeError(`labels hold ${labels.length} values, expected ${sw}x${sh} = ${sw * sh}`);
  // A frame at the model's input size (the real-time case): the map as it is, not 2.5 ms of gathering at 512x1024.
  if (sw === dw && sh === dh) return labels;
  const xs = new Uint32Array(dw);
  for (let x = 0; x < dw; x++) xs[x] = Math.floor(((2 * x + 1) * sw) / (2 * dw));
  const out = new Uint8Array(dw * dh);
  let prevSy = -1;
  for (let y = 0; y < dh; y++) {
    const sy = Math.floor(((2 * y + 1) * sh) / (2 * dh));
    const o = y * dw;
    // Upscaling repeats source rows: copy the row just built instead of gathering again.
    if (sy === prevSy) {
      out.copyWithin(o, o - dw, o);
      continue;
    }
    const s = sy * sw;
    for (let x = 0; x < dw; x++) out[o + x] = labels[s + xs[x]];
    prevSy = sy;
  }
  return out;
}

/** Class ids from logits laid out [pixels * k]; ties go to the lower id, NaN never wins. */
export function argmaxLabels(logits: ArrayLike<number>, k: number): Uint8Array {
  // Ids are bytes and 255 means void, so at most 255 classes.
  if (!Number.isInteger(k) || k < 1 || k > 255) throw new RangeError(`k must be an integer in 1..255 (got ${k})`);
  if (logits.length % k !== 0) throw new RangeError(`${logits.length} logits are not a whole number of pixels of ${k} classes`);
  const n = logits.length / k;
  const out = new Uint8Array(n);
  for (let p = 0, base = 0; p < n; p++, base += k) {
    let best = -Infinity, id = 0;
    for (let c = 0; c < k; c++) {
      const v = logits[base + c];
      if (v > best) { best = v; id = c; }
    }
    out[p] = id;
  }
  return out;
}

function checkPalette(palette: [number, number, number][]): void {
  if (palette.length > 255) throw new RangeError(`palette has ${palette.length} colours; ids are 0..254 (255 is void)`);
  for (const [i, c] of palette.entries()) {
    if (c.length !== 3 || !c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) throw new RangeError(`palette[${i}] is not three integers in 0..255: ${JSON.stringify(c)}`);
  }
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))), 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * An 8-bit palette PNG whose pixel values are the label ids. PLTE always has 256 entries so every
 * byte is a valid index: palette[id] for the given ids, black for the rest, including void (255).
 */
export function palettePng(labels: Uint8Array, width: number, height: number, palette: [number, number, number][]): Buffer {
  checkSize('size', width, height);
  if (labels.length !== width * height) throw new RangeError(`labels hold ${labels.length} values, expected ${width}x${height} = ${width * height}`);
  checkPalette(palette);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 3; // colour type: indexed; compression, filter and interlace stay 0
  const plte = Buffer.alloc(256 * 3);
  palette.forEach((c, i) => plte.set(c, i * 3));
  // Filter 0 on every row and run-length deflate: label maps are flat runs; Z_RLE is 8x faster than
  // level 6 on a 1024x512 map for a similar size (0.14 vs 1.1 ms, measured).
  const stride = width + 1;
  const scan = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) scan.set(labels.subarray(y * width, (y + 1) * width), y * stride + 1);
  return Buffer.concat([PNG_SIG, pngChunk('IHDR', ihdr), pngChunk('PLTE', plte), pngChunk('IDAT', zlib.deflateSync(scan, { strategy: zlib.constants.Z_RLE })), pngChunk('IEND', Buffer.alloc(0))]);
}

const corruptPng = (why: string) => new ImageError(400, `the PNG is truncated or corrupt: ${why}`, HINT_CORRUPT);

/**
 * The raw indices of an 8-bit, non-interlaced indexed (colour type 3) or greyscale (type 0) PNG,
 * from any encoder (all five row filters). palette is PLTE's colours, empty for greyscale.
 */
export function readIndexedPng(png: Buffer): { width: number; height: number; indices: Uint8Array; palette: [number, number, number][] } {
  if (png.length < 8 || !png.subarray(0, 8).equals(PNG_SIG)) throw corruptPng('no PNG signature');
  let width = 0, height = 0, seenEnd = false;
  const idat: Buffer[] = [];
  const palette: [number, number, number][] = [];
  for (let o = 8; o < png.length && !seenEnd;) {
    if (o + 12 > png.length) throw corruptPng(`chunk header cut off at byte ${o}`);
    const len = png.readUInt32BE(o);
    const type = png.toString('latin1', o + 4, o + 8);
    if (o + 12 + len > png.length) throw corruptPng(`${type} chunk cut off`);
    const data = png.subarray(o + 8, o + 8 + len);
    if (zlib.crc32(data, zlib.crc32(png.subarray(o + 4, o + 8))) !== png.readUInt32BE(o + 8 + len)) throw corruptPng(`bad CRC in ${type}`);
    if (o === 8 && type !== 'IHDR') throw corruptPng('IHDR is not the first chunk');
    if (type === 'IHDR') {
      if (len !== 13) throw corruptPng('IHDR is not 13 bytes');
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colour, , , interlace] = data.subarray(8);
      if (depth !== 8 || (colour !== 3 && colour !== 0) || interlace !== 0) {
        throw new ImageError(415, `unsupported PNG: bit depth ${depth}, colour type ${colour}, interlace ${interlace} (readable: 8-bit indexed or greyscale, not interlaced)`, 'Write the label PNG as 8-bit indexed or greyscale without interlace.');
      }
      if (width === 0 || height === 0) throw corruptPng(`size ${width}x${height}`);
    } else if (type === 'PLTE') {
      for (let i = 0; i + 3 <= len; i += 3) palette.push([data[i], data[i + 1], data[i + 2]]);
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      seenEnd = true;
    }
    o += 12 + len;
  }
  if (!width) throw corruptPng('no IHDR');
  if (!idat.length) throw corruptPng('no IDAT');
  const stride = width + 1;
  let raw: Buffer;
  try {
    // Bounded output: a small IDAT cannot inflate into more than the image needs.
    raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: height * stride });
  } catch (e) {
    throw corruptPng(`IDAT does not inflate (${(e as Error).message})`);
  }
  if (raw.length !== height * stride) throw corruptPng(`IDAT holds ${raw.length} bytes, expected ${height * stride}`);
  const out = new Uint8Array(width * height);
  // One byte per pixel, so "left" is x - 1 and "up" the previous output row.
  for (let y = 0; y < height; y++) {
    const f = raw[y * stride], r = y * stride + 1, o = y * width, u = o - width;
    switch (f) {
      case 0: for (let x = 0; x < width; x++) out[o + x] = raw[r + x]; break;
      case 1: for (let x = 0; x < width; x++) out[o + x] = raw[r + x] + (x ? out[o + x - 1] : 0); break;
      case 2: for (let x = 0; x < width; x++) out[o + x] = raw[r + x] + (y ? out[u + x] : 0); break;
      case 3:
        for (let x = 0; x < width; x++) out[o + x] = raw[r + x] + (((x ? out[o + x - 1] : 0) + (y ? out[u + x] : 0)) >> 1);
        break;
      case 4:
        for (let x = 0; x < width; x++) {
          const a = x ? out[o + x - 1] : 0, b = y ? out[u + x] : 0, c = x && y ? out[u + x - 1] : 0;
          const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
          out[o + x] = raw[r + x] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default: throw corruptPng(`row ${y} has filter type ${f}`);
    }
  }
  return { width, height, indices: out, palette };
}

/**
 * out = (1 - alpha) * frame + alpha * palette[label], rounded; void and ids without a colour keep
 * the frame. JPEG quality 85.
 */
export async function overlayJpeg(frame: Frame, labels: Uint8Array, palette: [number, number, number][], alpha: number): Promise<Buffer> {
  return rgbJpeg(blendOverlay(frame, labels, palette, alpha), frame.width, frame.height);
}

/** RGB bytes as a JPEG at quality 85 (the overlays'), encoded in sharp's threads. */
export function rgbJpeg(rgb: Buffer, width: number, height: number): Promise<Buffer> {
  // Already decoded, so the pixel limit is the frame itself.
  return sharp(rgb, { raw: { width, height, channels: 3 }, limitInputPixels: width * height, sequentialRead: true }).jpeg({ quality: 85 }).toBuffer();
}

/** The blend of overlayJpeg as raw RGB (video frames go to the encoder as they are). */
export function blendOverlay(frame: Frame, labels: Uint8Array, palette: [number, number, number][], alpha: number, out = Buffer.alloc(frame.data.length)): Buffer {
  const { width, height, data } = frame;
  checkSize('frame size', width, height);
  if (data.length !== width * height * 3) throw new RangeError(`frame holds ${data.length} bytes, expected ${width}x${height}x3`);
  if (labels.length !== width * height) throw new RangeError(`labels hold ${labels.length} values, expected the frame's ${width}x${height}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`alpha must be in [0, 1] (got ${alpha})`);
  checkPalette(palette);
  // A lookup table per (class, channel) over the 256 input values, the same rounding as the formula:
  // a video frame is half a million pixels, and the per-pixel arithmetic took 14 ms of it at 1024x512.
  const k = palette.length;
  const lut = new Uint8Array((k + 1) * 3 * 256);
  for (let c = 0; c <= k; c++) {
    for (let j = 0; j < 3; j++) {
      for (let v = 0; v < 256; v++) lut[(c * 3 + j) * 256 + v] = c === k ? v : Math.round((1 - alpha) * v + alpha * palette[c][j]);
    }
  }
  // Void and ids without a colour use the last row: the frame unchanged.
  const row = new Uint32Array(256).fill(k * 3 * 256);
  for (let c = 0; c < k; c++) if (c !== VOID) row[c] = c * 3 * 256;
  for (let p = 0, i = 0; p < labels.length; p++, i += 3) {
    const r = row[labels[p]];
    out[i] = lut[r + data[i]];
    out[i + 1] = lut[r + 256 + data[i + 1]];
    out[i + 2] = lut[r + 512 + data[i + 2]];
  }
  return out;
}

/** Labels as their palette colours, RGB (void and ids without a colour black): the mask video's frames. */
export function paletteRgb(labels: Uint8Array, palette: [number, number, number][], out = Buffer.alloc(labels.length * 3)): Buffer {
  const lut = new Uint8Array(256 * 3);
  palette.forEach((c, i) => lut.set(c, i * 3));
  for (let p = 0; p < labels.length; p++) { const k = labels[p] * 3; out[p * 3] = lut[k]; out[p * 3 + 1] = lut[k + 1]; out[p * 3 + 2] = lut[k + 2]; }
  return out;
}

/** The nearest palette colour's id for each RGB pixel (reads a mask video back; exact on lossless frames). */
export function labelsFromPaletteRgb(rgb: Uint8Array, palette: [number, number, number][]): Uint8Array {
  const out = new Uint8Array(rgb.length / 3);
  for (let p = 0; p < out.length; p++) {
    let best = VOID, bestD = 3 * 255 * 255 + 1;
    const r = rgb[p * 3], g = rgb[p * 3 + 1], b = rgb[p * 3 + 2];
    if (r === 0 && g === 0 && b === 0) { out[p] = VOID; continue; }
    for (let i = 0; i < palette.length; i++) {
      const d = (r - palette[i][0]) ** 2 + (g - palette[i][1]) ** 2 + (b - palette[i][2]) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    out[p] = best;
  }
  return out;
}

type ClassInfo = { id: number; name: string; color?: [number, number, number] };

/** A bundle's classes as the palette the drawing functions take (a class without a colour draws black). */
export function paletteOf(classes: ClassInfo[]): [number, number, number][] {
  return classes.map((c) => c.color ?? [0, 0, 0]);
}

/** The classes present in a label map, by name, with their share rounded to 5 digits (per-frame stats lines). */
export function presentFractions(labels: Uint8Array, classes: ClassInfo[]): Record<string, number> {
  const fr = classFractions(labels, classes.length);
  return Object.fromEntries(classes.filter((c) => fr[c.id] > 0).map((c) => [c.name, Number(fr[c.id].toFixed(5))]));
}

/** Share of each class among labelled pixels (id < k); void (255) and other ids >= k count in neither. */
export function classFractions(labels: Uint8Array, k: number): Float64Array {
  if (!Number.isInteger(k) || k < 1 || k > 255) throw new RangeError(`k must be an integer in 1..255 (got ${k})`);
  const counts = new Float64Array(k);
  let n = 0;
  for (let p = 0; p < labels.length; p++) {
    const id = labels[p];
    if (id < k) { counts[id]++; n++; }
  }
  if (n) for (let c = 0; c < k; c++) counts[c] /= n;
  return counts;
}
