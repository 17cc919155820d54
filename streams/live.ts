/**
 * A live source (RTSP, HTTP, or a file played at its native rate) segmented in real time. ffmpeg
 * reads it with low-latency flags and writes raw RGB frames that are always read at once (a live
 * source cannot be paused): only the newest frame is kept, and whenever the engine has room it
 * segments the newest one; frames that arrive meanwhile are dropped and counted, so the stream never
 * falls behind. A source that drops (ffmpeg exits, or no frame for `stallMs`) is reconnected with
 * exponential backoff. Overlays go to MJPEG viewers (core/live.ts) and, with `out`, to rolling MP4
 * segment files with their per-frame stats lines.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { LiveFeed, LiveStats } from '../core/live';
import { UserError } from '../core/errors';
import { blendOverlay, paletteOf, presentFractions, resizeLabels } from '../runtime/image';
import type { Engine, LabelsResult } from '../serve/engine/engine';
import type { CaptureTarget, FrameSampler, FrameSink } from '../core/capture';
import { encodeVideo, runFfmpeg, type Ffmpeg } from './ffmpeg';

export interface LiveOptions {
  name: string;
  /** rtsp://, http(s)://, rtmp://, udp://, srt://..., or a file (played at its native rate). */
  source: string;
  engine: Engine;
  /** Rolling MP4 segments with the overlay, and `<segment>.jsonl` stats lines, in this directory. */
  out?: string;
  /** Seconds per segment file (default 60). */
  segmentSeconds?: number;
  /** A file source starts again at its end (else the stream ends there). */
  loop?: boolean;
  alpha?: number;
  /** Frames are decoded at the source's size, at most this wide (default 1280). */
  maxWidth?: number;
  /** Reconnect backoff: from minMs, doubling, at most maxMs (default 500 ms .. 30 s). */
  backoff?: { minMs?: number; maxMs?: number };
  /** No frame for this long while connected counts as a dropped source (default 10 s). */
  stallMs?: number;
  /** Drift-driven capture: drifted frames, sampled by their time in the stream (a FrameSink sampler). */
  capture?: FrameSink;
  log?: (msg: string, extra?: object) => void;
}

const NETWORK = /^[a-z][a-z0-9+.-]*:\/\//i;
/**
 * What a network source may open: its own protocols and what they are carried on, never `file`
 * (an HLS playlist or an RTSP server's answer must not make ffmpeg read local files). A file the
 * operator names may also open files (its playlist's segments, say).
 */
const NETWORK_PROTOCOLS = 'tcp,udp,rtp,srtp,rtsp,rtmp,rtmps,rtmpt,rtmpts,http,https,tls,crypto,hls,httpproxy,srt';

/** Any text without the credentials of URLs in it (user:pass@, and secret-looking query parameters): for logs, stats and errors. */
export function redact(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@').replace(/([?&;](?:user|username|pass|passwd|password|pwd|token|key|auth|secret|signature|sig)[^=&\s]*=)[^&\s]*/gi, '$1***');
}

interface Frame { rgb: Buffer; width: number; height: number; readAt: number; seq: number }

export class LiveStream extends EventEmitter implements LiveFeed, CaptureTarget {
  readonly name: string;
  private readonly o: LiveOptions;
  private readonly isFile: boolean;
  private state: LiveStats['state'] = 'connecting';
  private counts = { read: 0, segmented: 0, dropped: 0 };
  private reconnects = 0;
  private sourceFps = 0;
  private lastError?: string;
  private latency: number | null = null;
  private drift: number | null = null;
  private fractions: Record<string, number> = {};
  private recent: number[] = [];
  private jpeg?: Buffer;
  private newest?: Frame;
  private taken = 0;
  private wake?: () => void;
  private ff?: Ffmpeg;
  private stopping = false;
  private segment?: { file: string; enc: ReturnType<typeof encodeVideo>; stats: fs.WriteStream; startedAt: number; width: number; height: number };
  private finished?: Promise<void>;
  private readonly palette: [number, number, number][];
  private capture?: FrameSampler;
  /** When the first frame was read (monotonic): a frame's time in the stream, across reconnects, counts from it. */
  private firstReadAt?: number;

  constructor(o: LiveOptions) {
    super();
    // One listener per MJPEG viewer (bounded by the server's viewer limit).
    this.setMaxListeners(0);
    this.o = o;
    this.name = o.name;
    this.palette = paletteOf(o.engine.manifest.classes);
    this.isFile = !NETWORK.test(o.source);
    if (!/^[\w.-]{1,64}$/.test(o.name)) throw new UserError(`Stream name "${o.name}" is not usable in a URL.`, 'Use letters, digits, dot, dash or underscore (e.g. --stream front=rtsp://...).');
    if (this.isFile && !fs.existsSync(o.source)) throw new UserError(`${o.source} is neither a URL nor an existing file.`, 'Pass rtsp://, http(s)://, ... or a video file.');
    if (o.out) fs.mkdirSync(o.out, { recursive: true });
    if (o.capture) this.captureTo(o.capture);
  }

  /** The server's capture (i2i serve --capture), handed over after the stream was made. */
  captureTo(capture: FrameSink): void { this.capture = capture.sampler(`stream ${this.name}`); }

  /** Starts reading; resolves when the stream has ended (a file's end) or was stopped. */
  start(): Promise<void> { return this.finished ??= this.run(); }

  async stop(): Promise<void> {
    this.stopping = true;
    this.ff?.kill();
    this.wake?.();
    await this.finished;
  }

  stats(): LiveStats {
    const now = performance.now();
    const last = this.recent.filter((t) => now - t < 5000);
    return {
      name: this.name, source: redact(this.o.source), state: this.state, frames: { ...this.counts },
      fps: last.length > 1 ? (last.length - 1) / ((last[last.length - 1] - last[0]) / 1000) : 0,
      sourceFps: this.sourceFps, reconnects: this.reconnects, latency: this.latency, drift: this.drift, fractions: this.fractions,
      lastError: this.lastError, segment: this.segment?.file,
    };
  }

  latest(): Buffer | undefined { return this.jpeg; }

  subscribe(onFrame: (jpeg: Buffer) => void): () => void {
    this.on('jpeg', onFrame);
    return () => { this.off('jpeg', onFrame); };
  }

  private async run(): Promise<void> {
    const { minMs = 500, maxMs = 30_000 } = this.o.backoff ?? {};
    let failures = 0;
    try {
      while (!this.stopping) {
        // Nothing a connection throws stops the stream (or the server it runs in): it counts as a drop.
        const r = await this.connection().catch((e: Error) => { this.fail(e.message); return { clean: false, frames: 0 }; });
        if (this.stopping) break;
        if (this.isFile && !this.o.loop && r.clean) { this.state = 'ended'; break; }
        // A connection that delivered frames resets the backoff: the next drop is retried quickly.
        failures = r.frames > 0 ? 0 : failures + 1;
        const wait = Math.min(maxMs, minMs * 2 ** Math.max(0, failures - 1));
        this.state = 'reconnecting';
        this.reconnects++;
        this.o.log?.('stream reconnecting', { stream: this.name, inMs: wait, error: this.lastError });
        await new Promise<void>((res) => { const t = setTimeout(res, wait); this.wake = () => { clearTimeout(t); res(); }; });
        this.wake = undefined;
      }
    } finally {
      await this.closeSegment();
      if (this.state !== 'ended') this.state = 'stopped';
    }
  }

  /** One ffmpeg connection: reads until the source ends or stalls, segmenting the newest frames. */
  private async connection(): Promise<{ clean: boolean; frames: number }> {
    const o = this.o;
    const input = this.isFile
      ? ['-re', ...(o.loop ? ['-stream_loop', '-1'] : []), '-protocol_whitelist', `file,pipe,${NETWORK_PROTOCOLS}`, '-i', o.source]
      : ['-protocol_whitelist', NETWORK_PROTOCOLS, ...(/^rtsp/i.test(o.source) ? ['-rtsp_transport', 'tcp', '-stimeout', '5000000'] : []), ...(/^https?:/i.test(o.source) ? ['-rw_timeout', '5000000'] : []),
        // nobuffer drops what probing read: right for a real-time protocol (start at the newest), wrong
        // for HTTP, where a short or progressive stream can fit in the probe and would yield nothing.
        ...(/^(rtsp|rtmp|udp|srt|rtp)/i.test(o.source) ? ['-fflags', 'nobuffer'] : []), '-flags', 'low_delay', '-probesize', '500000', '-analyzeduration', '1000000', '-i', o.source];
    let width = 0, height = 0, inOutput = false;
    this.ff = runFfmpeg(['-loglevel', 'info', ...input, '-map', '0:v:0', '-an', '-vf', `scale='min(${o.maxWidth ?? 1280},iw)':-2`, '-vsync', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], {
      stdout: 'pipe',
      onStderrLine: (l) => {
        // The sizes and rates ffmpeg reports before the first frame: the input's rate, the output's size.
        if (/^Output #0/.test(l)) inOutput = true;
        const v = /Stream #0:\d.*Video: .*?, (\d+)x(\d+)/.exec(l);
        if (v && inOutput && !width) { width = Number(v[1]); height = Number(v[2]); }
        const r = /Stream #0:\d.*Video: .*?([\d.]+) (?:fps|tbr)/.exec(l);
        if (r && !inOutput) this.sourceFps = Number(r[1]);
      },
    });
    const ff = this.ff;
    let frames = 0, pending: Buffer[] = [], bytes = 0, lastFrameAt = performance.now(), ended = false;
    ff.proc.stdout!.on('data', (c: Buffer) => {
      pending.push(c); bytes += c.length;
      // The size comes from stderr, a separate pipe: bytes that arrive before it is parsed wait.
      if (!width) { if (bytes > 64 * 2 ** 20) { this.fail('ffmpeg wrote frames before reporting their size'); ff.kill(); } return; }
      const size = width * height * 3;
      if (bytes < size) return;
      const all = Buffer.concat(pending, bytes);
      let off = 0;
      for (; all.length - off >= size; off += size) {
        if (this.newest && this.newest.seq > this.taken) this.counts.dropped++;
        // Copied out: the chunk is not kept alive by a view of the newest frame only.
        this.newest = { rgb: Buffer.from(all.subarray(off, off + size)), width, height, readAt: performance.now(), seq: ++this.counts.read };
        this.firstReadAt ??= this.newest.readAt;
        frames++;
      }
      pending = [all.subarray(off)]; bytes = all.length - off;
      lastFrameAt = performance.now();
      if (this.state !== 'live') { this.state = 'live'; this.o.log?.('stream live', { stream: this.name, width, height, sourceFps: this.sourceFps }); }
      this.wake?.();
    });
    ff.proc.stdout!.on('end', () => { ended = true; this.wake?.(); });
    const stall = setInterval(() => {
      if (performance.now() - lastFrameAt > (o.stallMs ?? 10_000)) { this.fail(`no frame for ${o.stallMs ?? 10_000} ms`); ff.kill(); }
    }, 250);
    try {
      await this.segmentNewest(() => ended || this.stopping);
    } finally {
      clearInterval(stall);
      ff.kill();
    }
    const r = await ff.done;
    // A frame still unsegmented when the connection ends was dropped too.
    if (this.newest && this.newest.seq > this.taken) { this.counts.dropped++; this.taken = this.newest.seq; }
    const clean = r.code === 0;
    if (!clean && !this.stopping) this.fail(`${r.signal ?? `exit ${r.code}`}: ${r.stderr.split('\n').filter(Boolean).pop() ?? 'no message'}`);
    else if (!this.isFile && !this.stopping) this.fail('the source ended the stream');
    return { clean, frames };
  }

  /**
   * Keeps the engine fed with the newest frames (up to 2 per worker in flight) and publishes results
   * in order: while the oldest result is pending, a newly read frame is submitted if there is room.
   */
  private async segmentNewest(over: () => boolean): Promise<void> {
    const inFlight = 2 * Math.max(1, this.o.engine.stats().workers);
    const window: { frame: Frame; result: Promise<LabelsResult | undefined> }[] = [];
    const m = this.o.engine.manifest;
    const arrival = () => new Promise<'frame'>((r) => { this.wake = () => r('frame'); });
    // Publishing (overlay, JPEG, segment encode) runs behind, at most 2 results deep, so that it
    // does not hold up the next submission.
    let publishing = Promise.resolve(), behind = 0;
    for (;;) {
      while (window.length < inFlight && this.newest && this.newest.seq > this.taken) {
        const frame = this.newest;
        this.taken = frame.seq;
        const result = sharp(frame.rgb, { raw: { width: frame.width, height: frame.height, channels: 3 } }).resize(m.input.width, m.input.height, { fit: 'fill', kernel: 'linear' }).raw().toBuffer()
          .then((px) => this.o.engine.submit(px))
          // A full queue (other work on the engine) drops this frame like any other late one.
          .catch((e: { code?: string; message: string }) => { this.counts.dropped++; if (e.code !== 'queue-full') this.fail(e.message); return undefined; });
        window.push({ frame, result });
      }
      if (window.length === 0) {
        if (over()) { await publishing; return; }
        await arrival();
        continue;
      }
      const head = window[0];
      const first = await Promise.race([head.result.then(() => 'result' as const), over() ? new Promise<never>(() => undefined) : arrival()]);
      this.wake = undefined;
      if (first !== 'result') continue;
      window.shift();
      const r = await head.result;
      behind++;
      publishing = publishing.then(() => this.publish(head.frame, r)).catch((e: Error) => this.fail(`publishing a frame: ${e.message}`)).finally(() => { behind--; });
      if (behind >= 2) await publishing;
    }
  }

  /** Records a problem (credentials removed) without stopping the stream. */
  private fail(message: string): void {
    this.lastError = redact(message);
    this.o.log?.('stream problem', { stream: this.name, error: this.lastError });
  }

  private async publish(f: Frame, r: LabelsResult | undefined): Promise<void> {
    if (!r) return;
    const m = this.o.engine.manifest;
    const labels = resizeLabels(r.labels, m.input.width, m.input.height, f.width, f.height);
    const overlay = blendOverlay({ data: f.rgb, width: f.width, height: f.height, channels: 3 }, labels, this.palette, this.o.alpha ?? 0.5);
    this.fractions = presentFractions(labels, m.classes);
    this.drift = r.drift;
    // A live frame has no pts of its own (real-time sources restart theirs on reconnect): its time since the stream's first frame stands in.
    this.capture?.offer({ data: f.rgb, width: f.width, height: f.height }, r.drift, r.version, (f.readAt - (this.firstReadAt ?? f.readAt)) / 1000);
    this.counts.segmented++;
    this.recent.push(performance.now());
    if (this.recent.length > 60) this.recent.shift();
    if (this.o.out) await this.record(f, overlay);
    if (this.listenerCount('jpeg') > 0 || !this.jpeg || this.counts.segmented % 10 === 0) {
      this.jpeg = await sharp(overlay, { raw: { width: f.width, height: f.height, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
      this.emit('jpeg', this.jpeg);
    }
    this.latency = (performance.now() - f.readAt) / 1000;
  }

  /**
   * Rolling segment files: a new MP4 every segmentSeconds (or when the size changes), each frame timed
   * by when it was read (the monotonic clock). A segment that cannot be written is closed, the
   * error recorded, and the next frame starts a new one: recording never stops the stream.
   */
  private async record(f: Frame, overlay: Buffer): Promise<void> {
    let s = this.segment;
    if (s && (f.readAt - s.startedAt >= (this.o.segmentSeconds ?? 60) * 1000 || s.width !== f.width || s.height !== f.height)) { await this.closeSegment(); s = undefined; }
    try {
      if (!s) {
        const file = path.join(this.o.out!, `${this.name}-${new Date().toISOString().replace(/[:.]/g, '').replace('Z', '')}.mp4`);
        const stats = fs.createWriteStream(file.replace(/\.mp4$/, '.jsonl'));
        stats.on('error', (e) => this.fail(`writing ${stats.path}: ${e.message}`));
        // Frames come at the engine's pace, not the source's: each keeps the time it was read (VFR).
        s = this.segment = { file, startedAt: f.readAt, width: f.width, height: f.height, stats,
          enc: encodeVideo(file, { width: f.width, height: f.height, fps: this.sourceFps || 30, codec: 'h264', timestamps: true }) };
        this.o.log?.('stream segment', { stream: this.name, file });
      }
      const t = (f.readAt - s.startedAt) / 1000;
      await s.enc.write(overlay, t);
      s.stats.write(JSON.stringify({ seq: f.seq, t: Number(t.toFixed(3)), at: new Date().toISOString(), drift: this.drift, dropped: this.counts.dropped, fractions: this.fractions }) + '\n');
    } catch (e) {
      this.fail(`recording ${s?.file ?? 'a segment'}: ${(e as Error).message}`);
      await this.closeSegment();
    }
  }

  private async closeSegment(): Promise<void> {
    const s = this.segment;
    if (!s) return;
    this.segment = undefined;
    await new Promise<void>((r) => s.stats.end(() => r()));
    try { await s.enc.end(); } catch (e) { this.fail(`closing ${s.file}: ${(e as Error).message}`); }
  }
}
