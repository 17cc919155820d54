/**
 * The scale-out queue's shared vocabulary: BullMQ queue names, job data, Redis keys. A video is a
 * BullMQ flow: a 'join' job on `<queue>` whose children are its 'segment' jobs on
 * `<queue>-segments-<bundle>`; BullMQ holds the join until every segment completed, and fails it
 * when a segment fails for good.
 *
 * Model versions: a video is pinned to the bundle the server served when it was queued, and its
 * segments wait on that bundle's own queue, where only workers running that bundle look. So a
 * server that reloads (or a new server with a new bundle) queues new videos for the new bundle
 * while the old bundle's workers finish the old ones. Joins use no model: any worker takes them.
 * Servers and workers leave heartbeats (which bundle, when, by Redis's clock): a worker whose
 * bundle no live server serves and no segment waits for stops; a bundle no server serves whose
 * workers have all been gone for a while has its waiting segments failed, with the reason, by the
 * servers (fleet/jobs.ts), so that no video waits for ever for a model nobody runs.
 */
import IORedis from 'ioredis';
import { UserError } from '../core/errors';
import type { Segment } from './plan';

import type { VideoOutput as OutputKind } from '../core/video-jobs';

export interface SegmentData { job: string; input: string; segment: Segment; bundle: string; output: OutputKind }
export interface SegmentResult { index: number; frames: number; video: string; stats: string; seconds: number; /** ms since the epoch when the worker began it. */ startedAt: number }
export interface JoinData {
  job: string; input: string; name: string; bytes: number; bundle: string; output: OutputKind;
  frames: number; segments: Segment[]; createdAt: string;
}
export interface JoinResult { frames: number; video: string; stats: string }

export const queueNames = (queue: string) => ({ joins: queue, segments: (bundle: string) => `${queue}-segments-${bundle.slice(0, 16)}` });

/** Keys beside BullMQ's own (under its prefix's namespace, so removing the queue's keys removes them). */
export const keys = (queue: string) => ({
  /** Video ids by creation time (the /videos list). */
  index: `bull:${queue}:i2i:videos`,
  /** Servers' heartbeats: bundle sha256 -> when a server serving it last said so (ms, Redis's clock). */
  served: `bull:${queue}:i2i:served`,
  /** Workers' heartbeats: bundle sha256 -> when a worker running it last said so. */
  workers: `bull:${queue}:i2i:workers`,
  /** The bundles with a segment queue here (the servers look after the ones no server serves any more). */
  bundles: `bull:${queue}:i2i:bundles`,
  /** Segments completed, by any worker (the servers' i2i_queue_segments_done counts from it). */
  segmentsDone: `bull:${queue}:i2i:segments-done`,
  cancel: (id: string) => `bull:${queue}:i2i:cancel:${id}`,
});

/** How often servers and workers leave their heartbeat (default); one older than 3 of these is gone. */
export const HEARTBEAT_MS = 5000;

/** Redis's clock in ms: one clock for every machine's heartbeats, whatever their own say. */
export async function redisNow(r: IORedis): Promise<number> {
  const [s, us] = await r.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** The bundles a live server serves (a heartbeat within 3 x heartbeatMs). */
export async function servedBundles(r: IORedis, queue: string, heartbeatMs = HEARTBEAT_MS): Promise<string[]> {
  return r.zrangebyscore(keys(queue).served, (await redisNow(r)) - 3 * heartbeatMs, '+inf');
}

/** The segment states that will still run (a worker of the bundle takes them). */
export const OPEN_SEGMENT_STATES = ['waiting', 'active', 'delayed', 'prioritized'] as const;

/** One Redis connection as BullMQ needs it (blocking commands: no per-request retry limit). */
export function connect(url: string): IORedis {
  const r = new IORedis(url, { maxRetriesPerRequest: null, lazyConnect: false, connectTimeout: 5000 });
  // ioredis reconnects by itself; an unhandled 'error' would only crash the process meanwhile.
  r.on('error', () => undefined);
  return r;
}

/**
 * A connection for the request path (the API's queue client, not a worker): no offline queue and
 * bounded waits, so that while Redis is down a command fails at once (or within commandMs) and the
 * routes answer 503, instead of requests piling up behind a reconnect. It still reconnects by itself.
 */
export function connectProducer(url: string, commandMs = 3000): IORedis {
  const r = new IORedis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 3000, commandTimeout: commandMs, retryStrategy: (n) => Math.min(200 * n, 2000) });
  r.on('error', () => undefined);
  return r;
}

/** Resolves once `r` is connected (a producer without an offline queue refuses commands before that). */
export function whenReady(r: IORedis, ms: number): Promise<void> {
  if (r.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (e?: Error) => { clearTimeout(t); r.off('ready', ok); r.off('error', bad); if (e) reject(e); else resolve(); };
    const ok = () => done(), bad = (e: Error) => done(e);
    const t = setTimeout(() => done(new Error(`no answer within ${ms} ms`)), ms);
    r.once('ready', ok); r.once('error', bad);
  });
}

/**
 * Waits until `r` is connected, for at most `ms` (0: for ever), saying so when it is not: within
 * 1.5 s of the start (or at the first refused connection), then every `everyMs`. ioredis retries
 * by itself meanwhile; on giving up the connection is closed and a UserError names the URL
 * (credentials removed) and the last error.
 */
export function untilReachable(r: IORedis, url: string, o: { ms: number; everyMs?: number; say: (line: string) => void }): Promise<void> {
  if (r.status === 'ready') return Promise.resolve();
  const where = redactUrl(url);
  return new Promise<void>((resolve, reject) => {
    const t0 = Date.now();
    let last = 'no answer yet', said = false;
    const tell = () => {
      o.say(`${said ? 'still ' : ''}cannot reach Redis at ${where} (${last})${said ? ` after ${Math.round((Date.now() - t0) / 1000)} s` : ''}; retrying${o.ms ? `, giving up after ${Math.round(o.ms / 1000)} s` : ' until it answers'}`);
      said = true;
    };
    // Node reports a refused connection to a name with several addresses (localhost) as an AggregateError with no message of its own.
    const onError = (e: Error & { errors?: Error[]; code?: string }) => { last = e.message || e.errors?.map((x) => x.message).join('; ') || e.code || String(e); if (!said) tell(); };
    const first = setTimeout(() => { if (!said) tell(); }, 1500);
    const every = setInterval(tell, o.everyMs ?? 10_000);
    const give = o.ms ? setTimeout(() => {
      finish();
      r.disconnect();
      reject(new UserError(`Cannot reach Redis at ${where}: ${last} (waited ${Math.round(o.ms / 1000)} s).`, 'Start Redis or fix --redis redis://HOST:PORT; --redis-wait SECONDS waits longer (0: for ever).'));
    }, o.ms) : undefined;
    const onReady = () => { finish(); if (said) o.say(`reached Redis at ${where}`); resolve(); };
    const finish = () => { clearTimeout(first); clearInterval(every); clearTimeout(give); r.off('error', onError); r.off('ready', onReady); };
    r.on('error', onError);
    r.once('ready', onReady);
  });
}

/** A Redis URL without its password (redis://user:secret@host -> redis://user:***@host). */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@/i, (_m, scheme: string, auth: string) => `${scheme}${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`);
}

/** Removes every key of a queue (BullMQ's and ours all live under bull:<queue>): tests and benchmarks clean up with it. */
export async function removeQueueKeys(redis: IORedis, queue: string): Promise<void> {
  const names = queueNames(queue);
  for (const pattern of [`bull:${names.joins}:*`, `bull:${names.segments('')}*`]) {
    let cursor = '0';
    do { const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000); cursor = next; if (found.length) await redis.del(...found); } while (cursor !== '0');
  }
}
