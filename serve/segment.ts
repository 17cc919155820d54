/**
 * POST /segment as its stages: admit (refuse overload before reading) -> read the body -> check the
 * image's header (type, size, pixel bound) -> decode to the model's input and infer, both in an
 * inference worker (the JPEG crosses the process boundary, not 1.5 MB of RGB) -> post-process at
 * the frame's size -> respond (png | json | overlay | labels). A png answer for a frame at the input
 * size is encoded in the worker too, and sent as it comes back. Errors are thrown to the app's one
 * error middleware; only the metrics that belong to this route (frames dropped by the engine) are
 * counted on the way.
 */
import type { Express, Request, Response } from 'express';
import type { Manifest } from '../core/bundle';
import { decodeFrame, paletteOf, probeImage, rgbJpeg } from '../runtime/image';
import { IMAGE_TYPES, readBody, type BodyRule, type Deadline } from './body';
import type { FrameCapture } from './capture';
import { EngineError, type Engine, type EngineResult } from './engine/engine';
import { HttpError } from './http-error';
import type { ServeMetrics, Stage } from './metrics';
import { modelIdentity } from './model-card';
import type { PostProcessor, PostResult } from './postprocess';
import { Semaphore } from './semaphore';

const FORMATS = ['png', 'json', 'overlay', 'labels'] as const;
type Format = (typeof FORMATS)[number];
const STAGES: Stage[] = ['decode', 'queue', 'infer', 'encode', 'total'];

export interface SegmentRouteOptions {
  engine: Engine;
  metrics: ServeMetrics;
  postprocess: PostProcessor;
  capture?: FrameCapture;
  maxBytes: number;
  maxPixels: number;
  timeoutMs: number;
  isDraining(): boolean;
}

/** What the query and headers ask for, checked before the body is read. */
interface Ask { format: Format; alpha: number; withOverlay: boolean; deadline: Deadline }
/** The frame's oriented size, from its header: where the labels go back to. */
type Input = { width: number; height: number };

export function frameRule(maxBytes: number): BodyRule {
  return {
    what: 'frame', accepts: (t) => IMAGE_TYPES.includes(t), partTypes: (t) => IMAGE_TYPES.includes(t), field: 'image',
    types: `${IMAGE_TYPES.join(', ')} or multipart/form-data with a field "image"`,
    example: 'Send the frame\'s bytes as the body (curl --data-binary @frame.jpg -H "Content-Type: image/jpeg"), or the form field "image" (curl -F image=@frame.jpg).',
    maxBytes, smaller: 'Send a smaller image (JPEG at quality 85 is plenty), or raise --max-bytes.', timeoutFlag: '--timeout-ms',
  };
}

export function mountSegmentRoute(app: Express, o: SegmentRouteOptions): void {
  const { engine, metrics } = o;
  const m: Manifest = engine.manifest;
  const palette = paletteOf(m.classes);
  const rule = frameRule(o.maxBytes);
  // Full-resolution work in this process (label maps and overlays at the frame's size) is bounded in
  // parallel, so a flood of large frames costs at most this many frames' worth of memory at once.
  // (Decoding to the input runs in the inference workers, one image at a time in each.)
  const fullRes = new Semaphore(4);
  // Requests inside POST /segment (reading, queued, decoding and running, encoding). Bounded, so that
  // a flood is refused before its bodies are read: the queue's capacity plus one batch per worker in
  // flight, twice over (bodies held while being read or encoded).
  let active = 0;
  const admission = () => 2 * (engine.stats().capacity + engine.stats().workers * engine.batchLimit);

  /** Counts the request in, or refuses it (503) before its body is read: overload costs next to nothing. */
  const admit = (res: Response) => {
    active++;
    metrics.inProgress.set(active);
    res.on('close', () => { active--; metrics.inProgress.set(active); });
    if (o.isDraining()) throw new HttpError(503, 'The server is draining (shutting down).', 'Retry on another instance.', { 'Retry-After': '1' });
    if (engine.saturated() || active > admission()) {
      const why = engine.saturated() ? `The queue is full (${engine.stats().queued} frames wait)` : `${active - 1} requests are in progress`;
      throw new HttpError(503, `${why}: the server is at capacity.`, 'Retry after the Retry-After seconds, or add workers / instances.', { 'Retry-After': String(engine.retryAfterSeconds()) });
    }
  };

  /** The header's checks (400/413/415 before any decoding) and the frame's size. */
  const probe = (body: Buffer) => probeImage(body, { maxPixels: o.maxPixels });

  const infer = async (body: Buffer, ask: Ask, gone: AbortSignal, timing: Timing): Promise<EngineResult> => {
    // The default answer (format png) of a frame at the input size is encoded by the worker itself.
    const r = await engine.submit({ encoded: body, maxPixels: o.maxPixels, ...(ask.format === 'png' && { answer: 'png' as const }) }, { deadline: ask.deadline.at, signal: gone });
    timing.ms.decode = (timing.ms.decode ?? 0) + (r.decodeMs ?? 0);
    timing.ms.queue = r.queueMs;
    timing.ms.infer = r.inferMs;
    if (r.drift !== null) metrics.drift.observe(r.drift);
    return r;
  };

  /** The label map at the frame's size (and the overlay, fractions, PNG) in the post-processing threads. */
  const postProcess = async (body: Buffer, input: Input, r: EngineResult, ask: Ask): Promise<PostResult> => {
    // The frame's own pixels only where an overlay is drawn (decoded in sharp's threads).
    const frame = ask.format === 'overlay' || ask.withOverlay ? await decodeFrame(body, { maxPixels: o.maxPixels }) : undefined;
    // Only a PNG answer comes without labels, and it skips this step.
    if (!r.labels) throw new Error('the engine answered a PNG where labels were needed');
    return o.postprocess.run({ labels: r.labels, sw: m.input.width, sh: m.input.height, dw: input.width, dh: input.height, format: ask.format, palette, classes: m.classes.length, frame: frame?.data, alpha: ask.alpha });
  };

  /** The answer's bytes and type in the format asked for (JPEG encoding of an overlay included). */
  const encode = async (res: Response, post: PostResult, input: Input, r: EngineResult, ask: Ask, timing: Timing): Promise<{ payload: Buffer | string; type: string }> => {
    const jpeg = () => rgbJpeg(buf(post.overlayRgb!), input.width, input.height);
    switch (ask.format) {
      case 'png': return { payload: buf(post.png!), type: 'image/png' };
      case 'overlay': return { payload: await jpeg(), type: 'image/jpeg' };
      case 'labels':
        res.set({ 'X-Width': String(input.width), 'X-Height': String(input.height), 'X-Void': '255' });
        return { payload: buf(post.labels!), type: 'application/octet-stream' };
      case 'json': {
        const fr = post.fractions!;
        const doc = {
          width: input.width, height: input.height, classes: m.classes,
          fractions: Object.fromEntries(m.classes.map((c) => [c.name, fr[c.id]])),
          mask: buf(post.png!).toString('base64'),
          timings: { decode: timing.ms.decode, queue: timing.ms.queue, infer: timing.ms.infer, encode: timing.since('encode') },
          drift: r.drift, batch: r.batch,
          model: r.version === engine.model.version ? modelIdentity(engine.model) : engine.previous?.version === r.version ? modelIdentity(engine.previous) : { version: r.version },
          // The overlay of the same inference, for a client that shows both (the page at GET /).
          ...(ask.withOverlay ? { overlay: (await jpeg()).toString('base64') } : {}),
        };
        return { payload: JSON.stringify(doc), type: 'application/json' };
      }
    }
  };

  const respond = (res: Response, body: Buffer, r: EngineResult, out: { payload: Buffer | string; type: string }, timing: Timing) => {
    timing.end('encode');
    // A PNG the worker encoded (r.png): its encoding is part of the encode stage.
    if (r.png) timing.ms.encode! += r.encodeMs ?? 0;
    timing.end('total');
    for (const s of STAGES) if (timing.ms[s] !== undefined) metrics.stage.observe({ stage: s }, timing.ms[s]! / 1000);
    res.set('Server-Timing', timing.header());
    if (r.drift !== null) res.set('X-Drift', r.drift.toFixed(4));
    res.set('X-Model-Version', r.version);
    metrics.frames.inc({ version: r.version });
    // Counted when written (i2i_frames_captured_total reads the capture's own count).
    o.capture?.offer(body, r.drift, { version: r.version, source: `POST /segment ${res.locals.id}` });
    res.type(out.type).send(out.payload);
  };

  app.post('/segment', async (req: Request, res: Response) => {
    const timing = new Timing();
    admit(res);
    const ask = parseAsk(req, o.timeoutMs);
    // A client that goes away (at any stage) frees its place in the queue.
    const gone = new AbortController();
    res.on('close', () => { if (!res.writableFinished) gone.abort(); });
    try {
      const { data: body } = await readBody(req, rule, ask.deadline);
      const input = await timing.time('decode', () => probe(body));
      const r = await infer(body, ask, gone.signal, timing);
      timing.start('encode');
      // At the input size the worker's PNG is the answer: no post-processing hop, no label map to move.
      if (r.png) return respond(res, body, r, { payload: buf(r.png), type: 'image/png' }, timing);
      await fullRes.run(async () => {
        const post = await postProcess(body, input, r, ask);
        respond(res, body, r, await encode(res, post, input, r, ask, timing), timing);
      });
    } catch (e) {
      if (timing.ms.decode !== undefined) res.set('Server-Timing', timing.header());
      // Every frame the engine did not compute, by its reason (one place: the engine's own 'dropped' event is for other callers).
      if (e instanceof EngineError) metrics.dropped.inc({ reason: e.code });
      throw e;
    }
  });
}

const buf = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Stage durations (ms) for Server-Timing, the JSON answer and the stage histogram. */
class Timing {
  readonly ms: Partial<Record<Stage, number>> = {};
  private readonly t0: Partial<Record<Stage, number>> = { total: performance.now() };
  start(s: Stage): void { this.t0[s] = performance.now(); }
  since(s: Stage): number { return performance.now() - this.t0[s]!; }
  end(s: Stage): void { this.ms[s] = this.since(s); }
  async time<T>(s: Stage, f: () => Promise<T>): Promise<T> { this.start(s); const v = await f(); this.end(s); return v; }
  header(): string { return STAGES.filter((s) => this.ms[s] !== undefined).map((s) => `${s};dur=${this.ms[s]!.toFixed(1)}`).join(', '); }
}

function parseAsk(req: Request, timeoutMs: number): Ask {
  const format = parseFormat(req.query.format);
  const alpha = parseAlpha(req.query.alpha);
  const withOverlay = parseOverlayFlag(req.query.overlay, format);
  const budget = deadlineMs(req.get('x-timeout-ms'), timeoutMs);
  return { format, alpha, withOverlay, deadline: { at: Date.now() + budget, budgetMs: budget } };
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
