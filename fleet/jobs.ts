/**
 * The /videos job API on BullMQ (`i2i serve --redis`): a video is probed and planned here, stored,
 * and queued as a flow (its segments, then their join) for any number of `i2i worker`s. State,
 * progress (the sum of the segments') and errors are read back from the queue, so any server
 * instance answers for any job, and jobs survive a server restart.
 *
 * A video is pinned to the bundle this server serves when it is queued (fleet/queue.ts): after a
 * reload (modelChanged) new videos go to the new bundle's segment queue while the old bundle's
 * workers finish the old ones. A bundle no live server serves, whose workers have all been gone for
 * `retireAfterMs`, has its waiting segments failed with the reason (the videos answer "failed",
 * never "queued" for ever).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { FlowProducer, Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type IORedis from 'ioredis';
import { UserError } from '../core/errors';
import { badVideo, JOB_FILES, JobError, newJobId, type JobState, type JobStatus, type VideoJobs, type VideoJobsMetrics, type VideoOutput } from '../core/video-jobs';
import { checkPixels, probeVideo } from '../streams/ffmpeg';
import { planSegments } from './plan';
import { bundleId } from '../core/bundle';
import { connect, connectProducer, HEARTBEAT_MS, keys, OPEN_SEGMENT_STATES, queueNames, redisNow, whenReady, type JoinData, type JoinResult, type SegmentData, type SegmentResult } from './queue';
import type { ResultStore } from './store';

export interface QueueJobsOptions {
  redis: string;
  queue: string;
  store: ResultStore;
  /** sha256 of the bundle the server serves: every job carries it, and its segments wait on that bundle's queue (modelChanged moves new jobs to another). */
  bundle: string;
  /** Seconds per segment (cut on the next keyframe), default 60. */
  segmentSeconds?: number;
  /** Videos that may wait (their segments not all done) before submit answers 503 (default 1000). */
  backlog?: number;
  /** Attempts of a failing segment (default 3: two retries, exponential backoff from 1 s). */
  attempts?: number;
  /** Frames larger than this many pixels (width x height) are refused with 400 before any worker decodes them (default 4096x2304). */
  maxPixels?: number;
  /** Finished videos kept with their results (default 1000); beyond, the oldest finished are deleted from Redis and the store. */
  keep?: number;
  /**
   * A bundle no live server serves whose workers have all been gone this long (default 5 min) is
   * retired: its waiting segments fail, naming the reason, and so do their videos.
   */
  retireAfterMs?: number;
  /** Heartbeats and checks this often, in whole seconds (default 5 s; workers must use the same). */
  heartbeatMs?: number;
}

/** ioredis's words for a Redis it cannot reach (offline queue off, command timeout, connection lost). */
const REDIS_DOWN = /Stream isn't writeable|Connection is closed|Command timed out|no answer within|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|max retries per request/i;

export class QueueVideoJobs implements VideoJobs {
  readonly uploadDir: string;
  private readonly redis: IORedis;
  private readonly joins: Queue<JoinData, JoinResult>;
  /** Segment queues by bundle, opened as they are needed (this server's, and those of jobs it reads). */
  private readonly segmentQueues = new Map<string, Queue<SegmentData, SegmentResult>>();
  private readonly flows: FlowProducer;
  private closed = false;
  private readonly k: ReturnType<typeof keys>;
  private waiting = 0;
  private refresh?: NodeJS.Timeout;
  /** The bundle new jobs are queued for (the one served now). */
  private bundle: string;
  /** The segments-done counter when this server opened the queue, and its samples over the last minute. */
  private doneAtOpen = 0;
  private doneSamples: { t: number; n: number }[] = [];
  private retiring?: Promise<number>;

  private constructor(private readonly o: QueueJobsOptions) {
    this.uploadDir = o.store.scratch;
    // The request path's client: no offline queue, bounded commands (a Redis outage is a 503, not a hung request).
    this.redis = connectProducer(o.redis);
    const names = queueNames(o.queue);
    this.joins = new Queue(names.joins, { connection: this.redis });
    this.flows = new FlowProducer({ connection: this.redis });
    // While Redis is down each of them reports every reconnect attempt: the routes answer 503 for it instead.
    const quiet = () => undefined;
    this.joins.on('error', quiet); this.flows.on('error', quiet);
    this.k = keys(o.queue);
    this.bundle = o.bundle;
  }

  private segmentsOf(bundle: string): Queue<SegmentData, SegmentResult> {
    let q = this.segmentQueues.get(bundle);
    if (!q) {
      q = new Queue<SegmentData, SegmentResult>(queueNames(this.o.queue).segments(bundle), { connection: this.redis });
      q.on('error', () => undefined);
      this.segmentQueues.set(bundle, q);
    }
    return q;
  }

  /**
   * The server switched models (SIGHUP, POST /v1/model/reload): videos queued from now on are for
   * the bundle in `dir`; those queued before stay with theirs, whose workers finish them.
   */
  modelChanged(dir: string): { bundle: string; previous: string } {
    const previous = this.bundle;
    this.bundle = bundleId(dir);
    void this.heartbeat().catch(() => undefined);
    return { bundle: this.bundle, previous };
  }

  /** This server serves `bundle`: its workers keep taking jobs, and it is not retired. */
  private async heartbeat(): Promise<void> {
    await this.redis.zadd(this.k.served, await redisNow(this.redis), this.bundle);
  }

  static async open(o: QueueJobsOptions): Promise<QueueVideoJobs> {
    const j = new QueueVideoJobs(o);
    try {
      await whenReady(j.redis, 5000);
      await j.redis.ping();
    } catch (e) {
      await j.close();
      throw new UserError(`No Redis answers at ${o.redis}: ${(e as Error).message}.`, 'Start Redis, or pass --redis redis://HOST:PORT (without --redis the server runs video jobs in-process).');
    }
    // Jobs of other bundles may wait on the queue (another server, or this one before a restart with
    // a new bundle): their own workers finish them, or they are retired (retireOrphans).
    await j.heartbeat();
    j.doneAtOpen = Number(await j.redis.get(j.k.segmentsDone) ?? 0);
    await j.count();
    let ticks = 0;
    const beatTicks = Math.max(1, Math.round((o.heartbeatMs ?? HEARTBEAT_MS) / 1000));
    j.refresh = setInterval(() => {
      void j.count().catch(() => undefined);
      void j.sampleDone().catch(() => undefined);
      if (++ticks % beatTicks === 0) {
        void j.heartbeat().catch(() => undefined);
        void j.retireOrphans().catch(() => undefined);
      }
      if (ticks % 60 === 0) void j.sweep().catch(() => undefined);
    }, 1000);
    j.refresh.unref();
    return j;
  }

  private async sampleDone(): Promise<void> {
    const t = Date.now(), n = Number(await this.redis.get(this.k.segmentsDone) ?? 0);
    this.doneSamples.push({ t, n });
    this.doneSamples = this.doneSamples.filter((x) => t - x.t <= 60_000);
  }

  /**
   * Retires the bundles nobody runs: for each bundle with a segment queue that no live server serves,
   * whose workers (and servers) have all been gone for retireAfterMs, its waiting segments are failed
   * with the reason, which fails their videos (BullMQ's failParentOnFailure). A bundle with no segment
   * left is forgotten. Resolves with the segments failed; one pass at a time.
   */
  retireOrphans(): Promise<number> {
    return this.retiring ??= (async () => {
      const beat = this.o.heartbeatMs ?? HEARTBEAT_MS, after = this.o.retireAfterMs ?? 300_000;
      let failed = 0;
      const now = await redisNow(this.redis);
      for (const b of await this.redis.smembers(this.k.bundles)) {
        if (b === this.bundle) continue;
        const [servedAt, workerAt] = (await Promise.all([this.redis.zscore(this.k.served, b), this.redis.zscore(this.k.workers, b)])).map((x) => Number(x ?? 0));
        if (now - servedAt < 3 * beat) continue;
        const q = this.segmentsOf(b);
        const open = Object.values(await q.getJobCounts(...OPEN_SEGMENT_STATES)).reduce((a, n) => a + n, 0);
        if (open === 0) { await this.redis.srem(this.k.bundles, b); continue; }
        const seen = Math.max(servedAt, workerAt);
        if (now - seen < after) continue;
        const why = `No worker runs bundle ${b.slice(0, 12)}, the model this video was queued for, and no server queues for it any more (its last worker was seen ${workerAt ? `${Math.round((now - workerAt) / 1000)} s ago` : 'never'}; retired after ${Math.round(after / 1000)} s). Submit the video again: it runs on the bundle served now (${this.bundle.slice(0, 12)}).`;
        failed += await this.failOpenSegments(q, why);
      }
      return failed;
    })().finally(() => { this.retiring = undefined; });
  }

  /** Fails every segment of `q` that would still run, as its own worker would (lock, then moveToFailed), so BullMQ fails their videos too. */
  private async failOpenSegments(q: Queue<SegmentData, SegmentResult>, why: string): Promise<number> {
    let n = 0;
    // Retries waiting out their backoff are taken now.
    await q.promoteJobs().catch(() => undefined);
    // A processor-less worker takes segments by hand; it needs a connection of the blocking kind.
    const conn = connect(this.o.redis);
    const hand = new Worker<SegmentData, SegmentResult>(q.name, undefined, { connection: conn, autorun: false });
    hand.on('error', () => undefined);
    try {
      for (let i = 0; i < 100_000; i++) {
        const token = randomUUID();
        const job = await hand.getNextJob(token, { block: false });
        if (!job) break;
        await job.moveToFailed(new UnrecoverableError(why), token, false);
        n++;
      }
      // Taken by a worker that died: its lock has expired, so no one will finish or fail them (nor
      // BullMQ's stalled check, which only that bundle's workers run). Token '0' skips the lock check.
      for (const job of await q.getJobs(['active'])) {
        if (!job.id || await this.redis.exists(`${q.toKey(job.id)}:lock`)) continue;
        try { await job.moveToFailed(new UnrecoverableError(why), '0', false); n++; } catch { /* taken meanwhile */ }
      }
    } finally {
      await hand.close().catch(() => undefined);
      await conn.quit().catch(() => undefined);
    }
    return n;
  }

  private async count(): Promise<void> { this.waiting = (await this.joins.getJobCounts('waiting-children'))['waiting-children'] ?? 0; }

  accepting(): boolean { return !this.closed && this.waiting < (this.o.backlog ?? 1000); }

  /** Bounded Redis and disk: beyond `keep` videos, the oldest finished ones go (queued or running ones stay). */
  async sweep(): Promise<number> {
    const keep = this.o.keep ?? 1000;
    const n = await this.redis.zcard(this.k.index);
    if (n <= keep) return 0;
    let removed = 0;
    for (const id of await this.redis.zrange(this.k.index, '0', String(n - keep - 1))) {
      const s = await this.read(id);
      if (!s) { await this.redis.zrem(this.k.index, id); removed++; }
      else if (s.state === 'done' || s.state === 'failed') { await this.drop(id); removed++; }
    }
    return removed;
  }
  retryAfterSeconds(): number { return 30; }

  async submit(u: { file: string; name: string; bytes: number; owned?: boolean; output?: VideoOutput }): Promise<JobStatus> {
    const owned = u.owned ?? true;
    if (this.closed) { if (owned) fs.rmSync(u.file, { force: true }); throw new JobError('closed', 'The server is shutting down.', 'Retry on another instance.'); }
    let plan;
    try {
      // Refused before anything reads past the header: not a video container, a still image.
      checkPixels(await probeVideo(u.file), this.o.maxPixels);
      plan = await planSegments(u.file, this.o.segmentSeconds ?? 60);
    } catch (e) {
      if (owned) fs.rmSync(u.file, { force: true });
      throw badVideo(u.name, u.file, e);
    }
    const id = newJobId();
    const input = `jobs/${id}/${JOB_FILES.input(u.name)}`;
    // Workers read the input from the store: an upload moves there, a server path is copied in.
    if (!owned) { const tmp = path.join(this.o.store.scratch, `${id}-input`); await fs.promises.copyFile(u.file, tmp); u = { ...u, file: tmp }; }
    await this.o.store.put(input, u.file);
    try {
      return await this.answer('queuing the video', () => this.enqueue(id, input, plan, u));
    } catch (e) {
      // Not queued (Redis down): nothing may keep the stored input. A flow that Redis took after
      // all (an answer later than the wait) fails at its first segment, which finds no input.
      await this.o.store.remove(`jobs/${id}`).catch(() => undefined);
      throw e;
    }
  }

  private async enqueue(id: string, input: string, plan: Awaited<ReturnType<typeof planSegments>>, u: { name: string; bytes: number; output?: VideoOutput }): Promise<JobStatus> {
    const output = u.output ?? 'overlay';
    const createdAt = new Date().toISOString();
    const attempts = this.o.attempts ?? 3, backoff = { type: 'exponential', delay: 1000 };
    const bundle = this.bundle;
    // Known as a bundle with a segment queue before any segment is on it (retireOrphans looks after these).
    await this.redis.sadd(this.k.bundles, bundle);
    await this.flows.add({
      name: 'join', queueName: this.joins.name, data: { job: id, input, name: u.name, bytes: u.bytes, bundle, output, frames: plan.frames, segments: plan.segments, createdAt },
      opts: { jobId: id, attempts, backoff },
      children: plan.segments.map((segment) => ({
        name: 'segment', queueName: this.segmentsOf(bundle).name, data: { job: id, input, segment, bundle, output },
        // A completed segment's result lives on in its parent (BullMQ keeps children's return values there): the job itself goes, so Redis does not grow with every segment.
        opts: { jobId: `${id}-s${segment.index}`, attempts, backoff, failParentOnFailure: true, removeOnComplete: true },
      })),
    });
    await this.redis.zadd(this.k.index, Date.now(), id);
    this.waiting++;
    void this.sweep().catch(() => undefined);
    return (await this.read(id))!;
  }

  /**
   * A request's Redis calls: when Redis is down or does not answer within `ms`, a JobError the
   * routes answer 503 (with Retry-After), naming the cause; the client reconnects by itself.
   */
  private async answer<T>(what: string, f: () => Promise<T>, ms = 5000): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([f(), new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms); })]);
    } catch (e) {
      if (e instanceof JobError || e instanceof UserError) throw e;
      const why = (e as Error).message;
      if (this.redis.status === 'ready' && !REDIS_DOWN.test(why)) throw e;
      throw new JobError('closed', `The video queue is unavailable: Redis (${this.o.queue}) did not answer ${what} (${why}).`, 'Retry after the Retry-After seconds; the server reconnects to Redis by itself.');
    } finally {
      clearTimeout(timer);
    }
  }

  get(id: string): Promise<JobStatus | undefined> { return this.answer(`for job ${id}`, () => this.read(id)); }

  private async read(id: string): Promise<JobStatus | undefined> {
    // The state before the snapshot: a job seen completed here has its return value in the snapshot
    // below (read the other way round, a join completing in between answered 500 on its .frames).
    const state = await this.joins.getJobState(id);
    const parent = await Job.fromId<JoinData, JoinResult>(this.joins, id);
    if (!parent) return undefined;
    const d = parent.data;
    // Completed segments: their results, kept by the parent. The others: their own job (progress, failure).
    const finished = Object.values(await parent.getChildrenValues<SegmentResult>());
    const have = new Set(finished.map((r) => r.index));
    const open = await Promise.all(d.segments.filter((x) => !have.has(x.index)).map((x) => Job.fromId<SegmentData, SegmentResult>(this.segmentsOf(d.bundle), `${id}-s${x.index}`)));
    const openStates = await Promise.all(open.map((c) => c?.getState()));
    const done = finished.reduce((a, r) => a + r.frames, 0) + open.reduce((a, c) => a + (typeof c?.progress === 'number' ? c.progress : 0), 0);
    const started = [...finished.map((r) => r.startedAt), ...open.map((c) => c?.processedOn)].filter((t): t is number => Boolean(t));
    const startedAt = started.length ? Math.min(...started) : undefined;
    const finishedAt = state === 'completed' || state === 'failed' ? parent.finishedOn ?? Date.now() : undefined;
    const failedChild = open.find((c, i) => openStates[i] === 'failed');
    const js: JobState = state === 'completed' ? 'done' : state === 'failed' ? 'failed' : started.length || state === 'active' || state === 'waiting' ? 'running' : 'queued';
    const seconds = startedAt ? ((finishedAt ?? Date.now()) - startedAt) / 1000 : 0;
    return {
      id, state: js, output: d.output, input: { name: d.name, bytes: d.bytes }, frames: { done: state === 'completed' ? parent.returnvalue.frames : done, total: d.frames },
      fps: seconds > 0 ? done / seconds : 0, error: js === 'failed' ? failedChild?.failedReason ?? parent.failedReason : undefined, partial: false,
      createdAt: d.createdAt, startedAt: startedAt ? new Date(startedAt).toISOString() : undefined, finishedAt: finishedAt ? new Date(finishedAt).toISOString() : undefined,
    };
  }

  list(o: { limit: number; after?: string }): Promise<{ jobs: JobStatus[]; next?: string }> { return this.answer('listing the jobs', () => this.page(o)); }

  private async page(o: { limit: number; after?: string }): Promise<{ jobs: JobStatus[]; next?: string }> {
    let from = 0;
    if (o.after) {
      const r = await this.redis.zrevrank(this.k.index, o.after);
      if (r === null) throw new JobError('not-found', `No job ${o.after} to page after.`, 'Start again without ?after=.');
      from = r + 1;
    }
    const ids = await this.redis.zrevrange(this.k.index, from, from + o.limit);
    const page = ids.slice(0, o.limit);
    const jobs = (await Promise.all(page.map((id) => this.read(id)))).filter((j): j is JobStatus => Boolean(j));
    return { jobs, next: ids.length > o.limit ? page[page.length - 1] : undefined };
  }

  async result(id: string, kind: 'video' | 'stats'): Promise<{ file: string; partial: boolean }> {
    const s = await this.get(id);
    if (!s) throw new JobError('not-found', `No video job ${id}.`, 'GET /videos lists the jobs.');
    if (s.state !== 'done') throw new JobError('not-ready', `Job ${id} is ${s.state}${s.error ? `: ${s.error}` : ''}.`, s.state === 'failed' ? 'Submit the video again once the cause is fixed.' : 'Poll GET /videos/:id until its state is done.');
    return { file: await this.o.store.fetch(`jobs/${id}/${kind === 'video' ? JOB_FILES.result : JOB_FILES.stats}`), partial: false };
  }

  remove(id: string): Promise<boolean> { return this.answer(`removing job ${id}`, () => this.drop(id), 40_000); }

  private async drop(id: string): Promise<boolean> {
    const parent = await Job.fromId<JoinData>(this.joins, id);
    if (!parent) return false;
    // Running segments see the flag within a second and stop; then the flow can be removed.
    await this.redis.set(this.k.cancel(id), '1', 'EX', 3600);
    const segments = this.segmentsOf(parent.data.bundle);
    const jobs = [...parent.data.segments.map((s) => ({ q: segments as Queue, id: `${id}-s${s.index}` })), { q: this.joins as Queue, id }];
    for (const t0 = Date.now(); ;) {
      const left = (await Promise.all(jobs.map(async (j) => {
        const job = await Job.fromId(j.q, j.id);
        if (!job) return false;
        try { await job.remove(); return false; } catch { return true; }
      }))).some(Boolean);
      if (!left) break;
      if (Date.now() - t0 > 30_000) throw new Error(`job ${id} could not be removed: a segment is still locked by a worker`);
      await new Promise((r) => setTimeout(r, 250));
    }
    await this.redis.zrem(this.k.index, id);
    await this.o.store.remove(`jobs/${id}`);
    return true;
  }

  metrics(): Promise<VideoJobsMetrics> { return this.answer('for the metrics', () => this.counts()); }

  private async counts(): Promise<VideoJobsMetrics> {
    // Segments of every bundle with a queue here (after a reload: the old one's, still draining, and the new one's).
    const bundles = new Set([this.bundle, ...await this.redis.smembers(this.k.bundles)]);
    const [j, per, doneNow] = await Promise.all([
      this.joins.getJobCounts('waiting-children', 'waiting', 'active', 'completed', 'failed'),
      Promise.all([...bundles].map((b) => this.segmentsOf(b).getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed'))),
      this.redis.get(this.k.segmentsDone).then((x) => Number(x ?? 0)),
    ]);
    const s: Record<string, number> = { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 };
    for (const c of per) for (const k of Object.keys(s)) s[k] += c[k] ?? 0;
    // A Redis that lost its data (restarted without persistence) counts from 0 again.
    if (doneNow < this.doneAtOpen) this.doneAtOpen = 0;
    const oldest = this.doneSamples.find((x) => x.n <= doneNow);
    return {
      jobs: { queued: j['waiting-children'] ?? 0, running: (j.waiting ?? 0) + (j.active ?? 0), done: j.completed ?? 0, failed: j.failed ?? 0, cancelled: 0 },
      queue: s,
      segmentsDone: doneNow - this.doneAtOpen, segmentsPerSecond: oldest ? (doneNow - oldest.n) / 60 : 0,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.refresh);
    await this.retiring?.catch(() => undefined);
    await Promise.allSettled([this.flows.close(), this.joins.close(), ...[...this.segmentQueues.values()].map((q) => q.close())]);
    await this.redis.quit().catch(() => undefined);
  }
}
