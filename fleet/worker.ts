/**
 * `i2i worker`: takes segment and join jobs off the BullMQ queues and runs them on its own engine.
 * A segment is decoded from its keyframe, segmented, encoded without audio and stored under a name
 * of its own (a segment done twice writes the same file); a join concatenates a video's parts in
 * order, adds the source's audio and renumbers the stats. A worker takes segments of its own bundle
 * only (their queue is the bundle's: fleet/queue.ts), and joins of any. It refuses to start when
 * live servers serve other bundles and no segment of its own waits, and stops taking jobs when that
 * becomes true while it runs (its version was rolled out of the fleet and it has drained its queue).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { bundleId } from '../core/bundle';
import { JOB_FILES } from '../core/video-jobs';
import { UserError } from '../core/errors';
import { Engine, type EngineOptions } from '../serve/engine/engine';
import { FrameCapture, type CaptureOptions } from '../serve/capture';
import { probeVideo } from '../streams/ffmpeg';
import { segmentVideo } from '../streams/segment-video';
import { joinSegments } from './plan';
import { connect, HEARTBEAT_MS, keys, OPEN_SEGMENT_STATES, queueNames, redisNow, servedBundles, untilReachable, type JoinData, type JoinResult, type SegmentData, type SegmentResult } from './queue';
import type { ResultStore } from './store';

export interface FleetWorkerOptions extends Omit<EngineOptions, 'log'> {
  redis: string;
  queue: string;
  store: ResultStore;
  /** Segments at once (default 1: one segment keeps the engine's workers busy). */
  concurrency?: number;
  /** BullMQ's lock: a worker that stops renewing it (killed) has its segment taken over after this long (default 30 s). */
  lockMs?: number;
  /**
   * A segment that takes longer than max(segmentTimeoutMs, its frames x segmentMsPerFrame) is
   * stopped (its ffmpeg killed) and retried: a hung ffmpeg would otherwise renew the lock forever
   * (defaults 300 s and 2000 ms a frame).
   */
  segmentTimeoutMs?: number;
  segmentMsPerFrame?: number;
  log?: (msg: string, extra?: object) => void;
  /** Drift-driven capture of the segments' frames (i2i worker --capture): each worker its own folder (the index is per process). */
  capture?: Omit<CaptureOptions, 'log'>;
  /** Heartbeat and check of whether its bundle is still wanted, this often (default 5 s; the servers must use the same). */
  heartbeatMs?: number;
  /** How long to wait for Redis at start before giving up with a UserError (default 60 s; 0: for ever). */
  redisWaitMs?: number;
  /** Told at once (within 1.5 s) and every 10 s while Redis cannot be reached at start (default: log). */
  onRedisWait?: (line: string) => void;
}

export interface FleetWorker {
  close(): Promise<void>;
  engine: Engine;
  bundle: string;
  /** Resolves once no live server serves this worker's bundle and none of its segments is left (it has stopped taking jobs). */
  refused: Promise<UserError>;
}

/** Failures of the machine, not of the video: worth another attempt (on this worker or another). */
const TRANSIENT = /No space left|Input\/output error|Resource temporarily unavailable|Cannot allocate memory|Too many open files|Stale file handle|E(NOSPC|IO|AGAIN|MFILE|NOMEM)\b|timed out/i;

/** Deterministic failures end the job at once (BullMQ would retry them, with the same result); others are retried. */
function failure(deterministic: boolean, message: string): Error {
  return deterministic ? new UnrecoverableError(message) : new Error(message);
}

export async function startFleetWorker(o: FleetWorkerOptions): Promise<FleetWorker> {
  const bundle = bundleId(o.bundle);
  const redis = connect(o.redis);
  // Without this a worker whose Redis is down says nothing while its first command waits in ioredis's offline queue.
  await untilReachable(redis, o.redis, { ms: o.redisWaitMs ?? 60_000, say: o.onRedisWait ?? ((line) => o.log?.(line)) });
  const names = queueNames(o.queue), k = keys(o.queue);
  const heartbeatMs = o.heartbeatMs ?? HEARTBEAT_MS;
  const ownSegments = new Queue(names.segments(bundle), { connection: redis });
  ownSegments.on('error', () => undefined);
  /** Why this worker has nothing to do here: live servers serve other bundles, and no segment of its own is left. */
  const unwanted = async (): Promise<string | undefined> => {
    const served = await servedBundles(redis, o.queue, heartbeatMs);
    if (served.length === 0 || served.includes(bundle)) return undefined;
    const open = Object.values(await ownSegments.getJobCounts(...OPEN_SEGMENT_STATES)).reduce((a, n) => a + n, 0);
    return open > 0 ? undefined : `The queue ${o.queue} carries jobs for bundle ${served.map((b) => b.slice(0, 12)).join(', ')}; this worker's bundle ${o.bundle} is ${bundle.slice(0, 12)}, which no server serves and no segment waits for`;
  };
  const heartbeat = async () => { await redis.zadd(k.workers, await redisNow(redis), bundle); };
  const why = await unwanted();
  if (why) {
    await ownSegments.close();
    await redis.quit();
    throw new UserError(`${why}.`, 'Start the worker with the bundle the servers serve (its manifest.json is what identifies it).');
  }
  await heartbeat();
  const log = o.log ?? (() => undefined);
  let engine: Engine, capture: FrameCapture | undefined;
  try {
    capture = o.capture && new FrameCapture({ ...o.capture, log });
    engine = await Engine.start({ ...o, log: o.log && ((level, msg, extra) => o.log!(msg, { level, ...extra })) });
  } catch (e) {
    await ownSegments.close().catch(() => undefined);
    await redis.quit().catch(() => undefined);
    throw e;
  }
  const lock = o.lockMs ?? 30_000;
  const connections = [connect(o.redis), connect(o.redis)];
  const common = { lockDuration: lock, stalledInterval: lock, maxStalledCount: 2 };

  const segments = new Worker<SegmentData, SegmentResult>(names.segments(bundle), async (job) => {
    const d = job.data;
    if (d.bundle !== bundle) throw new UnrecoverableError(`segment ${d.segment.index} of video ${d.job} is for bundle ${d.bundle.slice(0, 12)}; this worker has ${bundle.slice(0, 12)} (${o.bundle})`);
    const input = await o.store.fetch(d.input);
    const part = `jobs/${d.job}/parts/${String(d.segment.index).padStart(5, '0')}`;
    // Unique per attempt on any machine (containers all run as pid 1): two workers never share a temporary file.
    const tmp = path.join(o.store.scratch, `${d.job}-${d.segment.index}-${os.hostname()}-${randomBytes(4).toString('hex')}`);
    const discard = () => { for (const f of [`${tmp}.mp4`, `${tmp}.jsonl`]) fs.rmSync(f, { force: true }); };
    const ac = new AbortController(), hard = new AbortController();
    const sampler = capture?.sampler(`video job ${d.job} segment ${d.segment.index}`);
    const limitMs = Math.max(o.segmentTimeoutMs ?? 300_000, d.segment.frames * (o.segmentMsPerFrame ?? 2000));
    const timer = setTimeout(() => hard.abort(), limitMs);
    let last = 0;
    const t0 = performance.now(), startedAt = Date.now();
    let r;
    try {
      r = await segmentVideo({
        engine, input, out: `${tmp}.mp4`, output: d.output, stats: `${tmp}.jsonl`, start: d.segment.seek, frames: d.segment.last ? undefined : d.segment.frames, audio: false, signal: ac.signal, kill: hard.signal,
        // A part's times count from its seek point: the video's own pts are those plus the seek (as the join renumbers them).
        capture: sampler && { offer: (frame, drift, version, pts) => sampler.offer(frame, drift, version, pts + d.segment.seek) },
        onProgress: (p) => {
        const now = performance.now();
        if (now - last < 500) return;
        last = now;
        void job.updateProgress(p.done).catch(() => undefined);
        void redis.exists(k.cancel(d.job)).then((n) => { if (n) ac.abort(); }, () => undefined);
        },
      });
    } catch (e) {
      // Refused or unreadable input (segmentVideo probes it first): the same file fails the same way.
      discard();
      throw e instanceof UserError ? new UnrecoverableError((e as Error).message.replace(input, `segment ${d.segment.index} of ${d.job}`)) : e;
    } finally {
      clearTimeout(timer);
    }
    const name = `segment ${d.segment.index} of ${d.job}`;
    if (ac.signal.aborted) { discard(); throw new UnrecoverableError(`video ${d.job} was cancelled`); }
    if (hard.signal.aborted) { discard(); throw new Error(`${name} took longer than ${Math.round(limitMs / 1000)} s and was stopped (its ffmpeg killed); it will be retried`); }
    if (r.error) { discard(); throw failure(r.failure === 'input' || (r.failure === 'output' && !TRANSIENT.test(r.error)), r.error.replace(input, name)); }
    // A middle segment with other than its planned frames would lose or double frames at a cut (and would again).
    if (!d.segment.last && r.frames !== d.segment.frames) { discard(); throw new UnrecoverableError(`${name} decoded ${r.frames} frames, planned ${d.segment.frames}`); }
    await o.store.put(`${part}.mp4`, `${tmp}.mp4`);
    await o.store.put(`${part}.jsonl`, `${tmp}.jsonl`);
    await job.updateProgress(r.frames);
    log('segment done', { job: d.job, segment: d.segment.index, frames: r.frames, fps: Number(r.fps.toFixed(1)) });
    return { index: d.segment.index, frames: r.frames, video: `${part}.mp4`, stats: `${part}.jsonl`, seconds: (performance.now() - t0) / 1000, startedAt };
  }, { ...common, connection: connections[0], concurrency: o.concurrency ?? 1 });

  const joins = new Worker<JoinData, JoinResult>(names.joins, async (job: Job<JoinData>) => {
    const d = job.data;
    const result = { video: `jobs/${d.job}/${JOB_FILES.result}`, stats: `jobs/${d.job}/${JOB_FILES.stats}` };
    const parts = Object.values(await job.getChildrenValues<SegmentResult>()).sort((a, b) => a.index - b.index);
    const frames = parts.reduce((a, p) => a + p.frames, 0);
    // A join retried after it stored its result (its worker died before BullMQ heard): the result stands.
    if (await o.store.exists(result.video) && await o.store.exists(result.stats) && !(await o.store.exists(`jobs/${d.job}/parts`))) return { frames, ...result };
    if (parts.length !== d.segments.length || parts.some((p, i) => p.index !== i)) throw new Error(`video ${d.job}: ${parts.length} of ${d.segments.length} segments came back`);
    const input = await o.store.fetch(d.input);
    const source = await probeVideo(input).catch((e: Error) => { throw e instanceof UserError ? new UnrecoverableError(e.message) : e; });
    // Unique on any machine (containers all run as pid 1): two joins never share a temporary file.
    const tmp = path.join(o.store.scratch, `${d.job}-join-${os.hostname()}-${randomBytes(4).toString('hex')}`);
    try {
      await joinSegments(await Promise.all(parts.map(async (p) => ({ video: await o.store.fetch(p.video), stats: await o.store.fetch(p.stats), segment: d.segments[p.index] }))), { video: `${tmp}.mp4`, stats: `${tmp}.jsonl` },
        source.hasAudio ? { file: input, codecs: source.audio.map((a) => a.codec) } : undefined);
    } catch (e) {
      for (const f of [`${tmp}.mp4`, `${tmp}.jsonl`]) fs.rmSync(f, { force: true });
      // A mux the parts or the source's streams refuse fails the same way again; a full disk may not.
      throw failure(!TRANSIENT.test((e as Error).message), (e as Error).message);
    }
    await o.store.put(result.stats, `${tmp}.jsonl`);
    await o.store.put(result.video, `${tmp}.mp4`);
    await o.store.remove(`jobs/${d.job}/parts`);
    log('video done', { job: d.job, frames, segments: parts.length });
    return { frames, ...result };
  }, { ...common, connection: connections[1], concurrency: 1 });

  for (const w of [segments, joins]) w.on('error', (e) => log('worker error', { error: e.message }));
  // The servers move to another bundle (a reload, a rollout) while this worker runs: it finishes the
  // segments queued for its own bundle, then stops taking jobs and says why.
  let refused: ((why: UserError) => void) | undefined;
  const refusal = new Promise<UserError>((r) => { refused = r; });
  let checking = false;
  const watch = setInterval(() => {
    if (checking) return;
    checking = true;
    void (async () => {
      await heartbeat();
      const now = await unwanted();
      if (!now) return;
      clearInterval(watch);
      await segments.pause(true);
      refused?.(new UserError(`${now}, so it stopped taking jobs.`, 'Restart it with the bundle the servers serve.'));
    })().catch(() => undefined).finally(() => { checking = false; });
  }, heartbeatMs);
  watch.unref();
  segments.on('completed', () => { void redis.incr(k.segmentsDone).catch(() => undefined); });
  segments.on('failed', (job, e) => log('segment failed', { job: job?.data.job, segment: job?.data.segment.index, attempt: job?.attemptsMade, error: e.message }));
  await Promise.all([segments.waitUntilReady(), joins.waitUntilReady()]);
  return {
    engine, bundle, refused: refusal,
    async close() {
      clearInterval(watch);
      // Finishes the segments in hand (BullMQ waits for them), then stops the engine. Connections
      // handed to BullMQ are ours to close.
      await Promise.all([segments.close(), joins.close(), ownSegments.close()]);
      await Promise.all([redis, ...connections].map((c) => c.quit().catch(() => undefined)));
      await engine.close();
      await capture?.flush();
    },
  };
}
