/**
 * Every request body the server reads goes through this one reader: a frame for POST /segment (raw
 * image/* or the multipart field "image", into memory), a video for POST /videos (raw video/* or the
 * multipart field "video", streamed to a file), and small JSON documents (/videos {"path"},
 * /v1/model/reload). What a route reads is a BodyRule; the reader enforces for all of them:
 * - the Content-Type (415 naming the types and how to send one);
 * - the bytes of the whole body (multipart framing included): a Content-Length over the limit is
 *   refused before a byte is read, a streamed body at the byte that crosses it (413);
 * - a deadline for the whole body, so a client that stalls cannot hold a place (408);
 * - a client that goes away or a body cut short (400), an empty payload (400);
 * - every multipart part's stream is listened to (a body that ends inside any part errors on that
 *   part's stream; unheard, the 'error' kills the process);
 * - a refused or broken upload leaves no file behind.
 * On failure the rest of the body is drained, not destroyed, so the client reads the answer (the
 * error middleware sends it with Connection: close) instead of a reset.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { Request } from 'express';
import busboy from 'busboy';
import { HttpError } from './http-error';

export const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/webp'];

/** What a route reads. */
export interface BodyRule {
  /** What the body carries, as messages name it: "frame", "video", "JSON body". */
  what: string;
  /** Raw Content-Types taken as the payload (parameters stripped, lower case). */
  accepts(type: string): boolean;
  /** The accepted types and an example request, for the 415's message and hint. */
  types: string;
  example: string;
  /** The multipart/form-data field that carries the payload; none: multipart is refused. */
  field?: string;
  /** Types a multipart part may declare (advisory: browsers guess it from the file name); none: any. */
  partTypes?: (type: string) => boolean;
  maxBytes: number;
  /** How to stay under the limit, or raise it (the 413's hint). */
  smaller: string;
  /** The flag that sets the time limit, named in the 408. */
  timeoutFlag: string;
}

/** When the whole body must have arrived (epoch ms), and the budget the 408 names. */
export interface Deadline { at: number; budgetMs: number }
export const within = (ms: number): Deadline => ({ at: Date.now() + ms, budgetMs: ms });

export interface Received<T> {
  data: T;
  /** Bytes of the payload (the part's, for multipart). */
  bytes: number;
  /** Its type: the Content-Type, or the part's own. */
  type: string;
  /** The multipart part's file name, as the client sent it. */
  filename?: string;
}

/** The media type of the request, without parameters, lower case ('' when there is none). */
export function contentType(req: Request): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

// Defined beside the error middleware, which closes the connection of a body left unread.
export { declaresBody } from './http-error';

/** The payload into memory (frames, JSON). */
export function readBody(req: Request, rule: BodyRule, deadline: Deadline): Promise<Received<Buffer>> {
  return receive(req, rule, deadline, memory);
}

/** The payload streamed to a new file in `dir` (videos): never held in memory. */
export async function saveBody(req: Request, rule: BodyRule, deadline: Deadline, dir: string): Promise<Received<string>> {
  const file = path.join(dir, `upload-${randomBytes(8).toString('hex')}`);
  return receive(req, rule, deadline, (fail) => toFile(file, fail));
}

/** A rule for a small JSON document; `example` is a valid one. */
export function jsonRule(example: string, maxBytes = 4096): BodyRule {
  return {
    what: 'JSON body', accepts: (t) => t === 'application/json' || t.endsWith('+json'), types: 'application/json',
    example: `Send Content-Type: application/json with a body like ${example}.`, maxBytes, smaller: `Send a body like ${example}.`, timeoutFlag: '--timeout-ms',
  };
}

const MAX_JSON_DEPTH = 16;

/** A JSON document: UTF-8, well-formed, at most 16 levels deep (anything deeper is no request of ours). */
export async function readJson(req: Request, rule: BodyRule, deadline: Deadline): Promise<unknown> {
  const { data } = await readBody(req, rule, deadline);
  let text: string;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(data); } catch { throw new HttpError(400, 'The JSON body is not valid UTF-8.', rule.example); }
  let value: unknown;
  try { value = JSON.parse(text); } catch (e) { throw new HttpError(400, `The JSON body is malformed: ${(e as Error).message}.`, rule.example); }
  if (depthOver(value, MAX_JSON_DEPTH)) throw new HttpError(400, `The JSON body is nested deeper than ${MAX_JSON_DEPTH} levels.`, rule.example);
  return value;
}

function depthOver(v: unknown, max: number): boolean {
  // Iterative: a deep document must not cost a deep stack.
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d > max) return true;
    for (const c of Object.values(x)) stack.push([c, d + 1]);
  }
  return false;
}

/** Where the payload goes; `write` returns false when the caller should wait for `drained`. */
interface Sink<T> { write(c: Buffer): boolean; drained(resume: () => void): void; end(): Promise<T>; discard(): Promise<void> }

function memory(): Sink<Buffer> {
  const chunks: Buffer[] = [];
  return { write: (c) => { chunks.push(c); return true; }, drained: () => undefined, end: async () => Buffer.concat(chunks), discard: async () => { chunks.length = 0; } };
}

function toFile(file: string, fail: (e: Error) => void): Sink<string> {
  const out = fs.createWriteStream(file);
  out.on('error', (e) => fail(new HttpError(503, `The server cannot store the upload now: ${e.message}.`, 'Retry later; the server\'s disk may be full.', { 'Retry-After': '30' })));
  return {
    write: (c) => out.write(c),
    drained: (resume) => out.once('drain', resume),
    end: () => new Promise((resolve) => out.end(() => resolve(file))),
    // Removed once closed: a file still being opened would otherwise be created after the removal.
    discard: () => new Promise<void>((resolve) => {
      const rm = () => fs.rm(file, { force: true }, () => resolve());
      if (out.closed) rm(); else { out.once('close', rm); out.destroy(); }
    }),
  };
}

function receive<T>(req: Request, rule: BodyRule, deadline: Deadline, open: (fail: (e: Error) => void) => Sink<T>): Promise<Received<T>> {
  const type = contentType(req);
  const length = Number(req.headers['content-length'] ?? NaN);
  const multipart = type === 'multipart/form-data' && rule.field !== undefined;
  if (!type) return Promise.reject(new HttpError(415, 'The request has no Content-Type.', `Send the ${rule.what} as ${rule.types}. ${rule.example}`));
  if (!multipart && !rule.accepts(type)) return Promise.reject(new HttpError(415, `Content-Type ${type} is not a ${rule.what} this route reads (${rule.types}).`, rule.example));
  if (length > rule.maxBytes) return Promise.reject(tooBig(rule));

  return new Promise<Received<T>>((resolve, reject) => {
    let settled = false, n = 0, bb: busboy.Busboy | undefined;
    const offs: (() => void)[] = [];
    // Listeners removed once settled (any[]: the emitter's own listener type).
    const on = (src: Readable, event: string, f: (...a: any[]) => void) => { src.on(event, f); offs.push(() => src.off(event, f)); };
    const settle = () => { settled = true; clearTimeout(timer); for (const off of offs) off(); };
    const fail = (e: Error) => {
      if (settled) return;
      settle();
      if (bb) req.unpipe(bb);
      req.resume();
      // Answered once nothing of the upload is left on disk.
      void sink.discard().then(() => reject(e));
    };
    const done = (bytes: number, partType: string, filename?: string) => {
      if (settled) return;
      if (bytes === 0) return fail(new HttpError(400, `The ${rule.what} is empty: no bytes arrived.`, rule.example));
      sink.end().then((data) => { if (!settled) { settle(); resolve({ data, bytes, type: partType, filename }); } }, fail);
    };
    const sink = open(fail);
    const timer = setTimeout(() => fail(new HttpError(408, `The ${rule.what} did not arrive within ${deadline.budgetMs} ms.`, `Send it in one go, faster, or raise ${rule.timeoutFlag}.`)), Math.max(1, deadline.at - Date.now()));
    // Copies a source into the sink with back-pressure.
    const copy = (src: Readable, count: (c: Buffer) => void) => on(src, 'data', (c: Buffer) => {
      if (settled) return;
      count(c);
      if (!sink.write(c)) { src.pause(); sink.drained(() => { if (!settled) src.resume(); }); }
    });

    on(req, 'data', (c: Buffer) => { n += c.length; if (n > rule.maxBytes) fail(tooBig(rule)); });
    on(req, 'error', (e: Error) => fail(new HttpError(400, `The ${rule.what} broke off: ${e.message}.`, 'Send the whole body in one request.')));
    // The client went away before the body's end (Content-Length larger than what it sent, a reset).
    on(req, 'close', () => {
      if (!req.complete) fail(new HttpError(400, `The ${rule.what} was cut short: the connection closed after ${n}${Number.isFinite(length) ? ` of ${length}` : ''} bytes.`, 'Send the whole body in one request, and keep the connection open until the answer.'));
    });

    if (!multipart) {
      let bytes = 0;
      copy(req, (c) => { bytes += c.length; });
      on(req, 'end', () => done(bytes, type));
      return;
    }
    const malformed = (e: Error) => new HttpError(400, `The multipart body is malformed: ${e.message}.`, `Send multipart/form-data with a field "${rule.field}" (${rule.example}).`);
    try {
      bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: rule.maxBytes, fields: 16, fieldSize: 4096, parts: 32, headerPairs: 32 } });
    } catch (e) {
      return fail(new HttpError(400, `The multipart body cannot be parsed: ${(e as Error).message}.`, `Send multipart/form-data with a boundary and a field "${rule.field}" (${rule.example}).`));
    }
    let part: { bytes: number; type: string; filename?: string } | undefined;
    bb.on('file', (name, stream, info) => {
      // Listened for as long as the part lives, not removed on settling: an 'error' after it is harmless only if heard.
      stream.on('error', (e: Error) => fail(malformed(e)));
      if (name !== rule.field || part || settled) { stream.resume(); return; }
      const p = part = { bytes: 0, type: info.mimeType.toLowerCase(), filename: info.filename };
      copy(stream, (c) => { p.bytes += c.length; });
      stream.on('limit', () => fail(tooBig(rule)));
      // Checked once the part is whole: a part cut short is malformed (400) whatever it declares.
      stream.on('end', () => {
        if (rule.partTypes && p.type && p.type !== 'application/octet-stream' && !rule.partTypes(p.type)) {
          fail(new HttpError(415, `The "${rule.field}" part is ${p.type}, not a ${rule.what} this route reads (${rule.types}).`, rule.example));
        }
      });
    });
    bb.on('partsLimit', () => fail(new HttpError(413, 'The multipart body has too many parts.', `Send one field "${rule.field}".`)));
    bb.on('error', (e: Error) => fail(malformed(e)));
    // After every part's stream ended.
    bb.on('close', () => {
      if (settled) return;
      if (!part) return fail(new HttpError(400, `The multipart body has no field "${rule.field}".`, rule.example));
      done(part.bytes, part.type, part.filename);
    });
    req.pipe(bb);
  });
}

function tooBig(rule: BodyRule): HttpError {
  return new HttpError(413, `The ${rule.what} is over the server's limit of ${rule.maxBytes} bytes.`, rule.smaller);
}
