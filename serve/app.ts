/**
 * The HTTP API over an engine (serve/engine): thin routes. POST /segment decodes a frame (EXIF
 * orientation applied), resizes it to the bundle input, queues it, maps the labels back onto the
 * frame's own pixels and answers png | json | overlay | labels. Health, readiness, the model card,
 * Prometheus metrics and the OpenAPI document beside it. Every caller mistake is a 4xx JSON
 * {error, hint}; overload is 503 with Retry-After; a passed deadline 504.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Manifest, ModelFile } from '../core/bundle';
import { decodeFrame, decodeToInput, ImageError, paletteOf, rgbJpeg } from '../runtime/image';
import { PostProcessor } from './postprocess';
import { authorised } from './auth';
import type { FrameCapture } from './capture';
import { readImageBody } from './body';
import { PAGE_CSP, pageHtml } from './page';
import { EngineError, type Engine, type EngineResult, type ModelVersion } from './engine/engine';
import { HttpError } from './http-error';
import { createMetrics, residentBytes, type ServeMetrics, type Stage } from './metrics';
import { openApiDocument } from './openapi';
import { Semaphore } from './semaphore';
import { mountStreamRoutes, registerStreamMetrics } from './streams';
import { mountVideoRoutes, registerVideoMetrics, type VideoRouteOptions } from './videos';
import type { LiveFeed } from '../core/live';

export interface AppOptions {
  /** Bytes a body may have (default 10 MiB: a 4K JPEG is 1-4 MiB). */
  maxBytes?: number;
  /** Pixels a decoded frame may have (default 4096x2160 = 8.8 M, DCI 4K). */
  maxPixels?: number;
  /** Server-side deadline per request from its arrival (default 10 s); X-Timeout-Ms may shorten it. */
  timeoutMs?: number;
  /** SHA-256 digests of the accepted bearer tokens (serve/auth); none = no auth. */
  tokens?: Buffer[];
  /**
   * Digests of the admin tokens that may reload or roll back the model (POST /v1/model/reload,
   * /v1/model/rollback); none = those routes answer 403 (SIGHUP still reloads).
   */
  adminTokens?: Buffer[];
  /** Drift-driven capture of uploaded frames (i2i serve --capture). */
  capture?: FrameCapture;
  /** Bundle directories a reload may name must lie in this directory (none = only the served --bundle path). */
  bundleRoot?: string;
  /** Bundle identity (sha256 of its manifest) for the model card. */
  bundleId?: string;
  log?: Logger;
  version?: string;
  /** The video job API (/videos), over in-process jobs or a distributed queue. */
  videos?: VideoRouteOptions;
  /** Live streams shown at /streams/:name(.mjpeg). */
  streams?: LiveFeed[];
}

export interface Logger { info(o: object, msg?: string): void; warn(o: object, msg?: string): void; error(o: object, msg?: string): void }
const silent: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface ServeApp {
  app: express.Express; metrics: ServeMetrics;
  /** Readiness only: /readyz answers 503 so the load balancer stops sending, while every route keeps serving. */
  setUnready(): void;
  /** Refuse new work (503) and keep no connection alive. */
  setDraining(): void;
  /** Ends the long-lived responses (MJPEG views) so a drain can finish. */
  endStreams(): void;
  /** Stops the post-processing threads (after the listener closed). */
  close(): Promise<void>;
}

const FORMATS = ['png', 'json', 'overlay', 'labels'] as const;
type Format = (typeof FORMATS)[number];

/** Which model answers: its version (the file's sha256, shortened), file, precision and why it was chosen. */
export function modelIdentity(v: ModelVersion): { version: string; file: string; format: string; precision: string; sha256: string; why: string; bundle: string; loadedAt: string } {
  return { version: v.version, file: v.file.file, format: v.file.format, precision: v.file.precision, sha256: v.file.sha256, why: v.why, bundle: path.basename(v.realDir), loadedAt: v.loadedAt };
}

/** The model card: what a client needs to read the results, nothing of the training machine. */
export function modelCard(engine: Engine, bundleId?: string): object {
  const m: Manifest = engine.manifest, file: ModelFile = engine.file;
  return {
    bundle: bundleId, task: m.task, kind: m.kind, createdAt: m.createdAt,
    classes: m.classes, void: 255, input: m.input,
    version: engine.model.version,
    model: { ...modelIdentity(engine.model), bytes: file.bytes, runtime: engine.runtime, batch: engine.batchLimit },
    previous: engine.previous ? modelIdentity(engine.previous) : null,
    // Nothing of the converting machine (its paths): names and counts only.
    parity: m.parity, evaluation: m.evaluation && { ...m.evaluation, source: path.basename(m.evaluation.source) },
    calibration: m.calibration ? { frames: m.calibration.frames } : undefined, check: m.check && { frames: m.check.frames },
    drift: file.drift ? { feature: file.drift.feature, frames: file.drift.frames, meaning: file.drift.meaning } : null,
  };
}

export function createApp(engine: Engine, o: AppOptions = {}): ServeApp {
  const maxBytes = o.maxBytes ?? 10 * 2 ** 20, maxPixels = o.maxPixels ?? 4096 * 2160, timeoutMs = o.timeoutMs ?? 10_000;
  // Full-resolution work (decoding, label maps and overlays at the frame's size) is bounded in
  // parallel, so a flood of large frames costs at most this many frames' worth of memory at once.
  const fullRes = new Semaphore(4);
  const postprocess = new PostProcessor(2);
  const log = o.log ?? silent;
  const metrics = createMetrics();
  const m = engine.manifest;
  const palette = paletteOf(m.classes);
  let draining = false, unready = false;
  // Requests inside POST /segment (reading, decoding, queued, running, encoding). Bounded, so that a
  // flood is refused before its bodies are read and decoded: the queue's capacity plus one batch
  // per worker in flight plus as many again being decoded.
  let active = 0;
  const admission = () => 2 * (engine.stats().capacity + engine.stats().workers * engine.batchLimit);

  engine.on('batch', (n: number) => metrics.batch.observe(n));
  engine.on('depth', (d: number) => metrics.queueDepth.set(d));
  engine.on('reload', () => metrics.reloads.inc({ result: 'ok' }));
  engine.on('reload-failed', () => metrics.reloads.inc({ result: 'failed' }));

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Request id and access log: every response echoes X-Request-Id.
  app.use((req: Request, res: Response, next: NextFunction) => {
    const given = req.get('x-request-id');
    const id = given && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
    res.locals.id = id;
    res.locals.t0 = performance.now();
    res.set('X-Request-Id', id);
    // Every response carries Server-Timing: routes that measure stages set it; the rest get their total.
    const writeHead = res.writeHead;
    res.writeHead = function (this: Response, ...args: Parameters<typeof writeHead>) {
      if (!this.getHeader('Server-Timing')) this.setHeader('Server-Timing', `total;dur=${(performance.now() - res.locals.t0).toFixed(1)}`);
      // While draining, no connection is kept alive past its response.
      if (draining) this.shouldKeepAlive = false;
      return writeHead.apply(this, args);
    } as typeof writeHead;
    res.on('finish', () => {
      const route = (req.route?.path as string | undefined) ?? 'unmatched';
      metrics.requests.inc({ route, status: String(res.statusCode) });
      log.info({ reqId: id, method: req.method, url: req.originalUrl, status: res.statusCode, ms: Math.round(performance.now() - res.locals.t0) }, 'request');
    });
    next();
  });

  app.get('/healthz', (_req, res) => { res.json({ status: 'ok' }); });
  app.get('/readyz', (_req, res) => {
    const s = engine.stats();
    metrics.workers.set(s.readyWorkers);
    const ready = engine.ready && !draining && !unready;
    res.status(ready ? 200 : 503).json({ ready, draining: draining || unready, workers: s.readyWorkers, queued: s.queued });
  });
  // The page is static (no data of the model in it): open like the health checks; its API calls carry the token.
  const page = pageHtml({ auth: Boolean(o.tokens?.length), streams: o.streams?.map((f) => f.name) ?? [] });
  app.get('/', (_req, res) => { res.set('Content-Security-Policy', PAGE_CSP).type('html').send(page); });
  app.get('/openapi.json', (_req, res) => { res.json(openApiDocument({ auth: Boolean(o.tokens?.length), version: o.version ?? '0', videos: Boolean(o.videos), streams: Boolean(o.streams) })); });

  // Rollout: load another bundle (or the --bundle path again) in a new pool, switch when it is warm.
  // Admin tokens only, distinct from the inference tokens.
  const admin = (req: Request) => {
    if (!o.adminTokens?.length) throw new HttpError(403, 'Model reloads over HTTP are off on this server.', 'Start i2i serve with --admin-token-file, or send the server SIGHUP.');
    if (!authorised(req.get('authorization'), o.adminTokens)) throw new HttpError(401, 'A valid admin token is required.', 'Send Authorization: Bearer <token> with a token from the server\'s --admin-token-file.', { 'WWW-Authenticate': 'Bearer realm="i2i-admin"' });
  };
  const reload = async (res: Response, dir: string | undefined) => {
    const r = await engine.reload(dir);
    res.set('X-Model-Version', r.active.version).json({ active: modelIdentity(r.active), previous: modelIdentity(r.previous) });
  };
  const reloadFailed = (res: Response, e: unknown) => {
    if (e instanceof EngineError && e.code === 'reload-failed') log.error({ reqId: res.locals.id, err: e.message }, 'reload failed; the served model is unchanged');
    send(res, e);
  };
  app.post('/v1/model/reload', express.json({ limit: 4096 }), async (req: Request, res: Response) => {
    try {
      admin(req);
      const named = (req.body as { bundle?: unknown } | undefined)?.bundle;
      if (named !== undefined && typeof named !== 'string') throw new HttpError(400, '"bundle" must be a directory name.', 'Send {"bundle": "<directory under --bundle-root>"}, or no body to reload the --bundle path.');
      await reload(res, named === undefined ? undefined : allowedBundle(named, o.bundleRoot));
    } catch (e) { reloadFailed(res, e); }
  });
  app.post('/v1/model/rollback', async (req: Request, res: Response) => {
    try {
      admin(req);
      const prev = engine.previous;
      if (!prev) throw new HttpError(409, 'There is no previous model to roll back to.', 'A rollback follows a reload.');
      await reload(res, prev.realDir);
    } catch (e) { reloadFailed(res, e); }
  });

  // Everything below needs a token where tokens are configured.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!o.tokens?.length || authorised(req.get('authorization'), o.tokens)) return next();
    // RFC 6750: an error code only when credentials were sent.
    res.set('WWW-Authenticate', req.get('authorization') ? 'Bearer realm="i2i", error="invalid_token"' : 'Bearer realm="i2i"');
    // The body is not read: close the connection rather than drain an upload we refuse.
    res.set('Connection', 'close');
    sendError(res, new HttpError(401, 'A valid bearer token is required.', 'Send Authorization: Bearer <token> with a token from the server\'s --token-file.'));
  });

  app.get('/v1/model', (_req, res) => { res.set('X-Model-Version', engine.model.version).json(modelCard(engine, o.bundleId)); });
  app.get('/metrics', async (_req, res) => {
    metrics.workers.set(engine.stats().readyWorkers);
    metrics.model.reset();
    metrics.model.set({ version: engine.model.version, file: engine.file.file, precision: engine.file.precision }, 1);
    // Worker processes by their slot (not pid: replacements reuse the series); Linux /proc only.
    metrics.workerRss.reset();
    engine.pids().forEach((pid, i) => { const b = residentBytes(pid); if (b !== undefined) metrics.workerRss.set({ worker: String(i) }, b); });
    res.set('Content-Type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.post('/segment', async (req: Request, res: Response) => {
    const t = { start: performance.now() } as Record<Stage | 'start', number>;
    const timing: Partial<Record<Stage, number>> = {};
    const mark = (s: Stage, since: number) => { timing[s] = performance.now() - since; };
    active++;
    metrics.inProgress.set(active);
    res.on('close', () => { active--; metrics.inProgress.set(active); });
    try {
      if (draining) throw new HttpError(503, 'The server is draining (shutting down).', 'Retry on another instance.', { 'Retry-After': '1' });
      // Refused before the body is read or decoded: overload costs the server next to nothing.
      if (engine.saturated() || active > admission()) {
        const why = engine.saturated() ? `The queue is full (${engine.stats().queued} frames wait)` : `${active - 1} requests are in progress`;
        throw new HttpError(503, `${why}: the server is at capacity.`, 'Retry after the Retry-After seconds, or add workers / instances.', { 'Retry-After': String(engine.retryAfterSeconds()), Connection: 'close' });
      }
      const format = parseFormat(req.query.format);
      const alpha = parseAlpha(req.query.alpha);
      const withOverlay = parseOverlayFlag(req.query.overlay, format);
      const budget = deadlineMs(req.get('x-timeout-ms'), timeoutMs), deadline = Date.now() + budget;
      // A client that goes away frees its place in the queue.
      const ac = new AbortController();
      res.on('close', () => { if (!res.writableFinished) ac.abort(); });

      const body = await readImageBody(req, maxBytes, deadline, budget);
      if (body.length === 0) throw new HttpError(400, 'The body is empty.', 'Send the frame\'s bytes as the body (curl --data-binary @frame.jpg -H "Content-Type: image/jpeg").');
      const t1 = performance.now();
      const input = await fullRes.run(() => decodeToInput(body, m.input, { maxPixels }));
      mark('decode', t1);
      const r: EngineResult = await engine.submit(input.pixels, { deadline, signal: ac.signal });
      timing.queue = r.queueMs;
      timing.infer = r.inferMs;
      const t2 = performance.now();
      const release = await fullRes.acquire();
      try {
      if (r.drift !== null) metrics.drift.observe(r.drift);
      // The frame's own pixels only where an overlay is drawn (decoded in sharp's threads); the
      // label map at the frame's size, fractions, PNG and blend in the post-processing threads.
      const frame = format === 'overlay' || withOverlay ? await decodeFrame(body, { maxPixels }) : undefined;
      const post = await postprocess.run({ labels: r.labels, sw: m.input.width, sh: m.input.height, dw: input.width, dh: input.height, format, palette, classes: m.classes.length, frame: frame?.data, alpha });
      const buf = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
      const jpeg = () => rgbJpeg(buf(post.overlayRgb!), input.width, input.height);
      let payload: Buffer | object;
      let type: string;
      if (format === 'png') { payload = buf(post.png!); type = 'image/png'; }
      else if (format === 'labels') {
        payload = buf(post.labels!);
        type = 'application/octet-stream';
        res.set({ 'X-Width': String(input.width), 'X-Height': String(input.height), 'X-Void': '255' });
      } else if (format === 'overlay') {
        payload = await jpeg();
        type = 'image/jpeg';
      } else {
        const fr = post.fractions!;
        payload = {
          width: input.width, height: input.height, classes: m.classes,
          fractions: Object.fromEntries(m.classes.map((c) => [c.name, fr[c.id]])),
          mask: buf(post.png!).toString('base64'),
          timings: { decode: timing.decode, queue: timing.queue, infer: timing.infer, encode: performance.now() - t2 },
          drift: r.drift, batch: r.batch,
          model: r.version === engine.model.version ? modelIdentity(engine.model) : engine.previous?.version === r.version ? modelIdentity(engine.previous) : { version: r.version },
          // The overlay of the same inference, for a client that shows both (the page at GET /).
          ...(withOverlay ? { overlay: (await jpeg()).toString('base64') } : {}),
        };
        type = 'application/json';
      }
      mark('encode', t2);
      mark('total', t.start);
      for (const s of ['decode', 'queue', 'infer', 'encode', 'total'] as Stage[]) if (timing[s] !== undefined) metrics.stage.observe({ stage: s }, timing[s]! / 1000);
      res.set('Server-Timing', serverTiming(timing));
      if (r.drift !== null) res.set('X-Drift', r.drift.toFixed(4));
      res.set('X-Model-Version', r.version);
      metrics.frames.inc({ version: r.version });
      if (o.capture?.offer(body, r.drift, { version: r.version, source: `POST /segment ${res.locals.id}` })) metrics.captured.inc();
      res.type(type);
      if (Buffer.isBuffer(payload)) res.send(payload); else res.send(JSON.stringify(payload));
      } finally { release(); }
    } catch (e) {
      if (timing.decode !== undefined) res.set('Server-Timing', serverTiming(timing));
      const err = toHttpError(e, engine);
      if (err.status >= 500 && !(e instanceof EngineError)) log.error({ reqId: res.locals.id, err: (e as Error).stack }, 'unexpected error');
      // Every frame the engine did not compute, by its reason (one place: the engine's own 'dropped' event is for other callers).
      if (e instanceof EngineError) metrics.dropped.inc({ reason: e.code });
      if (!res.headersSent && !res.destroyed) sendError(res, err);
    }
  });

  const send = (res: Response, e: unknown) => {
    const err = toHttpError(e, engine);
    if (err.status >= 500 && !(e instanceof HttpError) && !(e instanceof EngineError)) log.error({ reqId: res.locals.id, err: (e as Error).stack }, 'unexpected error');
    if (!res.headersSent) sendError(res, err);
  };
  if (o.videos) { mountVideoRoutes(app, o.videos, () => draining, send); registerVideoMetrics(metrics.registry, o.videos.jobs); }
  if (o.streams) registerStreamMetrics(metrics.registry, o.streams);
  const views = o.streams ? mountStreamRoutes(app, o.streams, {}, send) : undefined;

  app.use((_req: Request, res: Response) => sendError(res, new HttpError(404, 'No such route.', 'See GET /openapi.json for the routes.')));
  // Malformed requests caught by express itself (e.g. a bad URI).
  app.use((e: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    const status = e.status && e.status >= 400 && e.status < 500 ? e.status : 500;
    if (status === 500) log.error({ reqId: res.locals.id, err: e.stack }, 'unexpected error');
    sendError(res, new HttpError(status, status === 500 ? 'Internal error.' : e.message, status === 500 ? 'Retry; the error is logged with this request id.' : 'Fix the request.'));
  });

  return { app, metrics, setUnready: () => { unready = true; }, setDraining: () => { draining = true; }, endStreams: () => views?.close(), close: () => postprocess.close() };
}

function sendError(res: Response, e: HttpError): void {
  res.status(e.status).set(e.headers).json({ error: e.message, hint: e.hint });
}

function serverTiming(t: Partial<Record<Stage, number>>): string {
  return (['decode', 'queue', 'infer', 'encode', 'total'] as Stage[]).filter((s) => t[s] !== undefined).map((s) => `${s};dur=${t[s]!.toFixed(1)}`).join(', ');
}

function parseFormat(v: unknown): Format {
  if (v === undefined) return 'png';
  if (typeof v === 'string' && (FORMATS as readonly string[]).includes(v)) return v as Format;
  throw new HttpError(400, `Unknown format ${JSON.stringify(v)}.`, `Use ?format= one of ${FORMATS.join(', ')}.`);
}

function parseAlpha(v: unknown): number {
  if (v === undefined) return 0.5;
  const a = typeof v === 'string' ? Number(v) : NaN;
  if (!(a >= 0 && a <= 1)) throw new HttpError(400, `alpha must be a number in [0, 1], got ${JSON.stringify(v)}.`, 'Pass e.g. ?format=overlay&alpha=0.4.');
  return a;
}

function parseOverlayFlag(v: unknown, format: Format): boolean {
  if (v === undefined) return false;
  if (v !== '1' && v !== '0') throw new HttpError(400, `overlay must be 1 or 0, got ${JSON.stringify(v)}.`, 'Pass ?format=json&overlay=1 for the overlay JPEG in the JSON.');
  if (v === '1' && format !== 'json') throw new HttpError(400, `overlay=1 goes with format=json, not ${format}.`, 'Use ?format=json&overlay=1, or ?format=overlay for the JPEG alone.');
  return v === '1';
}

function deadlineMs(header: string | undefined, server: number): number {
  if (header === undefined) return server;
  const v = Number(header);
  if (!(Number.isInteger(v) && v > 0)) throw new HttpError(400, `X-Timeout-Ms must be a positive integer of milliseconds, got ${JSON.stringify(header)}.`, 'Send e.g. X-Timeout-Ms: 500, or leave it out.');
  // A client may shorten the deadline, never lengthen it past the server's.
  return Math.min(v, server);
}

function toHttpError(e: unknown, engine: Engine): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof ImageError) return new HttpError(e.status, e.message, e.hint);
  if (e instanceof EngineError) {
    const retry = { 'Retry-After': String(engine.retryAfterSeconds()) };
    switch (e.code) {
      // 503, not 429: the server as a whole is at capacity, not this client over a quota; a load
      // balancer reads 503 + Retry-After as "try another instance".
      case 'queue-full': return new HttpError(503, `${e.message} The server is at capacity.`, 'Retry after the Retry-After seconds, or add workers / instances.', retry);
      case 'unavailable': case 'worker-lost': return new HttpError(503, e.message, 'Retry; the worker is being replaced.', retry);
      case 'closed': return new HttpError(503, e.message, 'Retry on another instance.', { 'Retry-After': '1' });
      case 'deadline': return new HttpError(504, e.message, 'Retry later, or allow more time (X-Timeout-Ms up to the server\'s --timeout-ms).');
      case 'aborted': return new HttpError(499, e.message, 'The client closed the connection.');
      case 'bad-frame': return new HttpError(500, e.message, 'This is a server bug: the frame was resized wrongly.');
      case 'reload-busy': return new HttpError(409, e.message, 'Wait for it to finish (GET /v1/model shows the active version).');
      case 'reload-failed': return new HttpError(422, `${e.message} The served model is unchanged.`, 'Fix or convert the bundle again, then reload.');
    }
  }
  return new HttpError(500, 'Internal error.', 'Retry; the error is logged with this request id.');
}

/** A bundle a reload names: a directory inside --bundle-root (no way out of it through .. or symlinks). */
function allowedBundle(name: string, root: string | undefined): string {
  if (!root) throw new HttpError(403, 'This server reloads only its --bundle path.', 'Send no body to reload it, or start i2i serve with --bundle-root DIR to allow bundles in DIR.');
  const base = fs.realpathSync(root);
  const dir = path.resolve(base, name);
  const inside = (p: string) => p === base || p.startsWith(base + path.sep);
  if (!inside(dir)) throw new HttpError(403, `"${name}" is outside the bundle root.`, 'Name a directory under --bundle-root.');
  let real: string;
  try { real = fs.realpathSync(dir); } catch { throw new HttpError(404, `No bundle "${name}" under the bundle root.`, 'Name a directory that holds a manifest.json.'); }
  if (!inside(real)) throw new HttpError(403, `"${name}" leads outside the bundle root.`, 'Name a directory under --bundle-root.');
  return real;
}
