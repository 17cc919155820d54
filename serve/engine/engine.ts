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
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ModelFile } from '../../core/bundle';
import { readManifest, type Manifest } from '../../core/bundle';
import { UserError } from '../../core/errors';
import { chooseModel, type OpenOptions } from '../../runtime/bundle';
import { ImageError } from '../../runtime/image';
import type { EncodedImage, FromWorker, ToWorker } from './protocol';

export type { EncodedImage } from './protocol';

export type EngineErrorCode = 'queue-full' | 'deadline' | 'worker-lost' | 'closed' | 'aborted' | 'unavailable' | 'bad-frame' | 'reload-busy' | 'reload-failed';

export class EngineError extends Error {
  constructor(readonly code: EngineErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
  }
}

export interface SubmitOptions { deadline?: number; signal?: AbortSignal }

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

interface ResultMeta {
  drift: number | null;
  /**
   * Milliseconds in the queue, of decoding in the worker (encoded images only), of the model call,
   * and of encoding PNG answers (png only): each the whole worker call's, shared by a batch's frames.
   */
  queueMs: number;
  decodeMs?: number;
  inferMs: number;
  encodeMs?: number;
  batch: number;
  /** The model that computed it (ModelVersion.version). */
  version: string;
}

/** A frame's labels at the input size. */
export type LabelsResult = ResultMeta & { labels: Uint8Array; png?: undefined };
/**
 * Or, for an encoded image at the input size that asked for it (EncodedImage.answer 'png'), the
 * palette PNG of its labels instead of the labels: ~20 KB back from the worker, not 512 KB.
 */
export type PngResult = ResultMeta & { png: Uint8Array; labels?: undefined };
export type EngineResult = LabelsResult | PngResult;

/**
 * One loaded bundle: its manifest, the model file chosen from it and why. `version` names the exact
 * bytes that compute (the chosen file's sha256, shortened), so responses and metrics can say which
 * model answered across reloads.
 */
export interface ModelVersion {
  version: string;
  /** The bundle directory as given, and where it pointed when loaded (a symlink rollout changes the first). */
  dir: string;
  realDir: string;
  manifest: Manifest;
  file: ModelFile;
  why: string;
  loadedAt: string;
}

interface Job {
  id: number;
  frame: Uint8Array | EncodedImage;
  /** Runs on the model that was active when it was submitted, even if a reload happens meanwhile. */
  gen: ModelVersion;
  enqueued: number;
  deadline: number;
  resolve: (r: EngineResult) => void;
  reject: (e: EngineError | ImageError) => void;
  settled: boolean;
  timer?: NodeJS.Timeout;
  dispatched?: number;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface Worker {
  gen: ModelVersion;
  child: ChildProcess;
  ready: boolean;
  maxBatch: number;
  warmupMs: number;
  busy?: { id: number; jobs: Job[]; watchdog: NodeJS.Timeout };
  exited: boolean;
}

let nextId = 1;

export class Engine extends EventEmitter {
  private active: ModelVersion;
  private previousVersion?: ModelVersion;
  private reloading = false;
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
    this.active = this.load(o.bundle);
    this.size = Math.max(1, o.workers ?? os.availableParallelism());
    this.maxQueue = Math.max(0, o.maxQueue ?? 64);
    this.maxBatch = Math.max(1, o.maxBatch ?? 1);
    this.maxWaitMs = Math.max(0, o.maxWaitMs ?? 5);
    this.log = o.log ?? (() => undefined);
  }

  /** The active model's bundle manifest and file (every frame submitted now runs on it). */
  get manifest(): Manifest { return this.active.manifest; }
  get file(): ModelFile { return this.active.file; }
  get model(): ModelVersion { return this.active; }
  /** The model served before the last reload (a rollback goes back to it). */
  get previous(): ModelVersion | undefined { return this.previousVersion; }

  /** Reads a bundle and chooses its model once, so every worker of it loads the same file. */
  private load(dir: string): ModelVersion {
    const manifest = readManifest(dir);
    const { file, why } = chooseModel(manifest, this.o);
    return { version: file.sha256.slice(0, 12), dir, realDir: fs.realpathSync(dir), manifest, file, why, loadedAt: new Date().toISOString() };
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
      await Promise.all(Array.from({ length: this.size }, () => this.spawn(this.active, this.o.startTimeoutMs ?? 120_000)));
    } catch (err) {
      await this.close(1000);
      throw err;
    }
    this.supervising = true;
  }

  get runtime(): string { return runtimeName(this.file); }
  /** Frames per model call this engine forms (1 for TFLite files). */
  get batchLimit(): number {
    const w = this.workers.find((x) => x.ready && x.gen === this.active);
    return Math.min(this.maxBatch, w && w.maxBatch > 0 ? w.maxBatch : this.maxBatch);
  }
  /** Ready once start() finished (every worker warmed up), while one worker is, and not closing. */
  get ready(): boolean { return this.supervising && !this.closing && this.activeWorkers().some((w) => w.ready); }
  stats(): { queued: number; inFlight: number; workers: number; readyWorkers: number; capacity: number } {
    return {
      queued: this.queue.length,
      inFlight: this.workers.reduce((a, w) => a + (w.busy?.jobs.length ?? 0), 0),
      workers: this.activeWorkers().length,
      readyWorkers: this.activeWorkers().filter((w) => w.ready).length,
      capacity: this.maxQueue,
    };
  }
  /** Whether a frame submitted now would be refused as queue-full. */
  saturated(): boolean { return this.queue.length >= this.maxQueue && !this.idleWorker(this.active); }
  /** Worker process ids (for process metrics, and tests that kill one). */
  pids(): number[] { return this.workers.flatMap((w) => (w.child.pid && !w.exited ? [w.child.pid] : [])); }
  /** Seconds a client should wait before retrying when the queue is full: the queue's drain time. */
  retryAfterSeconds(): number {
    const perFrame = this.inferEwma || 100;
    return Math.max(1, Math.ceil((this.queue.length * perFrame) / Math.max(1, this.activeWorkers().length) / 1000));
  }

  /**
   * Queues one frame: bytes at the bundle's input size, or an encoded image (JPEG, PNG, WebP) that
   * the worker decodes to it (labels at the input size either way). `deadline`: epoch ms after which
   * the frame is not worth computing. An encoded image may ask for its palette PNG too (answer 'png',
   * given where it is at the input size). Rejects with EngineError, or ImageError where an encoded
   * image does not decode (the caller's input: 400, 413 or 415).
   */
  submit(frame: Uint8Array | (EncodedImage & { answer?: undefined }), opts?: SubmitOptions): Promise<LabelsResult>;
  submit(frame: EncodedImage, opts?: SubmitOptions): Promise<EngineResult>;
  submit(frame: Uint8Array | EncodedImage, opts: SubmitOptions = {}): Promise<EngineResult> {
    const { height, width, channels } = this.manifest.input;
    if (this.closing) return Promise.reject(new EngineError('closed', 'The server is shutting down.'));
    if (!(frame instanceof Uint8Array) && !(Number.isInteger(frame.maxPixels) && frame.maxPixels > 0)) return Promise.reject(new RangeError(`maxPixels must be a positive integer (got ${frame.maxPixels})`));
    if (frame instanceof Uint8Array && frame.length !== height * width * channels) return Promise.reject(new EngineError('bad-frame', `A frame of ${frame.length} bytes; the model takes ${height}x${width}x${channels}.`));
    if (!this.activeWorkers().some((w) => w.ready)) return Promise.reject(new EngineError('unavailable', this.supervising ? 'No inference worker is running (restarting after a fault).' : 'The model is still loading.'));
    if (this.saturated()) return Promise.reject(new EngineError('queue-full', `The queue is full (${this.maxQueue} frames wait).`));
    if (opts.signal?.aborted) return Promise.reject(new EngineError('aborted', 'The client went away.'));
    return new Promise<EngineResult>((resolve, reject) => {
      const now = Date.now();
      const job: Job = { id: nextId++, frame, gen: this.active, enqueued: now, deadline: opts.deadline ?? Infinity, resolve, reject, settled: false, signal: opts.signal };
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

  private activeWorkers(): Worker[] { return this.workers.filter((w) => w.gen === this.active); }
  private idleWorker(gen: ModelVersion): Worker | undefined { return this.workers.find((w) => w.gen === gen && w.ready && !w.busy); }

  /**
   * Loads `dir` (default: the --bundle path again, e.g. after a symlink switch) in a new pool of
   * workers, warms it, then makes it the active model at once. Frames submitted before the switch
   * finish on the old pool, which then stops. A bundle that fails to load or warm up leaves the
   * active one serving, and the error says why. The input and classes must stay the same: callers
   * (streams, video jobs) resize frames and colour labels by them.
   */
  async reload(dir: string = this.o.bundle): Promise<{ active: ModelVersion; previous: ModelVersion }> {
    if (this.closing) throw new EngineError('closed', 'The server is shutting down.');
    if (this.reloading) throw new EngineError('reload-busy', 'A reload is already in progress.');
    this.reloading = true;
    try {
      return await this.switchTo(dir);
    } catch (e) {
      if (e instanceof EngineError && e.code === 'reload-failed') {
        this.log('error', 'reload failed; the served model is unchanged', { dir, error: e.message });
        this.emit('reload-failed', e);
      }
      throw e;
    } finally {
      this.reloading = false;
    }
  }

  private async switchTo(dir: string): Promise<{ active: ModelVersion; previous: ModelVersion }> {
    {
      let next: ModelVersion;
      try { next = this.load(dir); } catch (e) { throw new EngineError('reload-failed', `The bundle ${dir} cannot be read: ${(e as Error).message}`); }
      const contract = (m: Manifest) => JSON.stringify({ input: m.input, kind: m.kind, classes: m.classes });
      if (contract(next.manifest) !== contract(this.active.manifest)) {
        throw new EngineError('reload-failed', `The bundle ${dir} has another input size or class list than the one served (${this.active.manifest.input.height}x${this.active.manifest.input.width}, ${this.active.manifest.classes.length} classes); a reload keeps the contract clients and streams rely on.`);
      }
      try {
        await Promise.all(Array.from({ length: this.size }, () => this.spawn(next, this.o.startTimeoutMs ?? 120_000)));
      } catch (e) {
        await Promise.all(this.workers.filter((w) => w.gen === next).map((w) => this.stopWorker(w)));
        throw new EngineError('reload-failed', `The bundle ${dir} did not load: ${(e as Error).message}`);
      }
      if (this.closing) {
        await Promise.all(this.workers.filter((w) => w.gen === next).map((w) => this.stopWorker(w)));
        throw new EngineError('closed', 'The server is shutting down.');
      }
      const old = this.active;
      this.active = next;
      this.previousVersion = old;
      // A new worker that died while its siblings warmed up was not replaced (its model was not yet
      // active): top the pool up to its size.
      for (let i = this.activeWorkers().length; i < this.size; i++) this.spawn(next, this.o.startTimeoutMs ?? 120_000).catch((e) => this.log('error', 'replacement worker failed to start', { error: (e as Error).message }));
      this.log('info', 'model reloaded', { version: next.version, file: next.file.file, dir: next.realDir, previous: old.version });
      this.emit('reload', next, old);
      void this.retire(old);
      this.pump();
      return { active: next, previous: old };
    }
  }

  /** Stops an old pool once the frames submitted to it are done (bounded: its jobs have deadlines). */
  private async retire(gen: ModelVersion): Promise<void> {
    const until = Date.now() + 120_000;
    const pending = () => this.queue.some((j) => j.gen === gen) || this.workers.some((w) => w.gen === gen && w.busy);
    while (pending() && Date.now() < until && this.workers.some((w) => w.gen === gen && !w.exited)) await sleep(10);
    for (const j of this.queue.filter((q) => q.gen === gen)) this.settle(j, new EngineError('worker-lost', 'The model this frame was queued for was replaced before it ran.'));
    await Promise.all(this.workers.filter((w) => w.gen === gen).map((w) => this.stopWorker(w)));
  }

  private spawn(gen: ModelVersion, startTimeoutMs: number): Promise<void> {
    const isTs = __filename.endsWith('.ts');
    const child = fork(path.join(__dirname, isTs ? 'worker.ts' : 'worker.js'), [], {
      serialization: 'advanced',
      execArgv: isTs ? ['--require', require.resolve('tsx/cjs')] : [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const w: Worker = { gen, child, ready: false, maxBatch: 1, warmupMs: 0, exited: false };
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
          this.log('info', 'inference worker ready', { pid: m.pid, file: m.file.file, version: gen.version, runtime: m.runtime, warmupMs: Math.round(m.warmupMs) });
          if (!started) { started = true; clearTimeout(startTimer); resolve(); }
          this.pump();
        } else if (m.type === 'result') {
          // The frames the model computed (the others failed to decode): each has its labels or its PNG.
          const ran = m.labels.filter((l, i) => l || m.png?.[i]).length;
          this.finish(w, m.id, (jobs) => jobs.forEach((j, i) => {
            const bad = m.failed?.[i], labels = m.labels[i], png = m.png?.[i];
            const meta: ResultMeta = { drift: m.drift[i], queueMs: (j.dispatched ?? j.enqueued) - j.enqueued, ...(m.decodeMs !== undefined && { decodeMs: m.decodeMs }), inferMs: m.inferMs, batch: ran, version: gen.version };
            if (bad) this.settle(j, new ImageError(bad.status, bad.message, bad.hint));
            else if (png) this.settle(j, undefined, { ...meta, png, encodeMs: m.encodeMs ?? 0 });
            else if (labels) this.settle(j, undefined, { ...meta, labels });
            else this.settle(j, new EngineError('worker-lost', 'The inference worker answered without labels for this frame.'));
          }), ran ? (m.decodeMs ?? 0) + m.inferMs + (m.encodeMs ?? 0) : 0, ran);
        }
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
        if (this.closing || !this.supervising || !wasReady && gen !== this.active) return;
        // Jobs waiting with no worker of their model left fail now rather than at their deadline.
        if (!this.workers.some((x) => x.ready && x.gen === gen)) for (const j of this.queue.filter((q) => q.gen === gen)) this.settle(j, new EngineError('unavailable', 'No inference worker is running (restarting after a fault).'));
        // Only the active model's pool keeps its size; an old one being retired shrinks.
        if (gen !== this.active) return;
        this.log('error', 'inference worker exited; replacing it', { pid: child.pid, code, signal, lost: lost.length, wasReady });
        this.emit('worker-exit', { code, signal });
        const backoff = Math.min(30_000, 250 * 2 ** this.crashes++);
        setTimeout(() => {
          // A replacement that fails exits too, and its own exit schedules the next try.
          if (!this.closing && gen === this.active) this.spawn(gen, startTimeoutMs).catch((e) => { if (!this.closing) this.log('error', 'replacement worker failed to start', { error: (e as Error).message }); });
        }, backoff).unref();
      });
      // The directory the model was loaded from, not the --bundle symlink: after a rollout switched the
      // symlink (before SIGHUP), a replacement worker must still load the model being served.
      child.send({ type: 'open', dir: gen.realDir, options: { runtime: runtimeName(gen.file) as OpenOptions['runtime'], precision: gen.file.precision, threads: this.o.threads }, expect: { file: gen.file.file, sha256: gen.file.sha256 } } satisfies ToWorker);
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

  /** `busyMs`: the worker's time on the call (decoding, the model, PNG answers), over `ran` frames computed (none: not a sample of the drain rate). */
  private finish(w: Worker, id: number, done: (jobs: Job[]) => void, busyMs = 0, ran = 0): void {
    if (!w.busy || w.busy.id !== id) return;
    clearTimeout(w.busy.watchdog);
    const jobs = w.busy.jobs;
    w.busy = undefined;
    if (busyMs && ran) {
      const perFrame = busyMs / ran;
      this.inferEwma = this.inferEwma ? 0.8 * this.inferEwma + 0.2 * perFrame : perFrame;
      this.emit('batch', ran, busyMs);
    }
    done(jobs);
    this.pump();
  }

  private expire(job: Job): void {
    const queued = this.queue.includes(job);
    this.settle(job, new EngineError('deadline', queued ? 'The deadline passed while the frame waited in the queue; it was not run.' : 'The deadline passed while the frame was computed.'));
    if (queued) this.emit('dropped', 'deadline');
  }

  private settle(job: Job, err?: EngineError | ImageError, result?: EngineResult): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    if (job.onAbort) job.signal?.removeEventListener('abort', job.onAbort);
    const i = this.queue.indexOf(job);
    if (i >= 0) { this.queue.splice(i, 1); this.emit('depth', this.queue.length); }
    if (err) job.reject(err); else job.resolve(result!);
  }

  /**
   * Hands queued frames to idle workers of the model each was submitted to, waiting briefly to fill
   * a batch where the model batches.
   */
  private pump(): void {
    if (this.closed) return;
    for (let sent = true; sent;) {
      sent = false;
      for (const w of this.workers) {
        if (!w.ready || w.busy) continue;
        let mine = this.queue.filter((j) => j.gen === w.gen);
        if (mine.length === 0) continue;
        const cap = Math.min(this.maxBatch, w.maxBatch > 0 ? w.maxBatch : this.maxBatch);
        const waited = Date.now() - mine[0].enqueued;
        if (cap > 1 && mine.length < cap && waited < this.maxWaitMs && !this.closing) {
          if (!this.batchTimer) this.batchTimer = setTimeout(() => { this.batchTimer = undefined; this.pump(); }, this.maxWaitMs - waited);
          continue;
        }
        clearTimeout(this.batchTimer);
        this.batchTimer = undefined;
        // A frame whose deadline has passed (its timer not yet run) is dropped here, never sent.
        const now0 = Date.now();
        for (const j of mine.filter((q) => q.deadline <= now0)) this.expire(j);
        mine = this.queue.filter((j) => j.gen === w.gen);
        if (mine.length === 0) continue;
        const jobs = mine.slice(0, cap);
        for (const j of jobs) this.queue.splice(this.queue.indexOf(j), 1);
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
        sent = true;
        try {
          w.child.send({ type: 'infer', id, frames: jobs.map((j) => j.frame) } satisfies ToWorker);
        } catch {
          w.child.kill('SIGKILL');  // its exit handler fails the jobs and replaces it
        }
      }
    }
  }
}

const runtimeName = (f: ModelFile): string => (f.format === 'tflite' ? 'tflite' : 'tfjs');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
