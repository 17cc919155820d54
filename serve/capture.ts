/**
 * Drift-driven capture: frames the model finds unlike its target domain (drift at or above a
 * threshold) are kept on disk, as received, for the next adaptation (`i2i train --from RUN
 * --target-frames DIR`). Bounded three ways: a rate (frames per minute), a count on disk (the oldest
 * go first) and the request path, which never waits on it (writes are queued, one at a time).
 *
 * Layout: DIR/<time>_d<drift>_<version>.<ext> (the upload's own bytes: JPEG, PNG or WebP) and one
 * line per kept frame in DIR/capture.jsonl {file, drift, time, version, source}.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CaptureOptions {
  dir: string;
  /** Keep frames whose drift is at least this (default 1: beyond the calibration frames' 95th percentile). */
  minDrift?: number;
  /** Frames kept on disk at most; the oldest are removed (default 2000). */
  max?: number;
  /** Frames kept per minute at most (default 60). */
  perMinute?: number;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

export interface CaptureStats { kept: number; skippedRate: number; failed: number; onDisk: number }

const FRAME = /^\d{8}T\d{9}Z_d[\d.]+_[\w-]+(?:_\d+)?\.(jpg|png|webp)$/;

export class FrameCapture {
  readonly dir: string;
  readonly minDrift: number;
  private readonly max: number;
  private readonly perMinute: number;
  private readonly files: string[];
  private recent: number[] = [];
  private chain: Promise<void> = Promise.resolve();
  private seq = 0;
  readonly stats: CaptureStats = { kept: 0, skippedRate: 0, failed: 0, onDisk: 0 };

  constructor(private readonly o: CaptureOptions) {
    this.dir = path.resolve(o.dir);
    this.minDrift = o.minDrift ?? 1;
    this.max = o.max ?? 2000;
    this.perMinute = o.perMinute ?? 60;
    fs.mkdirSync(this.dir, { recursive: true });
    // Frames kept by an earlier run count against the bound too (names sort by time).
    this.files = fs.readdirSync(this.dir).filter((f) => FRAME.test(f)).sort();
    this.stats.onDisk = this.files.length;
  }

  /**
   * Offers one frame with its drift; keeps it if it drifted enough and the rate allows. Returns at
   * once: the write happens behind the response.
   */
  offer(bytes: Buffer, drift: number | null, meta: { version: string; source: string }): boolean {
    if (drift === null || drift < this.minDrift) return false;
    const ext = extensionOf(bytes);
    if (!ext) return false;
    const now = Date.now();
    this.recent = this.recent.filter((t) => now - t < 60_000);
    if (this.recent.length >= this.perMinute) { this.stats.skippedRate++; return false; }
    this.recent.push(now);
    const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace('.', '');
    const name = `${stamp}_d${drift.toFixed(3)}_${meta.version.replace(/[^\w-]/g, '')}_${this.seq++ % 1000}.${ext}`;
    const line = JSON.stringify({ file: name, drift, time: new Date(now).toISOString(), version: meta.version, source: meta.source }) + '\n';
    this.chain = this.chain.then(async () => {
      try {
        await fs.promises.writeFile(path.join(this.dir, name), bytes);
        await fs.promises.appendFile(path.join(this.dir, 'capture.jsonl'), line);
        this.files.push(name);
        while (this.files.length > this.max) await fs.promises.rm(path.join(this.dir, this.files.shift()!), { force: true });
        this.stats.kept++;
        this.stats.onDisk = this.files.length;
      } catch (e) {
        this.stats.failed++;
        this.o.log?.('capture write failed', { error: (e as Error).message, dir: this.dir });
      }
    });
    return true;
  }

  /** Resolves once every accepted frame is on disk. */
  flush(): Promise<void> { return this.chain; }
}

/** The extension of an image's own encoding, from its bytes; undefined for anything else. */
function extensionOf(b: Buffer): string | undefined {
  if (b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpg';
  if (b.length > 8 && b.readUInt32BE(0) === 0x89504e47) return 'png';
  if (b.length > 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  return undefined;
}
