import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg';
import { createApp } from '../../serve/app';
import { startServer, type RunningServer } from '../../serve/server';
import { liveFfmpegChildren } from '../../streams/ffmpeg';
import { LocalVideoJobs } from '../../streams/jobs';
import { openApiDocument } from '../../serve/openapi';
import { attachments } from '../../cli/attach';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const frameCount = (file: string) => Number(JSON.parse(execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_streams', '-of', 'json', file]).toString()).streams[0].nb_read_frames);
const hasAudio = (file: string) => execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-show_entries', 'stream=codec_type', '-of', 'csv=p=0', file]).toString().includes('audio');
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
type Job = { id: string; state: string; frames: { done: number; total: number }; error?: string; partial: boolean; input: { name: string; bytes: number }; links: Record<string, string> };

describe('streams: the /videos job API over real HTTP (embedded, in-process jobs)', function () {
  this.timeout(300000);
  const root = tmpDir();
  const bundle = path.join(root, 'bundle'), slow = path.join(root, 'slow');
  const clipFile = path.join(root, 'drive.mp4'), longClip = path.join(root, 'long.mp4');
  const store = path.join(root, 'store'), allowed = path.join(root, 'allowed');
  let s: RunningServer;
  const poll = async (id: string, until: (j: Job) => boolean) => {
    for (const t0 = Date.now(); Date.now() - t0 < 120000;) {
      const j = await (await fetch(`${s.url}/videos/${id}`)).json() as Job;
      if (until(j)) return j;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`job ${id} never got there`);
  };
  before(async () => {
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=22050', '-t', '2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clipFile]);
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=25', '-t', '20', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', longClip]);
    fs.mkdirSync(allowed);
    fs.copyFileSync(clipFile, path.join(allowed, 'cam.mp4'));
    await makeBundle(bundle, { height: 32, width: 64 });
    s = await startServer({ bundle, port: 0, workers: 1, log: silent, attach: attachments({ videos: { store, videoDir: allowed, backlog: 1 } }, silent) });
  });
  after(async () => { await s?.close(); });

  it('round trip: POST the raw video -> 202 {id}; GET its state until done; GET the MP4 (audio kept) and ?stats=1 the JSON lines; the list pages; DELETE removes it', async () => {
    const res = await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4', 'X-Filename': 'drive.mp4' }, body: fs.readFileSync(clipFile) });
    assert.equal(res.status, 202, await res.clone().text());
    const job = await res.json() as Job;
    assert.match(res.headers.get('location')!, new RegExp(`/videos/${job.id}$`));
    assert.ok(['queued', 'running'].includes(job.state));
    assert.deepEqual(job.input, { name: 'drive.mp4', bytes: fs.statSync(clipFile).size });
    const done = await poll(job.id, (j) => j.state !== 'queued' && j.state !== 'running');
    assert.equal(done.state, 'done', JSON.stringify(done));
    assert.deepEqual(done.frames, { done: 20, total: 20 });
    const mp4 = await fetch(`${s.url}${done.links.result}`);
    assert.equal(mp4.status, 200);
    assert.equal(mp4.headers.get('content-type'), 'video/mp4');
    const out = path.join(root, 'result.mp4');
    fs.writeFileSync(out, Buffer.from(await mp4.arrayBuffer()));
    assert.equal(frameCount(out), 20);
    assert.ok(hasAudio(out), 'the audio track is copied');
    // A browser's <video> seeks with Range requests.
    const part = await fetch(`${s.url}${done.links.result}`, { headers: { Range: 'bytes=0-99' } });
    assert.equal(part.status, 206);
    assert.equal((await part.arrayBuffer()).byteLength, 100);
    const stats = await fetch(`${s.url}${done.links.stats}`);
    assert.equal(stats.headers.get('content-type')?.split(';')[0], 'application/x-ndjson');
    const lines = (await stats.text()).trim().split('\n').map((l) => JSON.parse(l) as { index: number });
    assert.deepEqual(lines.map((l) => l.index), [...Array(20).keys()]);
    // Multipart, and a second job to page over.
    const form = new FormData();
    form.append('video', new Blob([fs.readFileSync(clipFile)], { type: 'video/mp4' }), 'second.mp4');
    const second = await (await fetch(`${s.url}/videos`, { method: 'POST', body: form })).json() as Job;
    assert.equal(second.input.name, 'second.mp4');
    await poll(second.id, (j) => j.state === 'done');
    const page1 = await (await fetch(`${s.url}/videos?limit=1`)).json() as { jobs: Job[]; next: string };
    assert.deepEqual(page1.jobs.map((j) => j.id), [second.id], 'newest first');
    const page2 = await (await fetch(`${s.url}${page1.next}`)).json() as { jobs: Job[]; next?: string };
    assert.deepEqual(page2.jobs.map((j) => j.id), [job.id]);
    assert.equal(page2.next, undefined);
    assert.equal((await fetch(`${s.url}/videos/${job.id}`, { method: 'DELETE' })).status, 204);
    assert.equal((await fetch(`${s.url}/videos/${job.id}`)).status, 404);
    assert.equal((await fetch(`${s.url}/videos/${job.id}/result`)).status, 404);
    assert.ok(!fs.existsSync(path.join(store, job.id)), 'its files are gone');
    assert.deepEqual(fs.readdirSync(path.join(store, 'uploads')), [], 'no upload left behind');
  });

  it('bad input gets a clear 4xx and loses nothing: not a video, a wrong type, a path outside --video-dir; a path inside is read in place', async () => {
    const bad = await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: Buffer.from('this is not a video at all') });
    assert.equal(bad.status, 400);
    assert.match((await bad.json() as { error: string }).error, /not a video ffmpeg can read/);
    assert.equal((await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' })).status, 415);
    const outside = await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ path: '../drive.mp4' }) });
    assert.equal(outside.status, 403);
    const inside = await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ path: 'cam.mp4' }) });
    assert.equal(inside.status, 202);
    const j = await poll((await inside.json() as Job).id, (x) => x.state === 'done');
    assert.equal(j.frames.done, 20);
    assert.ok(fs.existsSync(path.join(allowed, 'cam.mp4')), 'a server path is read, never moved or deleted');
    assert.deepEqual(fs.readdirSync(path.join(store, 'uploads')), []);
    // Still serving.
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
  });

  it('bounded: a full backlog is refused with 503 and Retry-After; DELETE cancels a running job, keeping nothing; the OpenAPI document lists every mounted route', async () => {
    const post = () => fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(longClip) });
    const running = await (await post()).json() as Job;
    const waiting = await post();
    assert.equal(waiting.status, 202, 'one place in the backlog');
    const refused = await post();
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    await poll(running.id, (j) => j.state === 'running' && j.frames.done > 0);
    assert.equal((await fetch(`${s.url}/videos/${running.id}`, { method: 'DELETE' })).status, 204);
    const next = (await waiting.json()) as Job;
    await poll(next.id, (j) => j.state === 'running');
    assert.equal((await fetch(`${s.url}/videos/${next.id}`, { method: 'DELETE' })).status, 204);
    assert.ok(!fs.existsSync(path.join(store, running.id)) && !fs.existsSync(path.join(store, next.id)));
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(metrics, /i2i_video_jobs\{state="done"\} [1-9]/);
    // Cancelling stopped their ffmpeg processes.
    for (const t0 = Date.now(); liveFfmpegChildren().length && Date.now() - t0 < 5000;) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(liveFfmpegChildren(), []);
    // Every route mounted (videos and streams) is documented, and nothing else.
    const doc = openApiDocument({ auth: false, version: '0', videos: true, streams: true }) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    const jobs = new LocalVideoJobs({ engine: s.engine, store: path.join(root, 'store2') });
    const app = createApp(s.engine, { videos: { jobs }, streams: [] }).app;
    await jobs.close();
    const mounted = (app.router.stack as { route?: { path: string; methods: Record<string, boolean> } }[])
      .flatMap((l) => (l.route ? Object.keys(l.route.methods).map((m) => `${m.toUpperCase()} ${l.route!.path.replace(/:(\w+)/g, '{$1}')}`) : [])).sort();
    assert.deepEqual(documented, mounted);
    assert.ok(documented.includes('GET /streams/{name}.mjpeg') && documented.includes('DELETE /videos/{id}'));
  });

  it('an upload over the limit sent chunked (no Content-Length) is answered 413, not reset; ids that are not this API\'s are 404', async () => {
    const small = await startServer({ bundle, port: 0, workers: 1, log: silent, attach: attachments({ videos: { store: path.join(root, 'store-small'), maxVideoBytes: 10_000 } }, silent) });
    try {
      const u = new URL(small.url);
      const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
        const req = http.request({ host: u.hostname, port: u.port, path: '/videos', method: 'POST', headers: { 'Content-Type': 'video/mp4', 'Transfer-Encoding': 'chunked' } }, (res) => {
          let b = '';
          res.setEncoding('utf8').on('data', (d) => { b += d; }).on('end', () => resolve([res.statusCode!, b]));
        });
        req.on('error', reject);
        // 64 KiB in 4 KiB chunks, well past the 10 000-byte limit.
        let i = 0;
        const more = () => { if (i++ < 16) req.write(Buffer.alloc(4096), () => setTimeout(more, 5)); else req.end(); };
        more();
      });
      assert.equal(status, 413);
      assert.match(JSON.parse(body).error, /over the server's limit of 10000 bytes/);
      assert.deepEqual(fs.readdirSync(path.join(root, 'store-small', 'uploads')), [], 'nothing of it kept');
      for (const id of ['meta', 'events', '..%2F..%2Fetc']) assert.equal((await fetch(`${small.url}/videos/${id}`)).status, 404, id);
      assert.equal((await fetch(`${small.url}/healthz`)).status, 200);
    } finally {
      await small.close();
    }
  });
});
