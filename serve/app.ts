/**
 * The HTTP API over an engine (serve/engine): thin routes. POST /segment (serve/segment) decodes a
 * frame, queues it and answers png | json | overlay | labels; /videos (serve/videos) and /streams
 * (serve/streams) beside it; health, readiness, the model card, Prometheus metrics, model reloads
 * and the OpenAPI document. Every body is read by serve/body; every error is answered by the one
 * error middleware of serve/http-error: a caller's mistake is a 4xx JSON {error, hint}, overload
 * 503 with Retry-After, a passed deadline 504.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { authorised } from './auth';
import { declaresBody, jsonRule, readJson, within } from './body';
import type { FrameCapture } from './capture';
import { EngineError, type Engine } from './engine/engine';
import { errorMiddleware, HttpError } from './http-error';
import { createMetrics, residentBytes, type ServeMetrics } from './metrics';
import { modelCard, modelIdentity } from './model-card';
import { openApiDocument } from './openapi';
import { PAGE_CSP, pageHtml } from './page';
import { PostProcessor } from './postprocess';
import { mountSegmentRoute } from './segment';
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
  /** The served bundle's id (sha256 of its manifest); a function, since a reload changes it. */
  bundleId?: () => string;
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

export function createApp(engine: Engine, o: AppOptions = {}): ServeApp {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const postprocess = new PostProcessor(2);
  const log = o.log ?? silent;
  const metrics = createMetrics(o.capture && (() => o.capture!.stats));
  let draining = false, unready = false;

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

  mountModelRoutes(app, engine, o, timeoutMs, log);

  // Everything below needs a token where tokens are configured.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!o.tokens?.length || authorised(req.get('authorization'), o.tokens)) return next();
    // RFC 6750: an error code only when credentials were sent. The body is not read.
    const challenge = req.get('authorization') ? 'Bearer realm="i2i", error="invalid_token"' : 'Bearer realm="i2i"';
    next(new HttpError(401, 'A valid bearer token is required.', 'Send Authorization: Bearer <token> with a token from the server\'s --token-file.', { 'WWW-Authenticate': challenge }));
  });

  app.get('/v1/model', (_req, res) => { res.set('X-Model-Version', engine.model.version).json(modelCard(engine, o.bundleId?.())); });
  app.get('/metrics', async (_req, res) => {
    metrics.workers.set(engine.stats().readyWorkers);
    metrics.model.reset();
    metrics.model.set({ version: engine.model.version, file: engine.file.file, precision: engine.file.precision }, 1);
    // Worker processes by their slot (not pid: replacements reuse the series); Linux /proc only.
    metrics.workerRss.reset();
    engine.pids().forEach((pid, i) => { const b = residentBytes(pid); if (b !== undefined) metrics.workerRss.set({ worker: String(i) }, b); });
    res.set('Content-Type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  mountSegmentRoute(app, {
    engine, metrics, postprocess, capture: o.capture, isDraining: () => draining, timeoutMs,
    maxBytes: o.maxBytes ?? 10 * 2 ** 20, maxPixels: o.maxPixels ?? 4096 * 2160,
  });
  if (o.videos) { mountVideoRoutes(app, o.videos, { isDraining: () => draining, timeoutMs }); registerVideoMetrics(metrics.registry, o.videos.jobs); }
  if (o.streams) registerStreamMetrics(metrics.registry, o.streams);
  const views = o.streams ? mountStreamRoutes(app, o.streams, {}) : undefined;

  app.use((_req: Request, _res: Response, next: NextFunction) => next(new HttpError(404, 'No such route.', 'See GET /openapi.json for the routes.')));
  app.use(errorMiddleware({ engine: () => engine.retryAfterSeconds(), jobs: o.videos && (() => o.videos!.jobs.retryAfterSeconds()) }, log));

  return { app, metrics, setUnready: () => { unready = true; }, setDraining: () => { draining = true; }, endStreams: () => views?.close(), close: () => postprocess.close() };
}

/**
 * Rollout: load another bundle (or the --bundle path again) in a new pool, switch when it is warm.
 * Admin tokens only, distinct from the inference tokens, checked before any body is read.
 */
function mountModelRoutes(app: express.Express, engine: Engine, o: AppOptions, timeoutMs: number, log: Logger): void {
  const rule = jsonRule('{"bundle": "<directory under --bundle-root>"}');
  const admin = (req: Request) => {
    if (!o.adminTokens?.length) throw new HttpError(403, 'Model reloads over HTTP are off on this server.', 'Start i2i serve with --admin-token-file, or send the server SIGHUP.');
    if (!authorised(req.get('authorization'), o.adminTokens)) throw new HttpError(401, 'A valid admin token is required.', 'Send Authorization: Bearer <token> with a token from the server\'s --admin-token-file.', { 'WWW-Authenticate': 'Bearer realm="i2i-admin"' });
  };
  /** No body: the --bundle path; {"bundle": NAME}: a directory under --bundle-root. */
  const target = async (req: Request): Promise<string | undefined> => {
    if (!declaresBody(req)) return undefined;
    const body = await readJson(req, rule, within(timeoutMs));
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'The JSON body must be an object like {"bundle": "<directory>"}.', rule.example);
    const named = (body as { bundle?: unknown }).bundle;
    if (named === undefined) return undefined;
    if (typeof named !== 'string') throw new HttpError(400, '"bundle" must be a directory name.', 'Send {"bundle": "<directory under --bundle-root>"}, or no body to reload the --bundle path.');
    return allowedBundle(named, o.bundleRoot);
  };
  const reload = async (res: Response, dir: string | undefined) => {
    try {
      const r = await engine.reload(dir);
      res.set('X-Model-Version', r.active.version).json({ active: modelIdentity(r.active), previous: modelIdentity(r.previous) });
    } catch (e) {
      if (e instanceof EngineError && e.code === 'reload-failed') log.error({ reqId: res.locals.id, err: e.message }, 'reload failed; the served model is unchanged');
      throw e;
    }
  };
  app.post('/v1/model/reload', async (req: Request, res: Response) => {
    admin(req);
    await reload(res, await target(req));
  });
  app.post('/v1/model/rollback', async (req: Request, res: Response) => {
    admin(req);
    const prev = engine.previous;
    if (!prev) throw new HttpError(409, 'There is no previous model to roll back to.', 'A rollback follows a reload.');
    await reload(res, prev.realDir);
  });
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
