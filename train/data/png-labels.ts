/**
 * The one reader of label maps, by what the PNG stores:
 *   palette (GTA5 as shipped)          -> the indices, which are labelIds
 *   greyscale, greyscale+alpha         -> the values: labelIds, or trainIds in `*_labelTrainIds.png`
 *   RGB, RGBA (`*_color.png`, colour-coded GTA5 copies), and a palette `*_color.png`
 *                                      -> Cityscapes colours to trainIds, unknown colours 255
 * An RGB file whose pixels are all grey (r = g = b) is a greyscale map stored as RGB, which is what
 * libvips (sharp) writes for one-channel data, this project's own `i2i synth` included: its values
 * are read. (No real colour label is all grey: only void, building and pole have grey colours.)
 * 16-bit greyscale: the values themselves when all are below 256; a file whose every value is a
 * multiple of 257 is an 8-bit map widened by an image tool (7 -> 1799) and is read back as 8-bit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../core/errors';
import { CITYSCAPES_LABEL_COLOURS, CITYSCAPES_PALETTE, colourToTrainId, IGNORE, labelIdsToTrainIds, TRAIN_LABEL_IDS, trainIdValues } from '../../core/labels';
import { DamagedFileError, decodePng, type PngRaster } from './png-decode';

export interface LabelMap {
  /** trainIds (0..18, 255 ignored), row-major. */
  ids: Uint8Array;
  width: number;
  height: number;
  /** How the file was read, for messages: "8-bit palette indices as labelIds". */
  encoding: string;
}

/** What a file's values mean, from Cityscapes' file names; anything else holds labelIds. */
export type LabelMeaning = 'labelIds' | 'trainIds' | 'colours';
export function labelMeaning(file: string): LabelMeaning {
  const b = path.basename(file);
  return /_labelTrainIds\.png$/i.test(b) ? 'trainIds' : /_color\.png$/i.test(b) ? 'colours' : 'labelIds';
}

const TYPE_NAMES: Record<number, string> = { 0: 'greyscale', 2: 'RGB', 3: 'palette', 4: 'greyscale+alpha', 6: 'RGBA' };

async function readPng(file: string): Promise<PngRaster> {
  if (!/\.png$/i.test(file)) throw new UserError(`Label map ${file} is not a PNG.`, 'Label maps must be PNGs (palette or greyscale labelIds, or Cityscapes colours); JPEG would blur the ids.');
  let buf: Buffer;
  try { buf = await fs.promises.readFile(file); } catch (e) { throw new UserError(`Cannot read label map ${file}: ${(e as Error).message}.`, 'Check that the file exists and is readable.'); }
  return decodePng(buf, file);
}

/** The stored value of each pixel (index, or grey level), before any mapping; colour files have none. */
function storedValues(png: PngRaster, file: string): Uint8Array {
  const n = png.width * png.height, out = new Uint8Array(n);
  const s = png.samples, ch = png.channels;
  if (png.bitDepth === 16) {
    let small = true, widened = true;
    for (let i = 0; i < n; i++) { const v = s[i * ch]; if (v > 255) small = false; if (v % 257 !== 0) widened = false; }
    if (!small && !widened) throw new UserError(`${file} is a 16-bit greyscale map with values above 255.`, 'Label maps hold 8-bit ids (Cityscapes labelIds or trainIds); convert it to 8-bit ids.');
    for (let i = 0; i < n; i++) out[i] = small ? s[i * ch] : s[i * ch] / 257;
    return out;
  }
  if (ch === 1) return s as Uint8Array; // palette indices or grey values, already one per pixel
  for (let i = 0; i < n; i++) out[i] = s[i * ch];
  return out;
}

/** Colours to trainIds: RGB(A) samples, or a palette's colours (alpha 0 means unlabelled). */
function coloursToTrainIds(png: PngRaster): Uint8Array {
  const n = png.width * png.height, out = new Uint8Array(n);
  const s = png.samples, ch = png.channels, shift = png.bitDepth === 16 ? 8 : 0;
  if (png.colorType === 3) {
    const lut = new Uint8Array(256).fill(IGNORE);
    for (let k = 0; k * 3 + 2 < png.palette!.length; k++) lut[k] = colourToTrainId(png.palette![k * 3], png.palette![k * 3 + 1], png.palette![k * 3 + 2]);
    for (let i = 0; i < n; i++) out[i] = lut[s[i]];
    return out;
  }
  for (let i = 0; i < n; i++) {
    const o = i * ch;
    out[i] = ch === 4 && s[o + 3] === 0 ? IGNORE : colourToTrainId(s[o] >> shift, s[o + 1] >> shift, s[o + 2] >> shift);
  }
  return out;
}

/** RGB(A) samples with r = g = b at every pixel. */
function allGrey(png: PngRaster): boolean {
  const s = png.samples, ch = png.channels;
  for (let o = 0; o < s.length; o += ch) if (s[o] !== s[o + 1] || s[o] !== s[o + 2]) return false;
  return true;
}

/** Whether the file's pixels are colours to look up (else stored values: indices or grey levels). */
function readsAsColours(png: PngRaster, meaning: LabelMeaning): boolean {
  if (png.colorType === 3) return meaning === 'colours';
  return (png.colorType === 2 || png.colorType === 6) && !allGrey(png);
}

function describe(png: PngRaster, how: string): string {
  return `${png.bitDepth}-bit ${TYPE_NAMES[png.colorType]}${png.interlaced ? ' (interlaced)' : ''} ${how}`;
}

/** Decodes a label map into trainIds; a damaged file throws DamagedFileError (a UserError). */
export async function readLabelMap(file: string): Promise<LabelMap> {
  const png = await readPng(file);
  const meaning = labelMeaning(file);
  const base = { width: png.width, height: png.height };
  if (readsAsColours(png, meaning)) {
    return { ...base, ids: coloursToTrainIds(png), encoding: describe(png, png.colorType === 3 ? 'palette colours as Cityscapes colours' : 'as Cityscapes colours') };
  }
  const values = storedValues(png, file);
  const what = png.colorType === 3 ? 'indices' : png.channels >= 3 ? 'grey values' : 'values';
  if (meaning === 'trainIds') return { ...base, ids: trainIdValues(values), encoding: describe(png, `${what} as trainIds`) };
  return { ...base, ids: labelIdsToTrainIds(values), encoding: describe(png, `${what} as labelIds`) };
}

/**
 * Why a label map gives no labelled pixel, from its stored values: for the error that stops a run
 * whose source batches are all ignored.
 */
export async function diagnoseLabelMap(file: string): Promise<string> {
  let png: PngRaster;
  try { png = await readPng(file); } catch (e) { return `${file} cannot be read: ${(e as Error).message}`; }
  const meaning = labelMeaning(file);
  const head = `${file} (${describe(png, '')}`.trimEnd() + ')';
  if (readsAsColours(png, meaning)) {
    const seen = new Set<string>();
    const px = png.colorType === 3 ? (i: number) => Array.from(png.palette!.subarray(png.samples[i] * 3, png.samples[i] * 3 + 3)) : (i: number) => [0, 1, 2].map((c) => png.samples[i * png.channels + c] >> (png.bitDepth === 16 ? 8 : 0));
    for (let i = 0; i < png.width * png.height && seen.size < 6; i++) seen.add(px(i).join(','));
    const known = new Set(CITYSCAPES_LABEL_COLOURS.map((c) => c.join(',')));
    const unknown = [...seen].filter((c) => !known.has(c));
    return `${head} holds colours ${[...seen].map((c) => `(${c})`).join(' ')}`
      + (unknown.length ? `, not Cityscapes colours: these are not Cityscapes colour labels` : ': only void classes, no pixel of the 19 training classes');
  }
  let values: Uint8Array;
  try { values = storedValues(png, file); } catch (e) { return (e as Error).message; }
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  const list = distinct.slice(0, 12).join(', ') + (distinct.length > 12 ? ', ...' : '');
  const reds = new Set(CITYSCAPES_PALETTE.map((c) => c[0]));
  let cause: string;
  if (meaning === 'trainIds') cause = 'trainIds of none of the 19 classes';
  else if (distinct.length > 1 && distinct.every((v) => reds.has(v) || v === 0) && distinct.some((v) => v > 33)) cause = 'the red channel of Cityscapes colours: palette labels read as colours and saved as grey by some tool; use the original palette or labelIds files';
  else if (distinct.every((v) => v < CITYSCAPES_PALETTE.length || v === IGNORE) && distinct.some((v) => v > 0 && !TRAIN_LABEL_IDS.includes(v))) cause = 'trainIds rather than Cityscapes labelIds: name such files *_labelTrainIds.png (Cityscapes layout) or convert them to labelIds';
  else cause = 'none of the labelIds of the 19 classes (7 road, 8 sidewalk, 11 building, ... 33 bicycle)';
  return `${head} ${png.colorType === 3 ? 'indices' : 'values'} are ${list}: ${cause}`;
}

export { DamagedFileError };
