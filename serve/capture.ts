/**
 * Drift-driven capture: frames the model finds unlike its target domain (drift at or above a
 * threshold) are kept on disk for the next adaptation (`i2i train --from RUN --target-frames DIR`).
 * Bounded four ways: a rate (frames per minute), a count and a size on disk (the oldest go first),
 * and the request path, which never waits on it (frames are queued, written one at a time).
 *
 * Frames are re-encoded in their own format with EXIF orientation applied and no metadata (vehicles'
 * uploads may carry GPS and camera serials), written under a temporary name and renamed, so a
 * trainer reading the folder never sees half a file. Layout: DIR/<time>_d<drift>_<version>_<n>.<ext>
 * and DIR/capture.jsonl, one line {file, drift, time, version, source[, pts]} per frame still on disk.
 *
 * Video jobs and live streams offer their decoded frames (raw RGB, written as PNG) through a
 * sampler each: at most one frame per `everySeconds` of that video or stream, so that a long drive
 * through another domain leaves frames spread over it rather than its first minute's worth. They
 * share the rate and the bounds above with the uploaded frames.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { UserError } from '../core/errors';
import { imageFormat } from '../runtime/image';

export interface CaptureOptions {
  dir: string;
  /** Keep frames whose drift is at least this (default 1: beyond the calibration frames' 95th percentile). */
  minDrift?: number;
  /** Frames kept on disk at most; the oldest are removed (default 2000). */
  max?: number;
  /** Bytes kept on disk at most (default 2 GiB); the oldest are removed. */
  maxBytes?: number;
  /** Frames kept per minute at most (default 60). */
  perMinute?: number;
  /** Pixels a kept frame may have (default 4096x2160; the server checked it already). */
  maxPixels?: number;
  /** Per video job or live stream: at most one frame per this many seconds of it (default 5; 0: every drifted frame). */
  everySeconds?: number;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

/**
 * skippedRate: over --capture-per-min; skippedBusy: a decoded frame offered while RAW_PENDING
 * others still wait to be encoded (each is a full frame in memory).
 */
export interface CaptureStats { kept: number; skippedRate: number; skippedBusy: number; failed: number; onDisk: number; bytesOnDisk: number }

/** A decoded frame: packed RGB, as ffmpeg writes it for the video jobs and live streams. */
import type { CaptureTarget, FrameSampler, FrameSink, RawFrame } from '../core/capture';
export type { CaptureTarget, RawFrame };

/** What a video job runner or a live stream takes to offer its frames (the server hands its capture over after attaching them). */

/** Decoded frames waiting to be encoded at most (4K RGB is 25 MB each). */
const RAW_PENDING = 4;

const FRAME = /^\d{8}T\d{9}Z_d[\d.]+_[\w-]+(?:_\d+)?\.(jpg|png|webp)$/;
const INDEX = 'capture.jsonl';

interface Kept { name: string; bytes: number; line: string }

export class FrameCapture implements FrameSink {
  readonly dir: string;
  readonly minDrift: number;
  private readonly max: number;
  private readonly maxBytes: number;
  private readonly perMinute: number;
  readonly everySeconds: number;
  private readonly kept: Kept[];
  private rawPending = 0;
  private recent: number[] = [];
  private chain: Promise<void> = Promise.resolve();
  private seq = 0;
  readonly stats: CaptureStats = { kept: 0, skippedRate: 0, skippedBusy: 0, failed: 0, onDisk: 0, bytesOnDisk: 0 };

  constructor(private readonly o: CaptureOptions) {
    this.dir = path.resolve(o.dir);
    this.minDrift = o.minDrift ?? 1;
    this.max = o.max ?? 2000;
    this.maxBytes = o.maxBytes ?? 2 * 2 ** 30;
    this.perMinute = o.perMinute ?? 60;
    this.everySeconds = o.everySeconds ?? 5;
    fs.mkdirSync(this.dir, { recursive: true });
    // Frames kept by an earlier run count against the bounds too (names sort by time).
    const lines = new Map<string, string>();
    const index = path.join(this.dir, INDEX);
    if (fs.existsSync(index)) {
      for (const l of fs.readFileSync(index, 'utf8').split('\n')) {
        try { lines.set((JSON.parse(l) as { file: string }).file, l); } catch { /* a torn or empty line */ }
      }
    }
    this.kept = fs.readdirSync(this.dir).filter((f) => FRAME.test(f)).sort()
      .map((name) => ({ name, bytes: fs.statSync(path.join(this.dir, name)).size, line: lines.get(name) ?? JSON.stringify({ file: name }) }));
    this.count();
  }

  /**
   * Offers one frame with its drift; keeps it if it drifted enough and the rate allows. Returns at
   * once: the frame is written behind the response.
   */
  offer(bytes: Buffer, drift: number | null, meta: { version: string; source: string }): boolean {
    if (drift === null || drift < this.minDrift) return false;
    const format = imageFormat(bytes);
    if (!format) return false;
    const ext = format === 'jpeg' ? 'jpg' : format;
    if (!this.admit()) return false;
    this.write(ext, drift, meta, () => {
      // Re-encoded in sharp's threads: orientation applied, metadata dropped.
      const img = sharp(bytes, { limitInputPixels: this.o.maxPixels ?? 4096 * 2160, failOn: 'warning' }).rotate();
      return (ext === 'jpg' ? img.jpeg({ quality: 92 }) : ext === 'png' ? img.png() : img.webp({ quality: 92 })).toBuffer();
    });
    return true;
  }

  /**
   * Offers a decoded frame (a video job's or a live stream's), kept as PNG: lossless, so a frame
   * trained on is the frame the model saw. Callers sample through `sampler()`.
   */
  offerRaw(frame: RawFrame, drift: number | null, meta: { version: string; source: string; pts?: number }): boolean {
    if (drift === null || drift < this.minDrift) return false;
    if (frame.data.length !== frame.width * frame.height * 3) return false;
    if (this.rawPending >= RAW_PENDING) { this.stats.skippedBusy++; return false; }
    if (!this.admit()) return false;
    this.rawPending++;
    // A copy: decoders hand out views into buffers they keep (several frames each) or reuse.
    const data = Buffer.from(frame.data);
    this.write('png', drift, meta, () => sharp(data, { raw: { width: frame.width, height: frame.height, channels: 3 } }).png().toBuffer(), () => { this.rawPending--; });
    return true;
  }

  /** One sampler per video job or live stream, named in each kept frame's `source` (with its pts). */
  sampler(source: string): CaptureSampler { return new CaptureSampler(this, source); }

  /** The rate: frames kept over the last minute. */
  private admit(): boolean {
    const now = Date.now();
    this.recent = this.recent.filter((t) => now - t < 60_000);
    if (this.recent.length >= this.perMinute) { this.stats.skippedRate++; return false; }
    this.recent.push(now);
    return true;
  }

  private write(ext: 'jpg' | 'png' | 'webp', drift: number, meta: { version: string; source: string; pts?: number }, encode: () => Promise<Buffer>, done?: () => void): void {
    const now = Date.now();
    const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace('.', '');
    const name = `${stamp}_d${drift.toFixed(3)}_${meta.version.replace(/[^\w-]/g, '')}_${this.seq++ % 1000}.${ext}`;
    const line = JSON.stringify({ file: name, drift, time: new Date(now).toISOString(), version: meta.version, source: meta.source, ...(meta.pts === undefined ? {} : { pts: Number(meta.pts.toFixed(6)) }) });
    this.chain = this.chain.then(async () => {
      const tmp = path.join(this.dir, `.${name}.tmp`);
      try {
        const clean = await encode();
        await fs.promises.writeFile(tmp, clean);
        await fs.promises.rename(tmp, path.join(this.dir, name));
        this.kept.push({ name, bytes: clean.length, line });
        this.stats.kept++;
        let total = this.kept.reduce((a, k) => a + k.bytes, 0);
        while (this.kept.length > this.max || (total > this.maxBytes && this.kept.length > 1)) {
          const old = this.kept.shift()!;
          total -= old.bytes;
          await fs.promises.rm(path.join(this.dir, old.name), { force: true });
        }
        await this.writeIndex();
      } catch (e) {
        this.stats.failed++;
        await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
        this.o.log?.('capture write failed', { error: (e as Error).message, dir: this.dir });
      } finally {
        done?.();
      }
      this.count();
    });
  }

  /** Resolves once every accepted frame is on disk. */
  flush(): Promise<void> { return this.chain; }

  /** The index lists exactly the frames on disk (rewritten whole, renamed into place). */
  private async writeIndex(): Promise<void> {
    const tmp = path.join(this.dir, `.${INDEX}.tmp`);
    await fs.promises.writeFile(tmp, this.kept.map((k) => k.line).join('\n') + '\n');
    await fs.promises.rename(tmp, path.join(this.dir, INDEX));
  }

  private count(): void {
    this.stats.onDisk = this.kept.length;
    this.stats.bytesOnDisk = this.kept.reduce((a, k) => a + k.bytes, 0);
  }
}

/**
 * A video job's or a live stream's way into the capture: a drifted frame is offered only when at
 * least `everySeconds` of the video (its pts) passed since the last one kept, so each source leaves
 * frames spread over its length. A frame the capture refuses (rate, busy) does not count as kept:
 * the next drifted one is offered.
 */
export class CaptureSampler implements FrameSampler {
  private last: number | undefined;
  constructor(private readonly capture: FrameCapture, readonly source: string) {}

  offer(frame: RawFrame, drift: number | null, version: string, pts: number): boolean {
    if (drift === null || drift < this.capture.minDrift) return false;
    if (this.last !== undefined && Math.abs(pts - this.last) < this.capture.everySeconds) return false;
    if (!this.capture.offerRaw(frame, drift, { version, source: `${this.source} pts ${pts.toFixed(3)}`, pts })) return false;
    this.last = pts;
    return true;
  }
}

/** The command line's --capture DIR [--capture-drift D] [--capture-max N] [--capture-max-bytes B] [--capture-per-min N] [--capture-every S] (i2i serve, i2i worker). */
export const CAPTURE_FLAGS = { capture: { type: 'string' }, 'capture-drift': { type: 'string' }, 'capture-max': { type: 'string' }, 'capture-max-bytes': { type: 'string' }, 'capture-per-min': { type: 'string' }, 'capture-every': { type: 'string' } } as const;

export function captureFlags(v: Record<string, string | boolean | (string | boolean)[] | undefined>): Omit<CaptureOptions, 'log' | 'maxPixels'> | undefined {
  const flags = ['capture-drift', 'capture-max', 'capture-max-bytes', 'capture-per-min', 'capture-every'].filter((f) => v[f] !== undefined);
  if (typeof v.capture !== 'string') {
    if (flags.length) throw new UserError(`--${flags[0]} goes with --capture DIR.`, 'Pass --capture <folder for drifted frames>.');
    return undefined;
  }
  const drift = v['capture-drift'] === undefined ? undefined : Number(v['capture-drift']);
  if (drift !== undefined && !(drift >= 0)) throw new UserError(`--capture-drift must be a number >= 0, got "${v['capture-drift']}".`, '1 keeps frames beyond the calibration frames\' 95th percentile.');
  const count = (f: string) => {
    const x = v[f];
    if (x === undefined) return undefined;
    if (typeof x !== 'string' || !/^[1-9]\d*$/.test(x)) throw new UserError(`--${f} must be a positive integer, got "${x}".`);
    return Number(x);
  };
  const every = v['capture-every'] === undefined ? undefined : Number(v['capture-every']);
  if (every !== undefined && !(every >= 0)) throw new UserError(`--capture-every must be a number of seconds >= 0, got "${v['capture-every']}".`, 'It spaces the frames kept from one video job or live stream (default 5; 0 keeps every drifted frame within --capture-per-min).');
  return { dir: path.resolve(v.capture), minDrift: drift, max: count('capture-max'), maxBytes: count('capture-max-bytes'), perMinute: count('capture-per-min'), everySeconds: every };
}
