/**
 * IDX reader (MNIST's format): big-endian; magic 2051 for images (N, rows, cols, uint8 pixels),
 * 2049 for labels (N, uint8). Optionally gzipped.
 */
import { UserError } from '../../core/errors';
import { readMaybeCompressed, requireFile } from './files';

export const IDX_IMAGES_MAGIC = 2051;
export const IDX_LABELS_MAGIC = 2049;

export interface IdxImages { n: number; rows: number; cols: number; pixels: Uint8Array }

function header(buf: Buffer, path: string, expected: number, headerBytes: number): number {
  if (buf.length < headerBytes) throw new UserError(`${path} is truncated: ${buf.length} bytes, shorter than its IDX header.`, 'Download the file again.');
  const magic = buf.readUInt32BE(0);
  if (magic !== expected) {
    throw new UserError(`${path} has magic number ${magic}, expected ${expected} (${expected === IDX_IMAGES_MAGIC ? 'IDX images' : 'IDX labels'}).`,
      'Check that images and labels files are not swapped and the file is not compressed under another name.');
  }
  return buf.readUInt32BE(4);
}

export function readIdxImages(path: string): IdxImages {
  requireFile(path, 'IDX image file', 'Pass the folder holding the MNIST files (train-images-idx3-ubyte, ...).');
  const buf = readMaybeCompressed(path);
  const n = header(buf, path, IDX_IMAGES_MAGIC, 16);
  const rows = buf.readUInt32BE(8);
  const cols = buf.readUInt32BE(12);
  const need = 16 + n * rows * cols;
  if (buf.length < need) throw new UserError(`${path} is truncated: ${buf.length} bytes, its header announces ${need}.`, 'Download the file again.');
  return { n, rows, cols, pixels: new Uint8Array(buf.buffer, buf.byteOffset + 16, n * rows * cols) };
}

export function readIdxLabels(path: string): Uint8Array {
  requireFile(path, 'IDX label file', 'Pass the folder holding the MNIST files (train-labels-idx1-ubyte, ...).');
  const buf = readMaybeCompressed(path);
  const n = header(buf, path, IDX_LABELS_MAGIC, 8);
  if (buf.length < 8 + n) throw new UserError(`${path} is truncated: ${buf.length} bytes, its header announces ${8 + n}.`, 'Download the file again.');
  return new Uint8Array(buf.buffer, buf.byteOffset + 8, n);
}
