/**
 * A video upload streamed to disk, bounded in bytes and time: the raw body with a video/* type, or
 * the multipart field `video`. Nothing of it is held in memory; a refused or broken upload leaves
 * no file behind.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { Request } from 'express';
import busboy from 'busboy';
import { HttpError } from './http-error';

export interface SavedUpload { file: string; name: string; bytes: number }

const close = { Connection: 'close' };
const tooBig = (max: number) => new HttpError(413, `The video is over the server's limit of ${max} bytes.`, 'Cut it (ffmpeg -ss/-t), or raise --max-video-bytes.', close);

export async function saveVideoUpload(req: Request, dir: string, maxBytes: number, timeoutMs: number): Promise<SavedUpload> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const length = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(length) && length > maxBytes) throw tooBig(maxBytes);
  const file = path.join(dir, `upload-${randomBytes(8).toString('hex')}`);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    if (type.startsWith('video/') || type === 'application/octet-stream') {
      const bytes = await toFile(req, file, maxBytes, ac.signal);
      return { file, bytes, name: nameOf(req.get('x-filename')) ?? `upload.${type.split('/')[1]?.replace(/^x-|[^\w]/g, '') || 'mp4'}` };
    }
    if (type === 'multipart/form-data') return await multipart(req, file, maxBytes, ac.signal);
    throw new HttpError(415, type ? `Content-Type ${type} is not a video upload.` : 'The request has no Content-Type.', 'Send the video as the body with its video/* type (curl --data-binary @drive.mp4 -H "Content-Type: video/mp4"), or multipart/form-data with a field "video".', close);
  } catch (e) {
    fs.rmSync(file, { force: true });
    if (ac.signal.aborted && !(e instanceof HttpError && e.status === 413)) throw new HttpError(408, `The video did not arrive within ${timeoutMs} ms.`, 'Upload faster, or raise --upload-timeout-ms.', close);
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** A client's file name, reduced to a safe base name (it is only echoed back, never used as a path). */
function nameOf(v: string | undefined): string | undefined {
  const n = v && path.basename(v).replace(/[^\w.\- ]/g, '_').slice(0, 200);
  return n || undefined;
}

/**
 * Copies `src` to `file` with back-pressure. Past the limit, or when `signal` aborts, the source is
 * unpiped and drained (not destroyed): the socket stays up, so the client reads the 413 / 408 that
 * answers it (sent with Connection: close) instead of a reset.
 */
function toFile(src: Readable, file: string, maxBytes: number, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(file);
    let n = 0, done = false;
    const finish = (e?: Error) => {
      if (done) return;
      done = true;
      src.off('data', onData); src.off('end', onEnd); signal.removeEventListener('abort', onAbort);
      if (e) { src.unpipe(out); src.resume(); out.destroy(); reject(e); } else out.end(() => resolve(n));
    };
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > maxBytes) return finish(tooBig(maxBytes));
      if (!out.write(c)) { src.pause(); out.once('drain', () => { if (!done) src.resume(); }); }
    };
    const onEnd = () => finish();
    const onAbort = () => finish(new Error('aborted'));
    out.on('error', (e) => finish(new HttpError(500, `The upload could not be written: ${e.message}.`, 'The server\'s disk may be full; retry later.')));
    src.on('data', onData);
    src.once('end', onEnd);
    src.once('error', (e) => finish(new HttpError(400, `The upload broke off: ${e.message}.`, 'Send the whole video in one request.')));
    src.once('close', () => { if ('complete' in src && !(src as { complete: boolean }).complete) finish(new HttpError(400, 'The client aborted the upload.', 'Send the whole video in one request.')); });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function multipart(req: Request, file: string, maxBytes: number, signal: AbortSignal): Promise<SavedUpload> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes, fields: 16, fieldSize: 4096, parts: 32 } });
    } catch (e) {
      return reject(new HttpError(400, `The multipart body cannot be parsed: ${(e as Error).message}.`, 'Send multipart/form-data with a field "video".'));
    }
    let saving: Promise<SavedUpload> | undefined, done = false;
    const finish = (e?: Error) => {
      if (done) return;
      done = true;
      req.unpipe(bb);
      if (e) { req.resume(); reject(e); return; }
      if (!saving) return reject(new HttpError(400, 'The multipart body has no field "video".', 'Send the video as the form field "video" (curl -F video=@drive.mp4).'));
      saving.then(resolve, reject);
    };
    bb.on('file', (field, stream, info) => {
      // A part's stream errors when the body ends inside it ("Unexpected end of form"): unlistened,
      // that 'error' kills the process, whichever part it is.
      stream.on('error', (e: Error) => finish(new HttpError(400, `The multipart body is malformed: ${e.message}.`, 'Send multipart/form-data with a field "video".')));
      if (field !== 'video' || saving) { stream.resume(); return; }
      let truncated = false;
      stream.on('limit', () => { truncated = true; });
      saving = toFile(stream, file, maxBytes + 1, signal).then((bytes) => {
        if (truncated || bytes > maxBytes) throw tooBig(maxBytes);
        return { file, bytes, name: nameOf(info.filename) ?? 'upload.mp4' };
      });
      saving.catch(() => undefined);
    });
    bb.on('partsLimit', () => finish(new HttpError(413, 'The multipart body has too many parts.', 'Send one field "video".')));
    bb.on('error', (e: Error) => finish(new HttpError(400, `The multipart body is malformed: ${e.message}.`, 'Send multipart/form-data with a field "video".')));
    bb.on('close', () => finish());
    signal.addEventListener('abort', () => finish(new Error('timeout')), { once: true });
    req.once('close', () => { if (!req.complete) finish(new HttpError(400, 'The client aborted the upload.', 'Send the whole video in one request.')); });
    req.once('error', (e) => finish(new HttpError(400, `The body could not be read: ${e.message}.`, 'Send the whole video in one request.')));
    req.pipe(bb);
  });
}
