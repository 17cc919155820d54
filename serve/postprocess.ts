/**
 * Full-resolution post-processing of /segment off the event loop: the label map resized to the
 * frame (nearest neighbour), class fractions, the palette PNG (deflate) and the overlay blend run
 * in worker threads (plain JS; no model runtime is loaded there). At 4K each is tens of ms of
 * single-threaded work that would otherwise stall every other request on the server.
 */
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';

export type PostFormat = 'png' | 'labels' | 'json' | 'overlay';

export interface PostJob {
  /** Labels at the model's input size, and the frame's size to map them to. */
  labels: Uint8Array; sw: number; sh: number; dw: number; dh: number;
  format: PostFormat;
  palette: [number, number, number][];
  classes: number;
  /** Overlay (format overlay, or json with overlay=1): the frame as RGB bytes at dw x dh, and the opacity. */
  frame?: Uint8Array; alpha?: number;
}

export interface PostResult {
  /** Palette PNG (png, json), raw uint8 labels (labels), or the blended RGB frame (overlay). */
  png?: Uint8Array; labels?: Uint8Array; overlayRgb?: Uint8Array;
  /** Share of each class among labelled pixels (format json only). */
  fractions?: Float64Array;
  /** The thread that did the work (never 0, the main thread). */
  threadId: number;
}

interface Pending { job: PostJob; resolve: (r: PostResult) => void; reject: (e: Error) => void }
interface Slot { worker: Worker; busy?: Pending }

/** A few worker threads with a queue (bounded by the caller's admission: one job per request in progress). */
export class PostProcessor {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private closed = false;

  constructor(private readonly size = 2) {}

  run(job: PostJob): Promise<PostResult> {
    if (this.closed) return Promise.reject(new Error('post-processing is closed'));
    return new Promise<PostResult>((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new Error('post-processing is closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }

  private spawn(): Slot {
    const isTs = __filename.endsWith('.ts');
    const worker = new Worker(path.join(__dirname, isTs ? 'postprocess-worker.ts' : 'postprocess-worker.js'), {
      execArgv: isTs ? ['--require', require.resolve('tsx/cjs')] : [],
    });
    // Never keeps the process alive on its own (the server's close terminates it anyway).
    worker.unref();
    const slot: Slot = { worker };
    worker.on('message', (r: PostResult | { error: string }) => {
      const p = slot.busy;
      slot.busy = undefined;
      if (p) { if ('error' in r) p.reject(new Error(r.error)); else p.resolve(r); }
      this.pump();
    });
    // A thread that dies fails its job and is replaced on the next one.
    const lost = (e: Error) => {
      const p = slot.busy;
      slot.busy = undefined;
      this.slots.splice(this.slots.indexOf(slot), 1);
      p?.reject(e);
      this.pump();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => { if (this.slots.includes(slot)) lost(new Error(`post-processing thread exited (${code})`)); });
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    while (!this.closed && this.queue.length) {
      const slot = this.slots.find((s) => !s.busy) ?? (this.slots.length < this.size ? this.spawn() : undefined);
      if (!slot) return;
      const p = this.queue.shift()!;
      slot.busy = p;
      // Copies, not transfers: the caller's buffers may be views into larger ones (sharp's output).
      slot.worker.postMessage(p.job);
    }
  }
}
