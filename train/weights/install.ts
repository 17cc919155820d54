/**
 * `i2i weights <encoder>`: puts Keras Applications' ImageNet file of an encoder into the weights
 * cache, from a file the user has (--from) or from Keras' published URL. Either way the file must map
 * completely onto the encoder (by the same mapping --init uses) before it is installed, and it is
 * written under a temporary name and renamed: the cache holds complete files or none.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../../core/errors';
import { initFromKeras, type InitReport } from '../init';
import { ENCODERS } from '../models/registry';
import { IMAGENET, imagenetUrl, weightsDir, type ImagenetEncoder } from './imagenet';

export async function md5File(file: string): Promise<string> {
  const h = createHash('md5');
  await pipeline(fs.createReadStream(file), h);
  return h.digest('hex');
}

/** Loads `file` into a freshly built segmentation encoder: throws unless every layer maps. */
export function validateWeights(encoder: ImagenetEncoder, file: string): InitReport {
  const f = ENCODERS[encoder].build({ kind: 'segment', channels: 3, imageSize: 64, widths: [1, 1, 1, 1], recompute: false }, 'f', 0);
  try {
    return initFromKeras(f.store, file, { allowUnmatched: false });
  } finally { f.store.dispose(); }
}

async function download(url: string, dest: string, encoder: ImagenetEncoder, log: (l: string) => void): Promise<void> {
  const manual = (why: string) => new UserError(`Could not download ${url} (${why}).`,
    `Download it on a machine with internet (e.g. curl -LO ${url}), copy it here and run i2i weights ${encoder} --from FILE.`);
  // Bounded without limiting a slow link: 60 s for the connection and headers, then the body may
  // take as long as it keeps arriving (no 60 s without a byte).
  const ac = new AbortController();
  let idle = setTimeout(() => ac.abort(new Error('no answer within 60 s')), 60_000);
  const stall = () => { clearTimeout(idle); idle = setTimeout(() => ac.abort(new Error('no data for 60 s')), 60_000); };
  let res: Response;
  try {
    res = await fetch(url, { redirect: 'follow', signal: ac.signal });
  } catch (e) {
    clearTimeout(idle);
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw manual(cause?.code ?? cause?.message ?? (e as Error).message);
  }
  stall();
  if (!res.ok || !res.body) throw manual(`HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  let got = 0, shown = 0;
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (c: Buffer) => {
    stall();
    got += c.length;
    if (total && got / total >= shown + 0.1) { shown = Math.floor((got / total) * 10) / 10; log(`[weights] ${(got / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`); }
  });
  try {
    await pipeline(body, fs.createWriteStream(dest));
  } catch (e) {
    fs.rmSync(dest, { force: true });
    throw manual((ac.signal.reason as Error | undefined)?.message ?? (e as Error).message);
  } finally {
    clearTimeout(idle);
  }
}

export interface InstallOptions {
  encoder: string;
  /** A copy of the file the user already has; else it is downloaded. */
  from?: string;
  /** Install here instead of the weights cache. */
  out?: string;
  log?: (l: string) => void;
}

/** Returns the installed file's path. */
export async function installWeights(o: InstallOptions): Promise<string> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  if (!Object.hasOwn(IMAGENET, o.encoder)) {
    throw new UserError(`Keras publishes no ImageNet weights for "${o.encoder}".`, `Use one of: ${Object.keys(IMAGENET).join(', ')}.`);
  }
  const encoder = o.encoder as ImagenetEncoder;
  const pub = IMAGENET[encoder];
  const dir = path.resolve(o.out ?? weightsDir());
  const dest = path.join(dir, pub.file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${pub.file}.tmp${process.pid}`);
  try {
    let r: InitReport;
    if (o.from) {
      const from = path.resolve(o.from);
      if (!fs.existsSync(from)) throw new UserError(`--from file not found: ${from}.`, `Pass the path of ${pub.file} (from ${pub.url}).`);
      r = validateWeights(encoder, from);  // errors name the user's file
      const md5 = await md5File(from);
      if (md5 !== pub.md5) log(`[weights] note: ${from} has MD5 ${md5}, not that of Keras' published file (${pub.md5}); it maps completely onto ${encoder}, so it is installed`);
      fs.copyFileSync(from, tmp);
    } else {
      const url = imagenetUrl(encoder);
      log(`[weights] downloading ${url} (about ${pub.approxMB} MB) into ${dir}`);
      await download(url, tmp, encoder, log);
      const md5 = await md5File(tmp);
      if (md5 !== pub.md5) throw new UserError(`The download of ${pub.file} has MD5 ${md5}, Keras publishes ${pub.md5}.`, 'The transfer was damaged or the URL serves another file: run i2i weights again, or fetch it yourself and pass --from FILE.');
      r = validateWeights(encoder, tmp);
    }
    fs.renameSync(tmp, dest);
    log(`[weights] ${encoder}: ${r.loaded} tensors map onto the encoder${r.ignoredTop.length ? ` (classification top ignored: ${r.ignoredTop.join(', ')})` : ''}; installed ${dest}`);
    return dest;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
