import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { disposeCheckpoint, readCheckpoint } from '../train/checkpoint';
import * as tf from '../core/tf';
import type { I2IModel } from '../train/i2i';

/** Every tensor of a run's checkpoint as plain numbers (for bit-for-bit comparisons). */
export function checkpointValues(run: string): Map<string, number[]> {
  const c = readCheckpoint(run);
  const m = new Map([...c.tensors].map(([k, t]) => [k, Array.from(t.dataSync())]));
  disposeCheckpoint(c);
  return m;
}

export function tmpDir(prefix = 'i2i-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The UCI optdigits test set shipped in data/ (the same file as shared/data/optdigits). */
export const OPTDIGITS = path.resolve(__dirname, '../data/optdigits');

/** IDX writer for tests: big-endian header, uint8 payload. */
export function writeIdx(file: string, magic: number, dims: number[], data: Uint8Array, gzip = false): void {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  const buf = Buffer.concat([head, Buffer.from(data)]);
  fs.writeFileSync(file, gzip ? zlib.gzipSync(buf) : buf);
}

/** MATLAB level-5 writer for tests (numeric arrays, optionally miCOMPRESSED), per the MAT-file spec. */
export function writeMat5(file: string, vars: { name: string; dims: number[]; data: ArrayLike<number>; type: 'uint8' | 'double' }[], compress = false): void {
  const pad8 = (b: Buffer) => Buffer.concat([b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
  const element = (type: number, body: Buffer) => {
    const tag = Buffer.alloc(8);
    tag.writeUInt32LE(type, 0);
    tag.writeUInt32LE(body.length, 4);
    return Buffer.concat([tag, pad8(body)]);
  };
  const header = Buffer.alloc(128, ' ');
  header.write('MATLAB 5.0 MAT-file, Platform: test, Created on: today', 0, 'latin1');
  header.fill(0, 116, 124);
  header.writeUInt16LE(0x0100, 124);
  header.write('IM', 126, 'latin1');
  const parts: Buffer[] = [header];
  for (const v of vars) {
    const flags = Buffer.alloc(8);
    flags.writeUInt32LE(v.type === 'uint8' ? 9 : 6, 0); // mxUINT8_CLASS / mxDOUBLE_CLASS
    const dims = Buffer.alloc(4 * v.dims.length);
    v.dims.forEach((d, i) => dims.writeInt32LE(d, 4 * i));
    const real = v.type === 'uint8' ? Buffer.from(Uint8Array.from(v.data)) : Buffer.from(Float64Array.from(v.data).buffer);
    const body = Buffer.concat([element(6, flags), element(5, dims), element(1, Buffer.from(v.name, 'latin1')), element(v.type === 'uint8' ? 2 : 9, real)]);
    const matrix = element(14, body);
    if (!compress) { parts.push(matrix); continue; }
    // miCOMPRESSED elements carry no padding: tag + zlib stream.
    const z = zlib.deflateSync(matrix);
    const tag = Buffer.alloc(8);
    tag.writeUInt32LE(15, 0);
    tag.writeUInt32LE(z.length, 4);
    parts.push(tag, z);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}

/** Non-trivial batch-norm running statistics (fresh models have mean 0, variance 1). */
export function randomiseStatistics(m: I2IModel): void {
  for (const n of m.networks()) for (const [k, v] of n.store.buffers) {
    tf.tidy(() => v.assign(k.endsWith('/var') ? tf.mul(v, tf.randomUniform(v.shape, 0.5, 1.5, 'float32', 1)) : tf.add(v, tf.randomUniform(v.shape, -0.1, 0.1, 'float32', 2))));
  }
}

/** Whether a process id is still alive (signal 0 probes without signalling). */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** The package's bin as a user's shell runs it (`npx i2i ...`): exit code, stdout and stderr. */
export function runBin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = path.resolve(__dirname, '..');
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin', 'i2i.js'), ...args], { cwd: root, maxBuffer: 1 << 26 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
  });
}
