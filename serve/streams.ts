/**
 * Live streams on the server: GET /streams (their stats), GET /streams/:name (one's latest stats),
 * GET /streams/:name.mjpeg (the overlay as multipart/x-mixed-replace, which browsers show in an
 * <img>). A viewer that reads slower than the stream skips frames instead of buffering them; the
 * number of viewers is bounded; draining ends every view.
 */
import type { Express, Request, Response } from 'express';
import * as client from 'prom-client';
import type { LiveFeed } from '../core/live';
import { HttpError } from './http-error';

const BOUNDARY = 'i2iframe';

/** Errors are thrown to the app's error middleware (serve/http-error). */
export function mountStreamRoutes(app: Express, feeds: LiveFeed[], o: { maxViewers?: number }): { close(): void } {
  const byName = new Map(feeds.map((f) => [f.name, f]));
  const maxViewers = o.maxViewers ?? 16;
  const views = new Set<Response>();
  const find = (req: Request) => {
    const f = byName.get(String(req.params.name));
    if (!f) throw new HttpError(404, `No stream ${req.params.name}.`, `Streams here: ${[...byName.keys()].join(', ') || 'none (start with --stream NAME=URL)'}.`);
    return f;
  };
  app.get('/streams', (_req, res) => { res.json({ streams: feeds.map((f) => ({ ...f.stats(), links: { stats: `/streams/${f.name}`, mjpeg: `/streams/${f.name}.mjpeg` } })) }); });
  app.get('/streams/:name.mjpeg', (req, res) => {
    const f = find(req);
    if (views.size >= maxViewers) throw new HttpError(503, `${views.size} viewers are watching already.`, 'Retry later.', { 'Retry-After': '5' });
    res.writeHead(200, { 'Content-Type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`, 'Cache-Control': 'no-store', Connection: 'close' });
    views.add(res);
    const write = (jpeg: Buffer) => {
      // A slow viewer: skip this frame rather than queue it (at most ~2 frames buffered per viewer).
      if (res.writableLength > 2 * jpeg.length) return;
      res.write(`--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`);
      res.write(jpeg);
      res.write('\r\n');
    };
    const first = f.latest();
    if (first) write(first);
    const unsubscribe = f.subscribe(write);
    res.on('close', () => { unsubscribe(); views.delete(res); });
  });
  app.get('/streams/:name', (req, res) => { res.json(find(req).stats()); });
  return { close: () => { for (const r of views) r.end(); } };
}

export function streamPaths(security: object[] | undefined, errors: (codes: number[]) => object): Record<string, object> {
  const name = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };
  const stats = { type: 'object', description: 'LiveStats: state, frames read / segmented / dropped, fps, source fps, reconnects, latency, drift, class fractions.' };
  return {
    '/streams': { get: { summary: 'The live streams and their stats', security, responses: { 200: { description: 'The streams.', content: { 'application/json': { schema: { type: 'object', properties: { streams: { type: 'array', items: stats } } } } } }, ...errors([]) } } },
    '/streams/{name}': { get: { summary: 'A live stream\'s latest stats', security, parameters: [name], responses: { 200: { description: 'Its stats.', content: { 'application/json': { schema: stats } } }, ...errors([404]) } } },
    '/streams/{name}.mjpeg': { get: { summary: 'The overlay as MJPEG (multipart/x-mixed-replace; an <img> shows it)', security, parameters: [name], responses: { 200: { description: 'JPEG parts, newest frames only.', content: { [`multipart/x-mixed-replace; boundary=${BOUNDARY}`]: { schema: { type: 'string', format: 'binary' } } } }, ...errors([404, 503]) } } },
  };
}

/** Per stream: frames read, segmented and dropped, reconnects, and whether it is live. */
export function registerStreamMetrics(registry: client.Registry, feeds: LiveFeed[]): void {
  new client.Counter({
    name: 'i2i_stream_frames_total', help: 'Live stream frames by outcome: read from the source, segmented, dropped (arrived while the engine was busy).', labelNames: ['stream', 'outcome'], registers: [registry],
    collect() { this.reset(); for (const f of feeds) { const s = f.stats(); for (const k of ['read', 'segmented', 'dropped'] as const) this.inc({ stream: f.name, outcome: k }, s.frames[k]); } },
  });
  new client.Counter({
    name: 'i2i_stream_reconnects_total', help: 'Times a live source dropped and was reconnected.', labelNames: ['stream'], registers: [registry],
    collect() { this.reset(); for (const f of feeds) this.inc({ stream: f.name }, f.stats().reconnects); },
  });
  new client.Gauge({
    name: 'i2i_stream_live', help: '1 while a live stream delivers frames.', labelNames: ['stream'], registers: [registry],
    collect() { for (const f of feeds) this.set({ stream: f.name }, f.stats().state === 'live' ? 1 : 0); },
  });
}
