/**
 * A fleet that keeps going: a hung ffmpeg is stopped by the segment timeout and the segment retried;
 * a Redis outage is a quick 503 on /videos while /segment serves, and the same server and workers
 * finish the next job once Redis is back (a Redis of its own, started and stopped here).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import IORedis from 'ioredis';
import { bundleId } from '../../core/bundle';
import { ffmpegPath } from '../../core/ffmpeg';
import { QueueVideoJobs } from '../../fleet/jobs';
import { removeQueueKeys } from '../../fleet/queue';
import { DirStore } from '../../fleet/store';
import { startFleetWorker, type FleetWorker } from '../../fleet/worker';
import { startServer, type RunningServer } from '../../serve/server';
import { liveFfmpegChildren } from '../../streams/ffmpeg';
import { attachments } from '../../cli/attach';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const REDIS = process.env.I2I_REDIS ?? 'redis://127.0.0.1:6379';
const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const comm = (pid: number) => { try { return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; } };
const running = (pid: number) => { try { return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };

async function redisAnswers(url: string): Promise<boolean> {
  const r = new IORedis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try { await r.connect(); await r.ping(); return true; } catch { return false; } finally { r.disconnect(); }
}

const freePort = () => new Promise<number>((resolve) => { const srv = net.createServer().listen(0, '127.0.0.1', () => { const p = (srv.address() as net.AddressInfo).port; srv.close(() => resolve(p)); }); });

describe('fleet: a hung ffmpeg and a Redis outage', function () {
  this.timeout(300000);
  const root = tmpDir();
  const bundle = path.join(root, 'bundle'), store = path.join(root, 'store');
  const clip = path.join(root, 'clip.mp4');
  before(async () => {
    await makeBundle(bundle, { height: 32, width: 64 });
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-t', '3', '-c:v', 'libx264', '-g', '10', '-pix_fmt', 'yuv420p', clip]);
  });

  it('a segment whose ffmpeg hangs (SIGSTOP) is stopped after its timeout, its ffmpeg killed, and retried to completion', async function () {
    if (!(await redisAnswers(REDIS))) { if (process.env.I2I_REQUIRE_REDIS === '1') throw new Error(`no Redis at ${REDIS}`); this.skip(); }
    const queue = `i2i-timeout-${process.pid}-${Date.now().toString(36)}`;
    const logs: string[] = [];
    const jobs = await QueueVideoJobs.open({ redis: REDIS, queue, store: new DirStore(store), bundle: bundleId(bundle), segmentSeconds: 60 });
    let w: FleetWorker | undefined;
    const stopped = new Set<number>();
    let stopping = true;
    const stopper = setInterval(() => { if (stopping) for (const pid of liveFfmpegChildren()) if (!stopped.has(pid) && comm(pid) === 'ffmpeg') { stopped.add(pid); process.kill(pid, 'SIGSTOP'); } }, 5);
    try {
      const job = await jobs.submit({ file: clip, name: 'clip.mp4', bytes: fs.statSync(clip).size, owned: false, output: 'mask' });
      w = await startFleetWorker({ bundle, redis: REDIS, queue, store: new DirStore(store), workers: 1, segmentTimeoutMs: 3000, segmentMsPerFrame: 0, log: (msg, extra) => { logs.push(JSON.stringify({ msg, ...extra })); if (msg === 'segment failed') stopping = false; } });
      let s;
      for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 200))) {
        s = await jobs.get(job.id);
        if (s?.state === 'done' || s?.state === 'failed' || Date.now() - t0 > 90000) break;
      }
      assert.equal(s?.state, 'done', `${JSON.stringify(s)}\n${logs.join('\n')}`);
      assert.deepEqual(s!.frames, { done: 30, total: 30 });
      const failed = logs.filter((l) => l.includes('"segment failed"'));
      assert.equal(failed.length, 1, logs.join('\n'));
      assert.match(failed[0], /took longer than 3 s and was stopped/);
      assert.ok(stopped.size > 0, 'an ffmpeg was stopped');
      assert.deepEqual([...stopped].filter(running), [], 'the hung ffmpeg processes were killed');
    } finally {
      clearInterval(stopper);
      for (const pid of stopped) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      await w?.close();
      await jobs.close();
      const r = new IORedis(REDIS);
      try { await removeQueueKeys(r, queue); } finally { r.disconnect(); }
    }
  });

  it('Redis down: GET and POST /videos answer 503 within seconds while /segment serves; once it is back, the same server and worker finish the next job', async function () {
    if (spawnSync('which', ['redis-server']).status !== 0) { process.stderr.write('  (no redis-server binary: the outage test is skipped)\n'); this.skip(); }
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const startRedis = async () => {
      const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
      for (const t0 = Date.now(); !(await redisAnswers(url));) { if (Date.now() - t0 > 10000) throw new Error('redis-server did not start'); await new Promise((r) => setTimeout(r, 100)); }
      return p;
    };
    const stopRedis = (p: ChildProcess) => new Promise((r) => { p.once('exit', r); p.kill('SIGKILL'); });
    let redis = await startRedis();
    let s: RunningServer | undefined, w: FleetWorker | undefined;
    const queue = 'outage';
    try {
      const jobs = await QueueVideoJobs.open({ redis: url, queue, store: new DirStore(store), bundle: bundleId(bundle), segmentSeconds: 60 });
      s = await startServer({ bundle, port: 0, workers: 1, log: silent, attach: attachments({ videos: { queue: jobs } }, silent) });
      w = await startFleetWorker({ bundle, redis: url, queue, store: new DirStore(store), workers: 1 });
      const post = () => fetch(`${s!.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(clip), signal: AbortSignal.timeout(15000) });
      const finish = async (id: string) => {
        for (const t0 = Date.now(); Date.now() - t0 < 90000; await new Promise((r) => setTimeout(r, 200))) {
          const j = await (await fetch(`${s!.url}/videos/${id}`)).json() as { state: string; frames: { done: number } };
          if (j.state === 'done' || j.state === 'failed') return j;
        }
        throw new Error(`job ${id} did not finish`);
      };
      const first = await post();
      assert.equal(first.status, 202);
      const id = ((await first.json()) as { id: string }).id;
      assert.equal((await finish(id)).state, 'done');

      await stopRedis(redis);
      const png = await (await import('sharp')).default({ create: { width: 64, height: 32, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
      for (const [what, call] of [
        ['GET /videos/:id', () => fetch(`${s!.url}/videos/${id}`, { signal: AbortSignal.timeout(15000) })],
        ['GET /videos', () => fetch(`${s!.url}/videos`, { signal: AbortSignal.timeout(15000) })],
        ['POST /videos', post],
      ] as [string, () => Promise<Response>][]) {
        const t0 = Date.now();
        const r = await call();
        const ms = Date.now() - t0;
        assert.equal(r.status, 503, `${what}: ${await r.clone().text()}`);
        assert.match((await r.json() as { error: string }).error, /video queue is unavailable/);
        assert.ok(r.headers.get('retry-after'), `${what} says when to retry`);
        assert.ok(ms < 6000, `${what} answered in ${ms} ms`);
      }
      const seg = await fetch(`${s.url}/segment`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' } });
      assert.equal(seg.status, 200, '/segment keeps serving');
      assert.deepEqual(fs.readdirSync(path.join(store, 'scratch')).filter((f) => !f.startsWith('.')), [], 'a refused upload leaves nothing');

      redis = await startRedis();
      // The clients reconnect by themselves (backoff up to 2 s): the next video goes through.
      let next: Response | undefined;
      for (const t0 = Date.now(); Date.now() - t0 < 20000; await new Promise((r) => setTimeout(r, 500))) {
        next = await post();
        if (next.status !== 503) break;
      }
      assert.equal(next!.status, 202, await next!.clone().text());
      const again = await finish(((await next!.json()) as { id: string }).id);
      assert.equal(again.state, 'done', JSON.stringify(again));
      assert.equal(again.frames.done, 30);
    } finally {
      await w?.close();
      await s?.close();
      await stopRedis(redis);
    }
  });
});
