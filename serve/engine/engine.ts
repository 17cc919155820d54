/**
 * The inference engine: a pool of worker processes (worker.ts), each with one loaded model, behind a
 * bounded queue with deadlines and dynamic micro-batching. The HTTP server and streams/ both submit
 * frames here; nothing in this module blocks the event loop.
 *
 * - Bounded: submit() rejects at once (EngineError 'queue-full') when `maxQueue` frames wait.
 * - Deadlines: a job past its deadline is dropped from the queue, never run ('deadline'); one
 *   already running is answered 'deadline' at that moment and its result discarded.
 * - Abort: a caller's AbortSignal (a client that went away) frees its queue slot.
 * - Micro-batching, where a worker's model takes several frames per call (tfjs): an idle worker
 *   waits up to `maxWaitMs` for `maxBatch` frames, then runs what it has. TFLite files have batch 1.
 * - Faults: a worker that exits or hangs past `hangMs` is killed and replaced (with backoff); the
 *   frames it held fail with 'worker-lost', never hang.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ModelFile } from '../../core/bundle';
import { readManifest, type Manifest } from '../../core/bundle';
import { UserError } from '../../core/errors';
import { selectModel, type OpenOptions } from '../../runtime/bundle';
import type { FromWorker, ToWorker } from './protocol';

export type EngineErrorCode = 'queue-full' | 'deadline' | 'worker-lost' | 'closed' | 'aborted' | 'unavailable' | 'bad-frame';

export class EngineError extends Error {
  constructor(readonly code: EngineErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
  }
}

export interface EngineOptions extends OpenOptions {
  bundle: string;
  /** Worker processes (default: one per core). */
  workers?: number;
  /** Frames that may wait for a worker (default 64). */
  maxQueue?: number;
  /**
   * Frames per model call where the model batches (tfjs). Default 1: on the wasm backend a batch of
   * 4 ran at 18 frames/s against 30 one at a time (bench:serve); raise it where tfjs-node-gpu batches.
   */
  maxBatch?: number;
  /** How long an idle worker waits to fill a batch (default 5 ms). */
  maxWaitMs?: number;
  /** A worker busy this long on one call is killed and replaced (default 10 s or 20x its warm-up, whichever is longer). */
  hangMs?: number;
  /** How long start() waits for every worker to load and warm up (default 120 s). */
  startTimeoutMs?: number;
  log?: (level: 'info' | 'warn' | 'error', msg: string, extra?: Record<string, unknown>) => void;
}

export interface EngineResult {
  labels: Uint8Array;
  drift: number | null;
  /** Milliseconds in the queue, and of the model call (the whole batch's). */
  queueMs: number;
  inferMs: number;
  batch: number;
}

interface Job {
  id: number;
  frame: Uint8Array;
  enqueued: number;
  deadline: number;
  resolve: (r: EngineResult) => void;
  reject: (e: EngineError) => void;
  settled: boolean;
  timer?: NodeJS.Timeout;
  dispatched?: number;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface Worker {
  child: ChildProcess;
  ready: boolean;
  maxBatch: number;
  warmupMs: number;
  busy?: { id: number; jobs: Job[]; watchdog: NodeJS.Timeout };
  exited: boolean;
}

let nextId = 1;

export class Engine extends EventEmitter {
  readonly manifest: Manifest;
  readonly file: ModelFile;
  private readonly workers: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly size: number;
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private batchTimer?: NodeJS.Timeout;
  private closing = false;
  private closed = false;
  private crashes = 0;
  /** Set once start() resolved: from then on every worker that exits is replaced. */
  private supervising = false;
  private inferEwma = 0;
  private readonly log: NonNullable<EngineOptions['log']>;

  private constructor(private readonly o: EngineOptions) {
    super();
    this.manifest = readManifest(o.bundle);
    // Chosen once here, so every worker loads the same file.
    this.file = selectModel(this.manifest, o);
    this.size = Math.max(1, o.workers ?? os.availableParallelism());
    this.maxQueue = Math.max(0, o.maxQueue ?? 64);
    this.maxBatch = Math.max(1, o.maxBatch ?? 1);
    this.maxWaitMs = Math.max(0, o.maxWaitMs ?? 5);
    this.log = o.log ?? (() => undefined);
  }

  /** Creates and starts an engine (create + start). */
  static async start(o: EngineOptions): Promise<Engine> {
    const e = Engine.create(o);
    await e.start();
    return e;
  }

  /** An engine that knows its bundle and model file but runs no worker yet (start() does). */
  static create(o: EngineOptions): Engine { return new Engine(o); }

  /** Starts the pool; resolves when every worker has loaded the model and run one frame. */
  async start(): Promise<void> {
    try {
      await Promise.all(Array.from({ length: this.size }, () => this.spawn(this.o.startTimeoutMs ?? 120_000)));
    } catch (err) {
      await this.close(1000);
      throw err;
    }
    this.supervising = true;
  }

  get runtime(): string { return this.file.format === 'tflite' ? 'tflite' : 'tfjs'; }
  /** Frames per model call this engine forms (1 for TFLite files). */
  get batchLimit(): number {
    const w = this.workers.find((x) => x.ready);
    return Math.min(this.maxBatch, w && w.maxBatch > 0 ? w.maxBatch : this.maxBatch);
  }
  /** Ready once start() finished (every worker warmed up), while one worker is, and not closing. */
  get ready(): boolean { return this.supervising && !this.closing && this.workers.some((w) => w.ready); }
  stats(): { queued: number; inFlight: number; workers: number; readyWorkers: number; capacity: number } {
    return {
      queued: this.queue.length,
      inFlight: this.workers.reduce((a, w) => a + (w.busy?.jobs.length ?? 0), 0),
      workers: this.workers.length,
      readyWorkers: this.workers.filter((w) => w.ready).length,
      capacity: this.maxQueue,
    };
  }
  /** Whether a frame submitted now would be refused as queue-full. */
  saturated(): boolean { return this.queue.length >= this.maxQueue && !this.idleWorker(); }
  /** Worker process ids (for process metrics, and tests that kill one). */
  pids(): number[] { return this.workers.flatMap((w) => (w.child.pid && !w.exited ? [w.child.pid] : [])); }
  /** Seconds a client should wait before retrying when the queue is full: the queue's drain time. */
  retryAfterSeconds(): number {
    const perFrame = this.inferEwma || 100;
    return Math.max(1, Math.ceil((this.queue.length * perFrame) / Math.max(1, this.workers.length) / 1000));
  }

  /**
   * Queues one frame (bytes at the bundle's input size). `deadline`: epoch ms after which the frame
   * is not worth computing. Rejects with EngineError.
   */
  submit(frame: Uint8Array, opts: { deadline?: number; signal?: AbortSignal } = {}): Promise<EngineResult> {
    const { height, width, channels } = this.manifest.input;
    if (this.closing) return Promise.reject(new EngineError('closed', 'The server is shutting down.'));
    if (frame.length !== height * width * channels) return Promise.reject(new EngineError('bad-frame', `A frame of ${frame.length} bytes; the model takes ${height}x${width}x${channels}.`));
    if (!this.workers.some((w) => w.ready)) return Promise.reject(new EngineError('unavailable', this.supervising ? 'No inference worker is running (restarting after a fault).' : 'The model is still loading.'));
    if (this.saturated()) return Promise.reject(new EngineError('queue-full', `The queue is full (${this.maxQueue} frames wait).`));
    if (opts.signal?.aborted) return Promise.reject(new EngineError('aborted', 'The client went away.'));
    return new Promise<EngineResult>((resolve, reject) => {
      const now = Date.now();
      const job: Job = { id: nextId++, frame, enqueued: now, deadline: opts.deadline ?? Infinity, resolve, reject, settled: false, signal: opts.signal };
      if (Number.isFinite(job.deadline)) job.timer = setTimeout(() => this.expire(job), Math.max(0, job.deadline - now));
      if (opts.signal) {
        job.onAbort = () => this.settle(job, new EngineError('aborted', 'The client went away.'));
        opts.signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.emit('depth', this.queue.length);
      this.pump();
    });
  }

  /**
   * Stops taking frames, lets queued and running ones finish (up to `timeoutMs`), then stops the
   * workers (killing any that do not exit). Frames still waiting at the timeout fail 'closed'.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    const until = Date.now() + timeoutMs;
    while ((this.queue.length || this.workers.some((w) => w.busy)) && Date.now() < until && this.workers.some((w) => !w.exited)) await sleep(10);
    for (const j of [...this.queue]) this.settle(j, new EngineError('closed', 'The server shut down before this frame ran.'));
    for (const w of this.workers) for (const j of w.busy?.jobs ?? []) this.settle(j, new EngineError('closed', 'The server shut down before this frame finished.'));
    clearTimeout(this.batchTimer);
    this.closed = true;
    await Promise.all(this.workers.map((w) => this.stopWorker(w)));
  }

  private idleWorker(): Worker | undefined { return this.workers.find((w) => w.ready && !w.busy); }

  private spawn(startTimeoutMs: number): Promise<void> {
    const isTs = __filename.endsWith('.ts');
    const child = fork(path.join(__dirname, isTs ? 'worker.ts' : 'worker.js'), [], {
      serialization: 'advanced',
      execArgv: isTs ? ['--require', require.resolve('tsx/cjs')] : [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const w: Worker = { child, ready: false, maxBatch: 1, warmupMs: 0, exited: false };
    // A send to a worker that is already exiting reports 'Channel closed' here; its 'exit' handler
    // does the accounting, so this must only not be an unhandled 'error' event.
    child.on('error', (e) => this.log('warn', 'inference worker channel error', { pid: child.pid, error: e.message }));
    this.workers.push(w);
    return new Promise<void>((resolve, reject) => {
      let started = false;
      const startTimer = setTimeout(() => { if (!started) { started = true; child.kill('SIGKILL'); reject(new Error(`An inference worker did not load the model within ${startTimeoutMs} ms.`)); } }, startTimeoutMs);
      child.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          w.ready = true;
          w.maxBatch = m.maxBatch;
          w.warmupMs = m.warmupMs;
          this.crashes = 0;
          this.log('info', 'inference worker ready', { pid: m.pid, file: m.file.file, runtime: m.runtime, warmupMs: Math.round(m.warmupMs) });
          if (!started) { started = true; clearTimeout(startTimer); resolve(); }
          this.pump();
        } else if (m.type === 'result') this.finish(w, m.id, (jobs, inferMs) => jobs.forEach((j, i) => this.settle(j, undefined, { labels: m.labels[i], drift: m.drift[i], queueMs: (j.dispatched ?? j.enqueued) - j.enqueued, inferMs, batch: jobs.length })), m.inferMs);
        else if (m.type === 'error') {
          if (m.id === undefined) {
            if (!started) { started = true; clearTimeout(startTimer); reject(m.user ? new UserError(m.message) : new Error(`An inference worker failed to start: ${m.message}`)); }
            child.kill('SIGKILL');
          } else this.finish(w, m.id, (jobs) => jobs.forEach((j) => this.settle(j, new EngineError('worker-lost', `Inference failed: ${m.message}`))));
        }
      });
      child.on('exit', (code, signal) => {
        w.exited = true;
        const wasReady = w.ready;
        w.ready = false;
        const lost = w.busy?.jobs ?? [];
        if (w.busy) clearTimeout(w.busy.watchdog);
        w.busy = undefined;
        for (const j of lost) this.settle(j, new EngineError('worker-lost', `The inference worker stopped (${signal ?? `exit ${code}`}) while running this frame.`));
        this.workers.splice(this.workers.indexOf(w), 1);
        if (!started) { started = true; clearTimeout(startTimer); reject(new Error(`An inference worker exited (${signal ?? `exit ${code}`}) before it was ready.`)); }
        // Before start() resolved, start() itself fails; after it, the pool keeps its size: every
        // exit (a crash, a hang killed, a replacement that failed to load) schedules a replacement.
        if (this.closing || !this.supervising) return;
        this.log('error', 'inference worker exited; replacing it', { pid: child.pid, code, signal, lost: lost.length, wasReady });
        this.emit('worker-exit', { code, signal });
        // Jobs waiting with no worker left fail now rather than at their deadline.
        if (!this.workers.some((x) => x.ready)) for (const j of [...this.queue]) this.settle(j, new EngineError('unavailable', 'No inference worker is running (restarting after a fault).'));
        const backoff = Math.min(30_000, 250 * 2 ** this.crashes++);
        setTimeout(() => {
          // A replacement that fails exits too, and its own exit schedules the next try.
          if (!this.closing) this.spawn(startTimeoutMs).catch((e) => { if (!this.closing) this.log('error', 'replacement worker failed to start', { error: (e as Error).message }); });
        }, backoff).unref();
      });
      child.send({ type: 'open', dir: this.o.bundle, options: { runtime: this.runtime as OpenOptions['runtime'], precision: this.file.precision, threads: this.o.threads } } satisfies ToWorker);
    });
  }

  private async stopWorker(w: Worker): Promise<void> {
    if (w.exited) return;
    const exited = new Promise<void>((r) => w.child.once('exit', () => r()));
    try { w.child.send({ type: 'exit' } satisfies ToWorker, () => undefined); } catch { /* channel already closed */ }
    const t = setTimeout(() => w.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }

  private finish(w: Worker, id: number, done: (jobs: Job[], inferMs: number) => void, inferMs = 0): void {
    if (!w.busy || w.busy.id !== id) return;
    clearTimeout(w.busy.watchdog);
    const jobs = w.busy.jobs;
    w.busy = undefined;
    if (inferMs) {
      const perFrame = inferMs / jobs.length;
      this.inferEwma = this.inferEwma ? 0.8 * this.inferEwma + 0.2 * perFrame : perFrame;
      this.emit('batch', jobs.length, inferMs);
    }
    done(jobs, inferMs);
    this.pump();
  }

  private expire(job: Job): void {
    const queued = this.queue.includes(job);
    this.settle(job, new EngineError('deadline', queued ? 'The deadline passed while the frame waited in the queue; it was not run.' : 'The deadline passed while the frame was computed.'));
    if (queued) this.emit('dropped', 'deadline');
  }

  private settle(job: Job, err?: EngineError, result?: EngineResult): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort);
    const i = this.queue.indexOf(job);
    if (i >= 0) { this.queue.splice(i, 1); this.emit('depth', this.queue.length); }
    if (err) job.reject(err); else job.resolve(result!);
  }

  /** Hands queued frames to idle workers, waiting briefly to fill a batch where the model batches. */
  private pump(): void {
    if (this.closed) return;
    for (;;) {
      const w = this.idleWorker();
      if (!w || this.queue.length === 0) return;
      const cap = Math.min(this.maxBatch, w.maxBatch > 0 ? w.maxBatch : this.maxBatch);
      const waited = Date.now() - this.queue[0].enqueued;
      if (cap > 1 && this.queue.length < cap && waited < this.maxWaitMs && !this.closing) {
        if (!this.batchTimer) this.batchTimer = setTimeout(() => { this.batchTimer = undefined; this.pump(); }, this.maxWaitMs - waited);
        return;
      }
      clearTimeout(this.batchTimer);
      this.batchTimer = undefined;
      // A frame whose deadline has passed (its timer not yet run) is dropped here, never sent.
      const now0 = Date.now();
      for (const j of this.queue.filter((q) => q.deadline <= now0)) this.expire(j);
      if (this.queue.length === 0) return;
      const jobs = this.queue.splice(0, cap);
      this.emit('depth', this.queue.length);
      const now = Date.now();
      jobs.forEach((j) => { j.dispatched = now; });
      const id = nextId++;
      // Long enough for any honest frame (20x the warm-up), short enough that a hung worker does not
      // hold its slot long after its callers were answered.
      const hangMs = this.o.hangMs ?? Math.max(10_000, 20 * w.warmupMs * jobs.length);
      const watchdog = setTimeout(() => {
        this.log('error', 'inference worker hung; killing it', { pid: w.child.pid, hangMs });
        w.child.kill('SIGKILL');
      }, hangMs);
      w.busy = { id, jobs, watchdog };
      try {
        w.child.send({ type: 'infer', id, frames: jobs.map((j) => j.frame) } satisfies ToWorker);
      } catch {
        w.child.kill('SIGKILL');  // its exit handler fails the jobs and replaces it
      }
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
