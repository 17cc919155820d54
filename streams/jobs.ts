/**
 * Video jobs in the server's own process (the embedded default of the /videos API): a bounded
 * backlog, a fixed number of jobs at a time, each job a directory under the store with its input,
 * its overlay MP4 and its per-frame JSON lines. Jobs live in memory: a restart forgets them (and a
 * temporary store is deleted on close); the scale-out queue keeps them instead.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { badVideo, JOB_FILES, JobError, newJobId, type JobState, type JobStatus, type VideoJobs, type VideoJobsMetrics, type VideoOutput } from '../core/video-jobs';
import { withDefaults } from '../core/options';
import type { Engine } from '../serve/engine/engine';
import type { CaptureTarget, FrameSink } from '../core/capture';
import { checkPixels, probeVideo } from './ffmpeg';
import { segmentVideo } from './segment-video';

export interface LocalJobsOptions {
  engine: Engine;
  /** Uploads and results (default: a fresh temporary directory, deleted on close). */
  store?: string;
  /** Jobs segmented at once (default 1: one job already keeps every worker busy). */
  concurrency?: number;
  /** Jobs that may wait beyond those running (default 16); more are refused with 503. */
  backlog?: number;
  /** Finished jobs kept with their results (default 100); the oldest finished go first. */
  keep?: number;
  /** Bytes the store may hold (default 20 GiB): finished jobs go, oldest first, to make room for a new
   *  video; one that still does not fit, or a disk with less free space, is refused (503). */
  maxStoreBytes?: number;
  alpha?: number;
  /** Frames larger than this many pixels (width x height) are refused with 400 before decoding (default 4096x2304). */
  maxPixels?: number;
  /** Drift-driven capture: each job's drifted frames, sampled (a FrameSink sampler), go there. */
  capture?: FrameSink;
  log?: (msg: string, extra?: object) => void;
}

interface Job { status: JobStatus; dir: string; input: string; owned: boolean; ac: AbortController; run?: Promise<void> }

export class LocalVideoJobs implements VideoJobs, CaptureTarget {
  readonly uploadDir: string;
  private readonly store: string;
  private readonly temporary: boolean;
  private readonly jobs = new Map<string, Job>();
  private readonly waiting: Job[] = [];
  private running = 0;
  private closed = false;
  private capture?: FrameSink;
  private readonly o: Required<Pick<LocalJobsOptions, 'concurrency' | 'backlog' | 'keep' | 'maxStoreBytes'>> & LocalJobsOptions;

  constructor(o: LocalJobsOptions) {
    this.o = withDefaults({ concurrency: 1, backlog: 16, keep: 100, maxStoreBytes: DEFAULT_STORE_BYTES }, o);
    this.temporary = !o.store;
    this.store = o.store ? path.resolve(o.store) : fs.mkdtempSync(path.join(os.tmpdir(), 'i2i-videos-'));
    this.uploadDir = path.join(this.store, 'uploads');
    fs.mkdirSync(this.uploadDir, { recursive: true });
    this.capture = o.capture;
  }

  /** The server's capture (i2i serve --capture), handed over after the jobs were made; jobs started from then on offer their frames. */
  captureTo(capture: FrameSink): void { this.capture = capture; }

  /** Room for one more: a free slot, or a place in the backlog. */
  accepting(): boolean { return !this.closed && this.running + this.waiting.length < this.o.concurrency + this.o.backlog; }

  async metrics(): Promise<VideoJobsMetrics> {
    const c: Record<JobState, number> = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 };
    for (const j of this.jobs.values()) c[j.status.state]++;
    return { jobs: c };
  }

  retryAfterSeconds(): number {
    // A rough wait: the running jobs' remaining frames at their rate, at least a second.
    const left = [...this.jobs.values()].filter((j) => j.status.state === 'running').map((j) => (j.status.frames.total - j.status.frames.done) / Math.max(j.status.fps, 1));
    return Math.max(1, Math.min(600, Math.ceil(Math.min(...left, 60))));
  }

  async submit(u: { file: string; name: string; bytes: number; owned?: boolean; output?: VideoOutput }): Promise<JobStatus> {
    const owned = u.owned ?? true;
    const discard = () => { if (owned) fs.rmSync(u.file, { force: true }); };
    if (this.closed) { discard(); throw new JobError('closed', 'The server is shutting down.', 'Retry on another instance.'); }
    let info;
    try {
      info = await probeVideo(u.file);
      checkPixels(info, this.o.maxPixels);
    } catch (e) {
      discard();
      throw badVideo(u.name, u.file, e);
    }
    if (!this.accepting()) { discard(); throw new JobError('backlog-full', `${this.waiting.length} video jobs are waiting already.`, 'Retry after the Retry-After seconds.'); }
    try { this.makeRoom(u.bytes); } catch (e) { discard(); throw e; }
    const id = newJobId();
    const dir = path.join(this.store, id);
    fs.mkdirSync(dir, { recursive: true });
    let input = u.file;
    if (owned) { input = path.join(dir, JOB_FILES.input(u.name)); fs.renameSync(u.file, input); }
    const job: Job = {
      dir, input, owned, ac: new AbortController(),
      status: { id, state: 'queued', output: u.output ?? 'overlay', input: { name: u.name, bytes: u.bytes }, frames: { done: 0, total: info.frames }, fps: 0, partial: false, createdAt: new Date().toISOString() },
    };
    this.jobs.set(id, job);
    this.waiting.push(job);
    this.pump();
    return { ...job.status };
  }

  async get(id: string): Promise<JobStatus | undefined> {
    const j = this.jobs.get(id);
    return j && this.snapshot(j);
  }

  private snapshot(j: Job): JobStatus { return { ...j.status, frames: { ...j.status.frames } }; }

  async list(o: { limit: number; after?: string }): Promise<{ jobs: JobStatus[]; next?: string }> {
    const ids = [...this.jobs.keys()].reverse();
    const from = o.after ? ids.indexOf(o.after) + 1 : 0;
    if (o.after && from === 0) throw new JobError('not-found', `No job ${o.after} to page after.`, 'Start again without ?after=.');
    const page = ids.slice(from, from + o.limit);
    return { jobs: page.map((id) => this.snapshot(this.jobs.get(id)!)), next: from + o.limit < ids.length ? page[page.length - 1] : undefined };
  }

  async result(id: string, kind: 'video' | 'stats'): Promise<{ file: string; partial: boolean }> {
    const j = this.jobs.get(id);
    if (!j) throw new JobError('not-found', `No video job ${id}.`, 'GET /videos lists the jobs this server knows (jobs do not survive a restart).');
    const file = path.join(j.dir, kind === 'video' ? JOB_FILES.result : JOB_FILES.stats);
    const s = j.status.state;
    if (s === 'done' || ((s === 'failed' || s === 'cancelled') && j.status.partial && fs.existsSync(file))) return { file, partial: s !== 'done' };
    throw new JobError('not-ready', `Job ${id} is ${s}${j.status.error ? `: ${j.status.error}` : ''}.`, s === 'queued' || s === 'running' ? 'Poll GET /videos/:id until its state is done.' : 'Nothing was segmented; submit the video again.');
  }

  async remove(id: string): Promise<boolean> {
    const j = this.jobs.get(id);
    if (!j) return false;
    this.jobs.delete(id);
    const w = this.waiting.indexOf(j);
    if (w >= 0) this.waiting.splice(w, 1);
    j.ac.abort();
    await j.run;
    fs.rmSync(j.dir, { recursive: true, force: true });
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.waiting.length = 0;
    for (const j of this.jobs.values()) j.ac.abort();
    await Promise.all([...this.jobs.values()].map((j) => j.run));
    if (this.temporary) fs.rmSync(this.store, { recursive: true, force: true });
  }

  private pump(): void {
    while (!this.closed && this.running < this.o.concurrency && this.waiting.length) {
      const j = this.waiting.shift()!;
      this.running++;
      j.run = this.execute(j).finally(() => { this.running--; this.forgetOld(); this.pump(); });
    }
  }

  private async execute(j: Job): Promise<void> {
    const s = j.status;
    s.state = 'running';
    s.startedAt = new Date().toISOString();
    try {
      const r = await segmentVideo({
        engine: this.o.engine, input: j.input, out: path.join(j.dir, JOB_FILES.result), output: s.output, stats: path.join(j.dir, JOB_FILES.stats),
        alpha: this.o.alpha, signal: j.ac.signal, capture: this.capture?.sampler(`video job ${s.id} (${s.input.name})`),
        onProgress: (p) => { s.frames = { done: p.done, total: p.total }; s.fps = p.fps; },
      });
      s.frames = { done: r.frames, total: r.error || j.ac.signal.aborted ? s.frames.total : r.frames };
      s.fps = r.fps;
      s.partial = r.frames > 0 && (Boolean(r.error) || j.ac.signal.aborted);
      s.state = j.ac.signal.aborted ? 'cancelled' : r.error ? 'failed' : 'done';
      if (r.error) s.error = r.error.replace(j.input, s.input.name);
    } catch (e) {
      s.state = 'failed';
      s.error = (e as Error).message.replace(j.input, s.input.name);
    }
    s.finishedAt = new Date().toISOString();
    if (j.owned) fs.rmSync(j.input, { force: true });
    this.o.log?.('video job finished', { id: s.id, state: s.state, frames: s.frames.done, error: s.error });
  }

  /**
   * Room on disk for a video of `bytes`: its input, an output about its size and the stats, a
   * reservation rather than a measurement. Finished jobs go, oldest first, until the store's bound
   * holds; what still does not fit, or does not fit on the disk, is refused.
   */
  private makeRoom(bytes: number): void {
    const need = 3 * bytes;
    const sizes = new Map([...this.jobs.values()].map((j) => [j, dirBytes(j.dir)]));
    let used = [...sizes.values()].reduce((a, b) => a + b, 0);
    for (const j of [...this.jobs.values()].filter((x) => x.status.finishedAt)) {
      if (used + need <= this.o.maxStoreBytes) break;
      this.jobs.delete(j.status.id);
      fs.rmSync(j.dir, { recursive: true, force: true });
      used -= sizes.get(j)!;
      this.o.log?.('video job removed to make room in the store', { id: j.status.id });
    }
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
    if (used + need > this.o.maxStoreBytes) {
      throw new JobError('store-full', `The video store holds ${mib(used)} of queued and running jobs; this video needs about ${mib(need)} more and the bound is ${mib(this.o.maxStoreBytes)}.`,
        'Retry once running jobs finish, or start the server with a larger --video-store-max-bytes.');
    }
    const st = fs.statfsSync(this.store);
    const free = st.bavail * st.bsize;
    if (free < need) {
      throw new JobError('store-full', `The disk of the video store has ${mib(free)} free; this video needs about ${mib(need)}.`, 'Retry later, free disk space, or point --video-store at a larger disk.');
    }
  }

  /** Bounded memory and disk: beyond `keep` finished jobs, the oldest finished are deleted. */
  private forgetOld(): void {
    const finished = [...this.jobs.values()].filter((j) => j.status.finishedAt);
    for (const j of finished.slice(0, Math.max(0, finished.length - this.o.keep))) {
      this.jobs.delete(j.status.id);
      fs.rmSync(j.dir, { recursive: true, force: true });
    }
  }
}

/** 20 GiB: the in-process store's default bound (--video-store-max-bytes). */
export const DEFAULT_STORE_BYTES = 20 * 2 ** 30;

/** Bytes of the files directly in `dir` (a job's input, results and stats). */
function dirBytes(dir: string): number {
  let n = 0;
  for (const f of fs.readdirSync(dir, { withFileTypes: true })) if (f.isFile()) n += fs.statSync(path.join(dir, f.name)).size;
  return n;
}
