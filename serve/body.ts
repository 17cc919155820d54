/**
 * The request body of POST /segment, bounded: a raw image (image/jpeg, image/png, image/webp) or a
 * multipart/form-data field `image`. A body over `maxBytes` is refused as soon as it is known (its
 * Content-Length, or the byte that crosses the limit), without buffering the rest.
 */
import type { Request } from 'express';
import busboy from 'busboy';
import { HttpError } from './http-error';

export const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
const tooBig = (max: number) => new HttpError(413, `The body is over the server's limit of ${max} bytes.`, 'Send a smaller image (JPEG at quality 85 is plenty), or raise --max-bytes.', { Connection: 'close' });

/**
 * Reads the frame by `deadline` (epoch ms), which bounds the whole upload: a client sending slowly
 * (or never ending its body) gets 408 and its connection closed, so it cannot hold a place for long.
 * `budgetMs` is the request's whole time budget, the figure the 408 names.
 */
export async function readImageBody(req: Request, maxBytes: number, deadline: number, budgetMs: number): Promise<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  const slow = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HttpError(408, `The body did not arrive within ${budgetMs} ms.`, 'Send the frame in one go, faster, or raise --timeout-ms.', { Connection: 'close' })), Math.max(1, deadline - Date.now()));
  });
  try {
    return await Promise.race([readBody(req, maxBytes), slow]);
  } finally {
    clearTimeout(timer);
  }
}

function readBody(req: Request, maxBytes: number): Promise<Buffer> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const length = Number(req.headers['content-length'] ?? NaN);
  // Refused before the body is read: the connection closes rather than draining an upload.
  const close = { Connection: 'close' };
  if (!type) return Promise.reject(new HttpError(415, 'The request has no Content-Type.', `Send the frame as ${IMAGE_TYPES.join(', ')} or multipart/form-data with a field "image".`, close));
  if (Number.isFinite(length) && length > maxBytes) return Promise.reject(tooBig(maxBytes));
  if (IMAGE_TYPES.includes(type)) return readRaw(req, maxBytes);
  if (type === 'multipart/form-data') return readMultipart(req, maxBytes);
  return Promise.reject(new HttpError(415, `Content-Type ${type} is not an image this server reads.`, `Send ${IMAGE_TYPES.join(', ')}, or multipart/form-data with a field "image".`, close));
}

function readRaw(req: Request, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0, done = false;
    const finish = (e?: Error) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (e) { req.resume(); reject(e); } else resolve(Buffer.concat(chunks, n));
    };
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > maxBytes) return finish(tooBig(maxBytes));
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => finish());
    req.once('error', (e) => finish(new HttpError(400, `The body could not be read: ${e.message}.`, 'Send the whole image in one request.')));
    req.once('aborted', () => finish(new HttpError(400, 'The client aborted the upload.', 'Send the whole image in one request.')));
  });
}

function readMultipart(req: Request, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes, fields: 16, fieldSize: 4096, parts: 32 } });
    } catch (e) {
      return reject(new HttpError(400, `The multipart body cannot be parsed: ${(e as Error).message}.`, 'Send multipart/form-data with a boundary and a field "image".'));
    }
    let image: Buffer | undefined, done = false, n = 0;
    const finish = (e?: Error) => {
      if (done) return;
      done = true;
      req.off('data', count);
      req.unpipe(bb);
      if (e) { req.resume(); reject(e); } else if (!image) reject(new HttpError(400, 'The multipart body has no field "image".', 'Send the frame as the form field "image" (curl -F image=@frame.jpg).'));
      else resolve(image);
    };
    bb.on('file', (name, stream, info) => {
      // A part cut short emits 'error' on its own stream too: unhandled, it would kill the process.
      stream.on('error', (e: Error) => finish(new HttpError(400, `The multipart body is malformed: ${e.message}.`, 'Send multipart/form-data with a field "image".')));
      if (name !== 'image') { stream.resume(); return; }
      const chunks: Buffer[] = [];
      let truncated = false;
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => { truncated = true; finish(tooBig(maxBytes)); });
      stream.on('end', () => {
        if (truncated || done) return;
        const type = info.mimeType.toLowerCase();
        // The part's own type is advisory (browsers guess it from the file name); the bytes decide later.
        if (type && type !== 'application/octet-stream' && !IMAGE_TYPES.includes(type)) return finish(new HttpError(415, `The "image" part is ${type}, not an image this server reads.`, `Send ${IMAGE_TYPES.join(', ')}.`));
        image = Buffer.concat(chunks);
      });
    });
    bb.on('filesLimit', () => undefined);
    bb.on('partsLimit', () => finish(new HttpError(413, 'The multipart body has too many parts.', 'Send one field "image".')));
    bb.on('error', (e: Error) => finish(new HttpError(400, `The multipart body is malformed: ${e.message}.`, 'Send multipart/form-data with a field "image".')));
    bb.on('close', () => finish());
    // The whole body is bounded, not only the file part (preamble, other parts, epilogue).
    const count = (c: Buffer) => { n += c.length; if (n > maxBytes) finish(tooBig(maxBytes)); };
    req.on('data', count);
    // A client that goes away mid-upload: busboy never closes on its own then.
    req.once('aborted', () => finish(new HttpError(400, 'The client aborted the upload.', 'Send the whole image in one request.')));
    req.once('close', () => { if (!req.complete) finish(new HttpError(400, 'The client aborted the upload.', 'Send the whole image in one request.')); });
    req.once('error', (e) => finish(new HttpError(400, `The body could not be read: ${e.message}.`, 'Send the whole image in one request.')));
    req.pipe(bb);
  });
}
