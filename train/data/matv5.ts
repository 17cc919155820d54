/**
 * MATLAB level-5 MAT-file reader: enough for numeric arrays (SVHN's X and y), plain or
 * miCOMPRESSED (zlib). Layout: 128-byte header (text, subsystem offset, version 0x0100, endian
 * "IM"), then data elements: tag (type, byte count) or a small element packed in 8 bytes;
 * elements are padded to 8 bytes. A miMATRIX holds flags, dimensions, name and the real part.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { UserError } from '../../core/errors';

export const MI = { INT8: 1, UINT8: 2, INT16: 3, UINT16: 4, INT32: 5, UINT32: 6, SINGLE: 7, DOUBLE: 9, INT64: 12, UINT64: 13, MATRIX: 14, COMPRESSED: 15 } as const;

export interface MatArray { name: string; dims: number[]; /** column-major, as MATLAB stores it */ data: ArrayLike<number> }

interface Element { type: number; body: Buffer; next: number }

function readElement(buf: Buffer, off: number, le: boolean, file: string): Element {
  if (off + 8 > buf.length) throw new UserError(`${file} is truncated inside a data element tag.`, 'Download the file again.');
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const first = u32(off);
  if (first >>> 16 !== 0) {
    // Small data element: byte count in the upper 16 bits, type in the lower, data in 4 bytes.
    const n = first >>> 16;
    return { type: first & 0xffff, body: buf.subarray(off + 4, off + 4 + n), next: off + 8 };
  }
  const n = u32(off + 4);
  const end = off + 8 + n;
  if (end > buf.length) throw new UserError(`${file} is truncated: an element needs ${end} bytes, the file has ${buf.length}.`, 'Download the file again.');
  return { type: first, body: buf.subarray(off + 8, end), next: first === MI.COMPRESSED ? end : off + 8 + Math.ceil(n / 8) * 8 };
}

function numeric(el: Element, le: boolean): ArrayLike<number> {
  const b = el.body;
  const copy = (bytes: number) => {
    const c = Buffer.alloc(b.length - (b.length % bytes));
    b.copy(c, 0, 0, c.length);
    if (!le && bytes > 1) (bytes === 2 ? c.swap16() : bytes === 4 ? c.swap32() : c.swap64());
    return c.buffer.slice(c.byteOffset, c.byteOffset + c.length);
  };
  switch (el.type) {
    case MI.INT8: return new Int8Array(copy(1));
    case MI.UINT8: return new Uint8Array(copy(1));
    case MI.INT16: return new Int16Array(copy(2));
    case MI.UINT16: return new Uint16Array(copy(2));
    case MI.INT32: return new Int32Array(copy(4));
    case MI.UINT32: return new Uint32Array(copy(4));
    case MI.SINGLE: return new Float32Array(copy(4));
    case MI.DOUBLE: return new Float64Array(copy(8));
    case MI.INT64: return Array.from(new BigInt64Array(copy(8)), Number);
    case MI.UINT64: return Array.from(new BigUint64Array(copy(8)), Number);
    default: throw new UserError(`MAT element type ${el.type} is not a numeric type this reader supports.`, 'Save the variable as a numeric array.');
  }
}

function parseMatrix(body: Buffer, le: boolean, file: string): MatArray | undefined {
  const flags = readElement(body, 0, le, file);
  const word = le ? flags.body.readUInt32LE(0) : flags.body.readUInt32BE(0);
  const cls = word & 0xff;
  const complex = (word >> 11) & 1;
  // Numeric classes are 6 (double) .. 15 (uint64); cells, structs, chars and sparse are skipped.
  if (cls < 6 || cls > 15 || complex) return undefined;
  const dimsEl = readElement(body, flags.next, le, file);
  const dims = Array.from(numeric(dimsEl, le));
  const nameEl = readElement(body, dimsEl.next, le, file);
  const name = nameEl.body.toString('latin1');
  const real = readElement(body, nameEl.next, le, file);
  const data = numeric(real, le);
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new UserError(`${file}: variable ${name} has ${data.length} values for dimensions ${dims.join('x')}.`, 'The file is truncated or corrupt.');
  return { name, dims, data };
}

/** Reads every numeric variable of a MAT v5 file. */
export function readMat(file: string): Map<string, MatArray> {
  if (!fs.existsSync(file)) throw new UserError(`MAT file not found: ${file}.`, 'Check the path.');
  const buf = fs.readFileSync(file);
  if (buf.length < 128) throw new UserError(`${file} is too short to be a MAT file.`, 'Download it again.');
  const text = buf.subarray(0, 116).toString('latin1');
  if (text.startsWith('\x89HDF') || buf.subarray(512, 516).toString('latin1') === '\x89HDF') {
    throw new UserError(`${file} is a MAT v7.3 (HDF5) file.`, 'Save it as v5/v7 (MATLAB: save -v7) or use the original SVHN *_32x32.mat.');
  }
  const endian = buf.subarray(126, 128).toString('latin1');
  if (endian !== 'IM' && endian !== 'MI') throw new UserError(`${file} is not a MATLAB v5 MAT file (no endian indicator).`, 'Use a MATLAB level-5 MAT file.');
  const le = endian === 'IM';
  const vars = new Map<string, MatArray>();
  let off = 128;
  while (off + 8 <= buf.length) {
    let el = readElement(buf, off, le, file);
    off = el.next;
    if (el.type === MI.COMPRESSED) {
      let inner: Buffer;
      try { inner = zlib.inflateSync(el.body); } catch (e) {
        throw new UserError(`${file}: a compressed variable does not inflate (${(e as Error).message}).`, 'The file is truncated; download it again.');
      }
      el = readElement(inner, 0, le, file);
    }
    if (el.type !== MI.MATRIX) continue;
    const m = parseMatrix(el.body, le, file);
    if (m) vars.set(m.name, m);
  }
  return vars;
}
