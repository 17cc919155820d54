/**
 * Reader for the weights of a TensorFlow.js model.json (layers or graph format): the manifest's
 * groups of shards, concatenated, sliced per weight, dequantised (uint8/uint16 with min/scale,
 * float16) to float32. Own code on the documented format, so any stage can read a model without
 * tfjs's network loaders (which have no file:// handler without tfjs-node).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from './errors';

export interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; min?: number; scale?: number };
}
export interface ManifestGroup { paths: string[]; weights: ManifestWeight[] }

export interface ModelJson {
  format?: string;
  modelTopology?: unknown;
  weightsManifest: ManifestGroup[];
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2, bool: 1 };

export function readModelJson(file: string): ModelJson {
  if (!fs.existsSync(file)) throw new UserError(`Model file not found: ${file}.`, 'Pass the path of a tfjs model.json (npm run weights:resnet50 fetches Keras ResNet50).');
  let m: ModelJson;
  try { m = JSON.parse(fs.readFileSync(file, 'utf8')); } catch (e) {
    throw new UserError(`${file} is not JSON (${(e as Error).message}).`, 'Pass a TensorFlow.js model.json.');
  }
  if (!Array.isArray(m.weightsManifest)) throw new UserError(`${file} has no weightsManifest.`, 'Pass a TensorFlow.js model.json (layers or graph model).');
  return m;
}

/** float16 bits -> float32 value. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Every weight of a model.json as float32 (int32 weights are converted), by manifest name. */
export function readWeights(file: string): Map<string, { shape: number[]; values: Float32Array }> {
  const m = readModelJson(file);
  const dir = path.dirname(file);
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const g of m.weightsManifest) {
    const parts = g.paths.map((p) => {
      const f = path.join(dir, p);
      if (!fs.existsSync(f)) throw new UserError(`Weight shard ${f} (listed in ${file}) is missing.`, 'Copy every shard next to model.json.');
      return fs.readFileSync(f);
    });
    const buf = Buffer.concat(parts);
    let off = 0;
    for (const w of g.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const stored = w.quantization?.dtype ?? w.dtype;
      const bytes = BYTES[stored];
      if (!bytes) throw new UserError(`${file}: weight ${w.name} has unsupported dtype ${stored}.`, 'Re-export it as float32, float16, uint8 or uint16.');
      if (off + n * bytes > buf.length) throw new UserError(`${file}: shards end before weight ${w.name} (need ${off + n * bytes} bytes, have ${buf.length}).`, 'The shards are truncated; fetch them again.');
      const values = new Float32Array(n);
      const q = w.quantization;
      for (let i = 0; i < n; i++) {
        const at = off + i * bytes;
        switch (stored) {
          case 'float32': values[i] = buf.readFloatLE(at); break;
          case 'int32': values[i] = buf.readInt32LE(at); break;
          case 'float16': values[i] = halfToFloat(buf.readUInt16LE(at)); break;
          case 'uint8': values[i] = q ? buf[at] * q.scale! + q.min! : buf[at]; break;
          case 'uint16': values[i] = q ? buf.readUInt16LE(at) * q.scale! + q.min! : buf.readUInt16LE(at); break;
          default: values[i] = buf[at];
        }
      }
      out.set(w.name, { shape: w.shape, values });
      off += n * bytes;
    }
  }
  return out;
}
