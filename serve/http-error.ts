/**
 * Errors to HTTP, in one place: every route throws (typed errors from the engine, the image decoder,
 * the video jobs, the body reader, or an HttpError of its own) and the one error middleware below
 * answers JSON {error, hint}. Caller mistakes are 4xx naming the problem and the fix; 503 (with
 * Retry-After) is overload or a server going away, 504 a passed deadline; any other 5xx is a bug of
 * ours, logged with the request id.
 */
import type { Socket } from 'node:net';
import type { NextFunction, Request, Response } from 'express';
import { JobError, type JobErrorCode } from '../core/video-jobs';
import { ImageError } from '../runtime/image';
import { EngineError } from './engine/engine';

/** An error answered as JSON {error, hint} with its HTTP status (and headers, e.g. Retry-After). */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly hint: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Where a Retry-After comes from: the engine's queue (frames) or the video backlog. */
export interface RetryAfter { engine?(): number; jobs?(): number }

const JOB_STATUS: Record<JobErrorCode, number> = { 'backlog-full': 503, 'store-full': 503, 'bad-video': 400, 'not-found': 404, 'not-ready': 409, closed: 503 };

/** The one mapping from anything a route throws to the answer. */
export function toHttpError(e: unknown, retry: RetryAfter = {}): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof ImageError) return new HttpError(e.status, e.message, e.hint);
  if (e instanceof JobError) {
    const busy = e.code === 'backlog-full' || e.code === 'store-full' || e.code === 'closed';
    return new HttpError(JOB_STATUS[e.code], e.message, e.hint, busy ? { 'Retry-After': String(retry.jobs?.() ?? 5) } : {});
  }
  if (e instanceof EngineError) {
    const after = { 'Retry-After': String(retry.engine?.() ?? 1) };
    switch (e.code) {
      // 503, not 429: the server as a whole is at capacity, not this client over a quota; a load
      // balancer reads 503 + Retry-After as "try another instance".
      case 'queue-full': return new HttpError(503, `${e.message} The server is at capacity.`, 'Retry after the Retry-After seconds, or add workers / instances.', after);
      case 'unavailable': case 'worker-lost': return new HttpError(503, e.message, 'Retry; the worker is being replaced.', after);
      case 'closed': return new HttpError(503, e.message, 'Retry on another instance.', { 'Retry-After': '1' });
      case 'deadline': return new HttpError(504, e.message, 'Retry later, or allow more time (X-Timeout-Ms up to the server\'s --timeout-ms).');
      case 'aborted': return new HttpError(499, e.message, 'The client closed the connection.');
      case 'bad-frame': return new HttpError(500, e.message, 'This is a server bug: the frame was resized wrongly.');
      case 'reload-busy': return new HttpError(409, e.message, 'Wait for it to finish (GET /v1/model shows the active version).');
      case 'reload-failed': return new HttpError(422, `${e.message} The served model is unchanged.`, 'Fix or convert the bundle again, then reload.');
    }
  }
  // Express's own client errors (e.g. a path that is not valid percent-encoding): http-errors marks
  // the ones whose message may be shown with `expose`.
  const x = e as { status?: unknown; expose?: unknown } | null;
  if (e instanceof Error && x?.expose === true && typeof x.status === 'number' && x.status >= 400 && x.status < 500) return new HttpError(x.status, e.message, 'Fix the request (see GET /openapi.json).');
  return new HttpError(500, 'Internal error.', 'Retry; the error is logged with this request id.');
}

/** Whether the request says it has a body (RFC 9112: Transfer-Encoding, or a Content-Length above 0). */
export function declaresBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

export interface ErrorLogger { error(o: object, msg?: string): void }

/**
 * The error middleware (mounted last). An error after the answer began can only cut the connection.
 * A request whose body was not read to its end (refused before reading, or cut off by a limit) is
 * answered with Connection: close, so Node does not read and discard all the rest of an upload we
 * refused.
 */
export function errorMiddleware(retry: RetryAfter, log: ErrorLogger) {
  return (e: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const err = toHttpError(e, retry);
    if (err.status >= 500 && err.status !== 503 && err.status !== 504) log.error({ reqId: res.locals.id, err: e instanceof Error ? e.stack : String(e) }, 'unexpected error');
    if (res.headersSent || res.destroyed) { if (!res.writableEnded) res.destroy(); return; }
    res.status(err.status).set(err.headers);
    if (declaresBody(req) && !req.readableEnded) closeLingering(req, res);
    res.json({ error: err.message, hint: err.hint });
  };
}

const LINGER_MS = 2000;

/**
 * Connection: close, with a lingering close (as Apache's): once the answer is written, Node closes the
 * socket at once (destroySoon), and the kernel answers whatever the client is still sending with a
 * reset, which can destroy our answer before the client reads it (a 413 seen as ECONNRESET). Instead
 * our side is ended (FIN after the answer) and what still arrives is read and dropped (the request
 * is drained) until the client closes, for at most LINGER_MS.
 */
function closeLingering(req: Request, res: Response): void {
  res.set('Connection', 'close');
  const socket = req.socket as Socket & { destroySoon?: () => void };
  if (typeof socket.destroySoon !== 'function') return;
  socket.destroySoon = function (this: Socket) {
    this.end();
    const stop = setTimeout(() => this.destroy(), LINGER_MS);
    this.once('close', () => clearTimeout(stop));
    this.once('end', () => this.destroy());
    req.resume();
  };
}
