/** File access shared by the readers: existence checks with actionable errors, transparent .gz/.bz2. */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { UserError } from '../../core/errors';

export function requireFile(path: string, what: string, fix: string): void {
  if (!fs.existsSync(path)) throw new UserError(`${what} not found at ${path}.`, fix);
}

/** Reads a file, decompressing by extension (.gz via zlib, .bz2 via seek-bzip). */
export function readMaybeCompressed(path: string): Buffer {
  const raw = fs.readFileSync(path);
  try {
    if (path.endsWith('.gz')) return zlib.gunzipSync(raw);
    if (path.endsWith('.bz2')) {
      // seek-bzip: pure JS, synchronous; no native build.
      const Bunzip = require('seek-bzip') as { decode(b: Buffer): Buffer };
      return Bunzip.decode(raw);
    }
  } catch (e) {
    throw new UserError(`${path} could not be decompressed (${(e as Error).message}).`,
      'The download is probably truncated; fetch it again.');
  }
  return raw;
}

/** First existing path among candidates, or undefined. */
export function firstExisting(candidates: string[]): string | undefined {
  return candidates.find((p) => fs.existsSync(p));
}
