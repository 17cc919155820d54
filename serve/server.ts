/**
 * `i2i serve`: the engine (worker pool) and the HTTP app on one port, with a graceful drain:
 * on SIGTERM / SIGINT readiness turns 503, the listener closes, requests in flight finish, the pool
 * closes, and the process exits 0 (1 if the drain outlived its timeout).
 */
import type { AddressInfo } from 'node:net';
import * as http from 'node:http';
import pino from 'pino';
import { bundleId, readManifest } from '../core/bundle';
import { UserError } from '../core/errors';
import { readTokens } from './auth';
import { FrameCapture, type CaptureOptions, type CaptureTarget } from './capture';
import { createApp, type AppOptions, type Logger } from './app';
import { Engine, type EngineOptions, type ModelVersion } from './engine/engine';
import type { LiveFeed } from '../core/live';
import type { VideoRouteOptions } from './videos';

/** What runs on the server's engine beside POST /segment: video jobs and live streams (cli/serve.ts builds them from streams/). */
export interface Attachments {
  videos?: VideoRouteOptions;
  streams?: LiveFeed[];
  /** Called once the engine is ready (live streams start reading then). */
  start?(): void;
  /** Called on drain after the listener closed, before the engine closes. */
  close(): Promise<void>;
}

export interface ServeOptions extends Omit<EngineOptions, 'log'>, Omit<AppOptions, 'tokens' | 'log' | 'bundleId' | 'videos' | 'streams' | 'capture'> {
  /** Keep drifted frames (serve/capture): where, from which drift, how many, how fast. */
  capture?: Omit<CaptureOptions, 'log'>;
  attach?: (engine: Engine) => Attachments;
  port?: number;
  host?: string;
  tokenFile?: string;
  /** Admin tokens (one per line) for POST /v1/model/reload and /v1/model/rollback. */
  adminTokenFile?: string;
  /** How long a drain may take before the process gives up on it (default 30 s). */
  drainTimeoutMs?: number;
  /**
   * On drain, how long /readyz says 503 while the listener still accepts, so that a load balancer
   * stops sending before connections are refused (default 0; a few seconds behind a balancer).
   */
  drainDelayMs?: number;
  log?: Logger;
  /** Called once the port is open, before the model has loaded (readiness says 503 until it has). */
  onListening?: (url: string) => void;
}

export interface RunningServer {
  url: string;
  engine: Engine;
  server: http.Server;
  /** Drain: stop accepting, finish in-flight requests, close the pool. Resolves false on timeout. */
  close(): Promise<boolean>;
  /** Loads the --bundle path again (after a symlink switch) or `dir`, warm, then switches (Engine.reload). */
  reload(dir?: string): ReturnType<Engine['reload']>;
}

/** What follows the served model (fleet/jobs.ts QueueVideoJobs): told the bundle directory after each reload. */
interface FollowsModel { modelChanged(bundleDir: string): { bundle: string; previous: string } }
const followsModel = (x: unknown): x is FollowsModel => typeof (x as Partial<FollowsModel> | undefined)?.modelChanged === 'function';
const isCaptureTarget = (x: unknown): x is CaptureTarget => typeof (x as Partial<CaptureTarget> | undefined)?.captureTo === 'function';

export function jsonLogger(): Logger { return pino({ base: { service: 'i2i-serve' }, timestamp: pino.stdTimeFunctions.isoTime }); }

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  const log = o.log ?? jsonLogger();
  const tokens = o.tokenFile ? readTokens(o.tokenFile) : undefined;
  const adminTokens = o.adminTokenFile ? readTokens(o.adminTokenFile) : undefined;
  if (adminTokens && tokens && adminTokens.some((a) => tokens.some((t) => t.equals(a)))) {
    throw new UserError('A token is in both --token-file and --admin-token-file.', 'Give admins tokens of their own: an inference token must not reload the model.');
  }
  if (readManifest(o.bundle).kind !== 'segment') {
    throw new UserError(`${o.bundle} holds a classifier; i2i serve segments frames.`, 'Serve a segmentation bundle (convert a segment run).');
  }
  // The listener opens first: /healthz answers and /readyz says 503 while the model loads.
  const capture = o.capture && new FrameCapture({ maxPixels: o.maxPixels, ...o.capture, log: (msg, extra) => log.warn({ ...extra }, msg) });
  const engine = Engine.create({ ...o, log: (level, msg, extra) => log[level]({ ...extra }, msg) });
  const extra = o.attach?.(engine);
  // Video jobs and live streams are made by the caller's attach (cli/attach.ts): they get the capture here, before any job or stream starts.
  if (capture) for (const x of [extra?.videos?.jobs, ...(extra?.streams ?? [])]) if (isCaptureTarget(x)) x.captureTo(capture);
  // A distributed queue pins each video to a bundle: after a reload, new videos go to the new one's
  // workers while the old one's finish what was queued for it (fleet/jobs.ts).
  const jobs = extra?.videos?.jobs;
  if (followsModel(jobs)) {
    engine.on('reload', (next: ModelVersion) => {
      try {
        const r = jobs.modelChanged(next.realDir);
        log.info({ bundle: r.bundle.slice(0, 12), previous: r.previous.slice(0, 12) }, 'video jobs are queued for the new bundle from now on; those queued before are left to the previous bundle\'s workers');
      } catch (e) { log.error({ err: (e as Error).message }, 'the video queue could not switch to the reloaded bundle; videos are still queued for the previous one'); }
    });
  }
  const { app, setUnready, setDraining, endStreams, close: closeApp } = createApp(engine, { ...o, tokens, adminTokens, log, capture, bundleId: servedBundleId(engine), videos: extra?.videos, streams: extra?.streams });
  // Node checks headersTimeout/requestTimeout only every connectionsCheckingInterval (30 s by
  // default): a client stalling in its headers held a socket for about 50 s.
  const server = http.createServer({ connectionsCheckingInterval: 1000 }, app);
  // Bounded waits on the socket side too: slow clients cannot hold a connection open forever.
  // A request must be done by its deadline anyway (its upload gets 408 past it); the socket-level
  // limit backs that with a margin.
  // Video uploads have their own, longer bound (serve/upload.ts).
  server.requestTimeout = Math.max((o.timeoutMs ?? 10_000), extra?.videos ? extra.videos.uploadTimeoutMs ?? 600_000 : 0) + 5_000;
  server.headersTimeout = 20_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE' ? new UserError(`Port ${o.port} is in use.`, 'Pass another --port, or stop what listens there.') : e));
    server.listen(o.port ?? 8080, o.host ?? '127.0.0.1', () => resolve());
  });
  const { address: a0, port: p0 } = server.address() as AddressInfo;
  o.onListening?.(`http://${a0.includes(':') ? `[${a0}]` : a0}:${p0}`);
  try {
    await engine.start();
  } catch (e) {
    await new Promise<void>((r) => server.close(() => r()));
    await extra?.close();
    throw e;
  }
  extra?.start?.();
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  log.info({ url, model: engine.file.file, runtime: engine.runtime, precision: engine.file.precision, workers: engine.stats().workers, batch: engine.batchLimit }, 'serving');
  let closing: Promise<boolean> | undefined;
  const close = () => closing ??= (async () => {
    // During the delay only readiness flips: the load balancer stops routing here while requests
    // that still arrive are served. Then new work is refused and connections close.
    if (o.drainDelayMs) {
      setUnready();
      log.info({ delayMs: o.drainDelayMs }, 'not ready: serving through the drain delay');
      await new Promise((r) => setTimeout(r, o.drainDelayMs));
    }
    setDraining();
    log.info({}, 'draining');
    const timeout = o.drainTimeoutMs ?? 30_000;
    const closed = new Promise<void>((r) => server.close(() => r()));
    endStreams();
    server.closeIdleConnections();
    const t = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeout).unref());
    const finished = (await Promise.race([closed, t])) !== 'timeout';
    if (!finished) server.closeAllConnections();
    // Video jobs stop with what they wrote (a playable partial output), streams close their segment files.
    await extra?.close().catch((e: Error) => log.error({ err: e.stack }, 'closing video jobs and streams'));
    await engine.close(Math.max(1000, timeout / 3));
    await capture?.flush();
    await closeApp();
    log.info({ clean: finished }, 'stopped');
    return finished;
  })();
  return { url, engine, server, close, reload: (dir) => engine.reload(dir) };
}

/** The id of the bundle the engine serves now (it changes on reload), read once per bundle directory. */
function servedBundleId(engine: Engine): () => string {
  let dir = '', id = '';
  return () => {
    if (engine.model.realDir !== dir) { dir = engine.model.realDir; id = bundleId(dir); }
    return id;
  };
}
