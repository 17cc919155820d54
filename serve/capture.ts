/**
 * Drift-driven capture: frames the model finds unlike its target domain (drift at or above a
 * threshold) are kept on disk for the next adaptation (`i2i train --from RUN --target-frames DIR`).
 * Bounded four ways: a rate (frames per minute), a count and a size on disk (the oldest go first),
 * and the request path, which never waits on it (frames are queued, written one at a time).
 *
 * Frames are re-encoded in their own format with EXIF orientation applied and no metadata (vehicles'
 * uploads may carry GPS and camera serials), written under a temporary name and renamed, so a
 * trainer reading the folder never sees half a file. Layout: DIR/<time>_d<drift>_<version>_<n>.<ext>
 * and DIR/capture.jsonl, one line {file, drift, time, version, source} per frame still on disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
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
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

export interface CaptureStats { kept: number; skippedRate: number; failed: number; onDisk: number; bytesOnDisk: number }

const FRAME = /^\d{8}T\d{9}Z_d[\d.]+_[\w-]+(?:_\d+)?\.(jpg|png|webp)$/;
const INDEX = 'capture.jsonl';

interface Kept { name: string; bytes: number; line: string }

export class FrameCapture {
  readonly dir: string;
  readonly minDrift: number;
  private readonly max: number;
  private readonly maxBytes: number;
  private readonly perMinute: number;
  private readonly kept: Kept[];
  private recent: number[] = [];
  private chain: Promise<void> = Promise.resolve();
  private seq = 0;
  readonly stats: CaptureStats = { kept: 0, skippedRate: 0, failed: 0, onDisk: 0, bytesOnDisk: 0 };

  constructor(private readonly o: CaptureOptions) {
    this.dir = path.resolve(o.dir);
    this.minDrift = o.minDrift ?? 1;
    this.max = o.max ?? 2000;
    this.maxBytes = o.maxBytes ?? 2 * 2 ** 30;
    this.perMinute = o.perMinute ?? 60;
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
    const now = Date.now();
    this.recent = this.recent.filter((t) => now - t < 60_000);
    if (this.recent.length >= this.perMinute) { this.stats.skippedRate++; return false; }
    this.recent.push(now);
    const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace('.', '');
    const name = `${stamp}_d${drift.toFixed(3)}_${meta.version.replace(/[^\w-]/g, '')}_${this.seq++ % 1000}.${ext}`;
    const line = JSON.stringify({ file: name, drift, time: new Date(now).toISOString(), version: meta.version, source: meta.source });
    this.chain = this.chain.then(async () => {
      const tmp = path.join(this.dir, `.${name}.tmp`);
      try {
        // Re-encoded in sharp's threads: orientation applied, metadata dropped.
        const img = sharp(bytes, { limitInputPixels: this.o.maxPixels ?? 4096 * 2160, failOn: 'warning' }).rotate();
        const clean = await (ext === 'jpg' ? img.jpeg({ quality: 92 }) : ext === 'png' ? img.png() : img.webp({ quality: 92 })).toBuffer();
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
      }
      this.count();
    });
    return true;
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
