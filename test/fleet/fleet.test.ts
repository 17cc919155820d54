/**
 * Scale-out against the real Redis on 127.0.0.1:6379 (I2I_REDIS overrides): each run uses its own
 * queue name and removes its keys afterwards. Without a Redis these tests say so in one line and
 * skip, unless I2I_REQUIRE_REDIS=1 (CI), where that is a failure.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import IORedis from 'ioredis';
import { bundleId } from '../../core/bundle';
import { ffmpegPath } from '../../core/ffmpeg';
import { QueueVideoJobs } from '../../fleet/jobs';
import { removeQueueKeys } from '../../fleet/queue';
import { DirStore } from '../../fleet/store';
import { labelsFromPaletteRgb } from '../../runtime/image';
import { CITYSCAPES_PALETTE } from '../../core/labels';
import { Engine } from '../../serve/engine/engine';
import { startServer, type RunningServer } from '../../serve/server';
import { decodeFrames, probeVideo } from '../../streams/ffmpeg';
import { segmentVideo } from '../../streams/segment-video';
import { attachments } from '../../cli/attach';
import { alive, tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const REDIS = process.env.I2I_REDIS ?? 'redis://127.0.0.1:6379';
const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const BIN = path.resolve(__dirname, '../../bin/i2i.js');
type Job = { id: string; state: string; frames: { done: number; total: number }; error?: string; links: Record<string, string> };

async function redisAnswers(): Promise<boolean> {
  const r = new IORedis(REDIS, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try { await r.connect(); await r.ping(); return true; } catch { return false; } finally { r.disconnect(); }
}

/** Every label of every frame of a lossless mask video, and its frame count. */
async function labelsOf(file: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const f of decodeFrames(await probeVideo(file)).frames) out.push(labelsFromPaletteRgb(f.rgb, CITYSCAPES_PALETTE));
  return out;
}

async function dropQueue(queue: string): Promise<void> {
  const r = new IORedis(REDIS);
  try { await removeQueueKeys(r, queue); } finally { r.disconnect(); }
}

describe('fleet: /videos on BullMQ with i2i worker processes (real Redis)', function () {
  this.timeout(300000);
  const root = tmpDir();
  const queue = `i2i-test-${process.pid}-${Date.now().toString(36)}`;
  const bundle = path.join(root, 'bundle'), slow = path.join(root, 'slow'), other = path.join(root, 'other');
  const store = path.join(root, 'store');
  const clip = path.join(root, 'drive.mp4');
  const workers: ChildProcess[] = [];
  let s: RunningServer | undefined;
  let logs = '';

  const worker = (b: string, extra: string[] = [], q = queue) => {
    const w = spawn(process.execPath, [BIN, 'worker', '--bundle', b, '--redis', REDIS, '--queue', q, '--store', store, '--workers', '1', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    w.stdout!.on('data', (d) => { logs += `[${w.pid}] ${d}`; });
    w.stderr!.on('data', (d) => { logs += `[${w.pid} err] ${d}`; });
    workers.push(w);
    return w;
  };
  const ready = async (w: ChildProcess) => { for (const t0 = Date.now(); !new RegExp(`\\[${w.pid}\\] .*worker ready`).test(logs);) { if (Date.now() - t0 > 60000) throw new Error(`worker ${w.pid} not ready: ${logs}`); await new Promise((r) => setTimeout(r, 100)); } };
  const poll = async (id: string, until: (j: Job) => boolean, ms = 120000) => {
    for (const t0 = Date.now(); Date.now() - t0 < ms;) {
      const j = await (await fetch(`${s!.url}/videos/${id}`)).json() as Job;
      if (until(j)) return j;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`job ${id} never got there; worker logs:\n${logs}`);
  };
  const post = async (file: string, output = 'mask') => {
    const r = await fetch(`${s!.url}/videos?output=${output}`, { method: 'POST', headers: { 'Content-Type': 'video/mp4', 'X-Filename': path.basename(file) }, body: fs.readFileSync(file) });
    assert.equal(r.status, 202, await r.clone().text());
    return (await r.json()) as Job;
  };
  const startWith = async (b: string) => {
    const jobs = await QueueVideoJobs.open({ redis: REDIS, queue, store: new DirStore(store), bundle: bundleId(b), segmentSeconds: 1 });
    s = await startServer({ bundle: b, port: 0, workers: 1, log: silent, attach: attachments({ videos: { queue: jobs } }, silent) });
  };

  before(async function () {
    if (!(await redisAnswers())) {
      if (process.env.I2I_REQUIRE_REDIS === '1') throw new Error(`I2I_REQUIRE_REDIS=1 but no Redis answers at ${REDIS}`);
      process.stderr.write(`  (no Redis at ${REDIS}: the scale-out tests are skipped)\n`);
      this.skip();
    }
    // 4 s at 25 frames/s, a keyframe every 10 frames, with audio: cut into 1 s segments on keyframes.
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=25', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=22050', '-t', '4', '-c:v', 'libx264', '-g', '10', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clip]);
    await makeBundle(bundle, { height: 32, width: 64 });
    await makeBundle(other, { height: 32, width: 64, slowLayers: 1 });
    await startWith(bundle);
  });
  after(async () => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await s?.close();
    if (await redisAnswers()) {
      await dropQueue(queue);
      const r = new IORedis(REDIS);
      assert.equal((await r.keys(`bull:${queue}*`)).length, 0, 'the test queues are gone');
      r.disconnect();
    }
  });

  it('a video split over two worker processes equals the single-machine output frame for frame (labels, stats), audio kept', async () => {
    const [a, b] = [worker(bundle), worker(bundle)];
    await Promise.all([ready(a), ready(b)]);
    const job = await post(clip);
    const done = await poll(job.id, (j) => j.state === 'done' || j.state === 'failed');
    assert.equal(done.state, 'done', `${JSON.stringify(done)}\n${logs}`);
    assert.deepEqual(done.frames, { done: 100, total: 100 });
    const got = path.join(root, 'fleet.mask.mp4');
    fs.writeFileSync(got, Buffer.from(await (await fetch(`${s!.url}${done.links.result}`)).arrayBuffer()));
    const gotStats = (await (await fetch(`${s!.url}${done.links.stats}`)).text()).trim().split('\n').map((l) => JSON.parse(l) as { index: number; pts: number; drift: number; fractions: object });
    // The same video on one machine, in one piece.
    const engine = await Engine.start({ bundle, workers: 1 });
    const want = path.join(root, 'single.mask.mp4');
    try { await segmentVideo({ engine, input: clip, out: want, output: 'mask', stats: `${want}.jsonl` }); } finally { await engine.close(); }
    const wantStats = fs.readFileSync(`${want}.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; pts: number; drift: number; fractions: object });
    const [gl, wl] = [await labelsOf(got), await labelsOf(want)];
    assert.equal(gl.length, 100);
    assert.equal(wl.length, 100);
    gl.forEach((l, i) => assert.ok(Buffer.from(l).equals(Buffer.from(wl[i])), `frame ${i} differs`));
    assert.deepEqual(gotStats.map((x) => x.index), wantStats.map((x) => x.index));
    gotStats.forEach((x, i) => {
      assert.ok(Math.abs(x.pts - wantStats[i].pts) < 1e-3, `frame ${i} pts ${x.pts} vs ${wantStats[i].pts}`);
      assert.deepEqual([x.fractions, x.drift], [wantStats[i].fractions, wantStats[i].drift], `frame ${i}`);
    });
    assert.ok(execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-show_entries', 'stream=codec_type', '-of', 'csv=p=0', got]).toString().includes('audio'), 'audio kept');
    // Both processes took segments.
    const by = (w: ChildProcess) => (logs.match(new RegExp(`\\[${w.pid}\\] .*"segment done"`, 'g')) ?? []).length;
    assert.ok(by(a) > 0 && by(b) > 0 && by(a) + by(b) === 4, `segments per worker: ${by(a)} + ${by(b)}`);
    const metrics = await (await fetch(`${s!.url}/metrics`)).text();
    assert.match(metrics, /i2i_queue_segments_done 4/);
    assert.match(metrics, /i2i_queue_segments\{state="waiting"\} 0/);
    assert.match(metrics, /i2i_video_jobs\{state="done"\} 1/);
    for (const w of [a, b]) w.kill('SIGTERM');
    await Promise.all([a, b].map((w) => new Promise((r) => (w.exitCode !== null ? r(0) : w.once('exit', r)))));
  });

  it('a bad video fails its job with the reason at once (deterministic: no retries); the other jobs go on; a worker for another bundle is refused', async () => {
    const w = worker(bundle);
    await ready(w);
    // A recording cut off mid-file: MKV, keyframe every 5 frames, 60% of its bytes.
    const cut = path.join(root, 'broken.mkv');
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-t', '4', '-c:v', 'libx264', '-g', '5', '-pix_fmt', 'yuv420p', `${cut}.whole.mkv`]);
    const mkv = fs.readFileSync(`${cut}.whole.mkv`);
    fs.writeFileSync(cut, mkv.subarray(0, Math.floor(mkv.length * 0.6)));
    const bad = await post(cut);
    const good = await post(clip, 'overlay');
    const [b, g] = await Promise.all([poll(bad.id, (j) => j.state === 'failed' || j.state === 'done'), poll(good.id, (j) => j.state === 'failed' || j.state === 'done')]);
    assert.equal(b.state, 'failed');
    assert.match(b.error!, /truncated|damaged|ended after frame/, b.error);
    assert.equal(g.state, 'done', JSON.stringify(g));
    assert.equal(g.frames.done, 100);
    assert.equal((await fetch(`${s!.url}/videos/${bad.id}/result`)).status, 409);
    // Idempotent outputs: the same video segmented again (other segment jobs, the same worker code) writes the same bytes.
    const again = await poll((await post(clip, 'overlay')).id, (j) => j.state === 'done' || j.state === 'failed');
    const bytes = async (j: Job) => Buffer.from(await (await fetch(`${s!.url}${j.links.result}`)).arrayBuffer());
    assert.ok((await bytes(again)).equals(await bytes(g)), 'a video done twice gives the same file');
    // One attempt: a truncated file fails the same way every time (UnrecoverableError, no retries).
    assert.equal((logs.match(new RegExp(`"segment failed","job":"${bad.id}"`, 'g')) ?? []).length, 1, logs);
    // A worker with another model version refuses the queue and exits, naming both bundles.
    const o = worker(other);
    const code = await new Promise<number | null>((r) => o.once('exit', (c) => r(c)));
    assert.equal(code, 2);
    assert.match(logs, new RegExp(`\\[${o.pid} err\\] i2i: The queue ${queue} carries jobs for bundle ${bundleId(bundle).slice(0, 12)}; this worker's bundle .* is ${bundleId(other).slice(0, 12)}`));
    // The list pages over the queue's jobs, newest first; DELETE removes a job and its files.
    const list = await (await fetch(`${s!.url}/videos?limit=2`)).json() as { jobs: Job[]; next?: string };
    assert.deepEqual(list.jobs.map((j) => j.id), [again.id, good.id]);
    assert.ok(list.next);
    assert.equal((await fetch(`${s!.url}/videos/${bad.id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await fetch(`${s!.url}/videos/${bad.id}`)).status, 404);
    assert.ok(!fs.existsSync(path.join(store, 'jobs', bad.id)));
    w.kill('SIGTERM');
    await new Promise((r) => (w.exitCode !== null ? r(0) : w.once('exit', r)));
  });

  it('a camera MOV with PCM audio (MP4 cannot hold it) completes through the fleet: every segment, then the join makes the audio AAC', async () => {
    const w = worker(bundle);
    await ready(w);
    const mov = path.join(root, 'camera.mov');
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '3', '-c:v', 'libx264', '-g', '10', '-pix_fmt', 'yuv420p', '-c:a', 'pcm_s16le', mov]);
    const done = await poll((await post(mov, 'overlay')).id, (j) => j.state === 'done' || j.state === 'failed');
    assert.equal(done.state, 'done', `${JSON.stringify(done)}\n${logs}`);
    assert.deepEqual(done.frames, { done: 30, total: 30 });
    const got = path.join(root, 'camera.out.mp4');
    fs.writeFileSync(got, Buffer.from(await (await fetch(`${s!.url}${done.links.result}`)).arrayBuffer()));
    const codecs = execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name', '-of', 'csv=p=0', got]).toString().trim().split('\n').sort();
    assert.deepEqual(codecs, ['aac,audio', 'h264,video']);
    w.kill('SIGTERM');
    await new Promise((r) => (w.exitCode !== null ? r(0) : w.once('exit', r)));
  });

  it('a worker killed with SIGKILL mid-segment: another takes the segment over (BullMQ stalled-job recovery) and the job completes exactly once, no frame lost or doubled', async () => {
    // Its own server and queue with a slow model, so that a segment takes about a second.
    const q2 = `${queue}-kill`;
    await makeBundle(slow, { height: 128, width: 256, slowLayers: 8, slowChannels: 32 });
    const jobs = await QueueVideoJobs.open({ redis: REDIS, queue: q2, store: new DirStore(store), bundle: bundleId(slow), segmentSeconds: 1 });
    const s2 = await startServer({ bundle: slow, port: 0, workers: 1, log: silent, attach: attachments({ videos: { queue: jobs } }, silent) });
    const spawnW = () => worker(slow, ['--lock-ms', '2000'], q2);
    try {
      const src = path.join(root, 'kill.mp4');
      ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-t', '3', '-c:v', 'libx264', '-g', '10', '-pix_fmt', 'yuv420p', src]);
      const a = spawnW();
      await ready(a);
      const r = await fetch(`${s2.url}/videos?output=mask`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(src) });
      const job = await r.json() as Job;
      // Mid-segment: frames done, the first segment not finished.
      for (const t0 = Date.now(); ;) {
        const j = await (await fetch(`${s2.url}/videos/${job.id}`)).json() as Job;
        if (j.frames.done > 0 && j.frames.done < 10) break;
        if (Date.now() - t0 > 60000 || j.frames.done >= 10) throw new Error(`could not catch the segment mid-way: ${JSON.stringify(j)}\n${logs}`);
        await new Promise((res) => setTimeout(res, 50));
      }
      const kids = fs.readFileSync(`/proc/${a.pid}/task/${a.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      a.kill('SIGKILL');
      await new Promise((res) => a.once('exit', res));
      // Its children (inference workers, ffmpeg) go on their own: the IPC channel or their pipes close.
      for (const t0 = Date.now(); kids.some(alive) && Date.now() - t0 < 10000;) await new Promise((res) => setTimeout(res, 100));
      assert.deepEqual(kids.filter(alive), [], 'no child of the killed worker is left');
      const b = spawnW();
      const done = await (async () => {
        for (const t0 = Date.now(); Date.now() - t0 < 120000;) {
          const j = await (await fetch(`${s2.url}/videos/${job.id}`)).json() as Job;
          if (j.state === 'done' || j.state === 'failed') return j;
          await new Promise((res) => setTimeout(res, 200));
        }
        throw new Error(`never finished:\n${logs}`);
      })();
      assert.equal(done.state, 'done', `${JSON.stringify(done)}\n${logs}`);
      assert.deepEqual(done.frames, { done: 30, total: 30 });
      const stats = (await (await fetch(`${s2.url}/videos/${job.id}/result?stats=1`)).text()).trim().split('\n').map((l) => (JSON.parse(l) as { index: number }).index);
      assert.deepEqual(stats, [...Array(30).keys()], 'every frame once, in order');
      const out = path.join(root, 'kill.mask.mp4');
      fs.writeFileSync(out, Buffer.from(await (await fetch(`${s2.url}/videos/${job.id}/result`)).arrayBuffer()));
      assert.equal((await labelsOf(out)).length, 30);
      assert.equal((logs.match(new RegExp(`"video done","job":"${job.id}"`, 'g')) ?? []).length, 1, 'joined exactly once');
      assert.ok(new RegExp(`\\[${b.pid}\\] .*"segment done","job":"${job.id}","segment":0`).test(logs), 'the killed segment was redone by the other worker');
      b.kill('SIGTERM');
      await new Promise((res) => (b.exitCode !== null ? res(0) : b.once('exit', res)));
    } finally {
      await s2.close();
      await dropQueue(q2);
    }
  });

  it('the command line: i2i serve --redis and i2i worker, both stopped by SIGTERM with exit 0', async () => {
    const q3 = `${queue}-cli`;
    const serve = spawn(process.execPath, [BIN, 'serve', '--bundle', bundle, '--port', '0', '--workers', '1', '--redis', REDIS, '--queue', q3, '--store', store, '--segment-seconds', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    serve.stderr!.on('data', (d) => { err += d; });
    serve.stdout!.resume();
    workers.push(serve);
    const w = worker(bundle, [], q3);
    try {
      let url = '';
      for (const t0 = Date.now(); !url; await new Promise((r) => setTimeout(r, 100))) {
        url = /listening on (http:\/\/\S+) /.exec(err)?.[1] ?? '';
        if (Date.now() - t0 > 60000) throw new Error(`serve did not start: ${err}`);
      }
      for (const t0 = Date.now(); (await fetch(`${url}/readyz`)).status !== 200;) { if (Date.now() - t0 > 60000) throw new Error('not ready'); await new Promise((r) => setTimeout(r, 100)); }
      await ready(w);
      const r = await fetch(`${url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(clip) });
      assert.equal(r.status, 202);
      const { id } = await r.json() as Job;
      for (const t0 = Date.now(); ;) {
        const j = await (await fetch(`${url}/videos/${id}`)).json() as Job;
        if (j.state === 'done') { assert.equal(j.frames.done, 100); break; }
        if (j.state === 'failed' || Date.now() - t0 > 60000) throw new Error(JSON.stringify(j));
        await new Promise((res) => setTimeout(res, 150));
      }
      assert.deepEqual(((await (await fetch(`${url}/videos`)).json()) as { jobs: Job[] }).jobs.map((j) => j.id), [id]);
      const exits = [serve, w].map((p) => new Promise<number | null>((res) => p.once('exit', (c) => res(c))));
      serve.kill('SIGTERM'); w.kill('SIGTERM');
      assert.deepEqual(await Promise.all(exits), [0, 0], err);
    } finally {
      await dropQueue(q3);
    }
  });
});
