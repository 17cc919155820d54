/**
 * Benchmark (not a test): scale-out on BullMQ, `npm run bench:scale` (needs Redis; I2I_REDIS, default
 * redis://127.0.0.1:6379).
 * - The same clips (dashcam-like, 1024x512 at 30 frames/s, from the synthetic target scenes) through
 *   `i2i serve --redis` and 1, 2 and 4 `i2i worker` processes (1 inference worker of 1 thread each)
 *   on this 2-core machine: wall time from the first POST to the last job done, frames/s, speed-up.
 * - The queue's own cost per segment: the same flow shape (a join over segment children) with
 *   processors that do nothing, so only BullMQ and Redis are timed.
 * Model: the small dilated DenseNet at 256x512 int8, built as bench:video builds it (reused from
 * --bundles when that directory has it).
 *
 *   npm run bench:scale -- [--out runs/bench-scale] [--bundles runs/bench-video] [--quick]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FlowProducer, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { bundleId } from '../core/bundle';
import { ffmpegPath } from '../core/ffmpeg';
import { listImages } from '../convert/frames';
import { QueueVideoJobs } from '../fleet/jobs';
import { removeQueueKeys } from '../fleet/queue';
import { DirStore } from '../fleet/store';
import { startServer } from '../serve/server';
import { attachments } from '../cli/attach';
import { prepareBundles } from './bundles';

const { values } = parseArgs({ options: { out: { type: 'string', default: 'runs/bench-scale' }, bundles: { type: 'string', default: 'runs/bench-video' }, quick: { type: 'boolean' }, 'segment-seconds': { type: 'string', default: '2' } } });
const OUT = path.resolve(values.out!);
const QUICK = Boolean(values.quick);
const REDIS = process.env.I2I_REDIS ?? 'redis://127.0.0.1:6379';
const log = (l: string) => process.stderr.write(`[bench:scale] ${l}\n`);
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const table: string[] = [];
const emit = (l = '') => { table.push(l); process.stdout.write(l + '\n'); };
const BIN = path.resolve(__dirname, '../bin/i2i.js');

function makeClips(data: string, n: number, seconds: number): string[] {
  const frames = listImages(path.join(data, 'target', 'leftImg8bit', 'val'), 40);
  return Array.from({ length: n }, (_, i) => {
    const file = path.join(OUT, `clip${i}-${seconds}s.mp4`);
    if (fs.existsSync(file)) return file;
    const list = `${file}.txt`;
    // Each scene held for 3 frames, the 40 scenes looped to fill the clip, each clip from another starting scene.
    const order = Array.from({ length: Math.ceil(seconds * 10) }, (_, k) => frames[(k + 7 * i) % frames.length]);
    fs.writeFileSync(list, order.map((f) => `file '${f}'\nduration 0.1\n`).join('') + `file '${order[order.length - 1]}'\n`);
    execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=44100',
      '-vf', 'scale=1024:512,fps=30', '-t', String(seconds), '-g', '30', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', file]);
    fs.rmSync(list);
    return file;
  });
}

async function run(bundle: string, clips: string[], workers: number, redis: IORedis): Promise<{ seconds: number; frames: number; segments: number }> {
  const queue = `i2i-bench-${process.pid}-${workers}`;
  await removeQueueKeys(redis, queue);
  const store = path.join(OUT, `store-${workers}`);
  fs.rmSync(store, { recursive: true, force: true });
  const jobs = await QueueVideoJobs.open({ redis: REDIS, queue, store: new DirStore(store), bundle: bundleId(bundle), segmentSeconds: Number(values['segment-seconds']) });
  const s = await startServer({ bundle, port: 0, workers: 1, log: silent, attach: attachments({ videos: { queue: jobs } }, silent) });
  const procs: ChildProcess[] = [];
  try {
    let out = '';
    for (let i = 0; i < workers; i++) {
      const p = spawn(process.execPath, [BIN, 'worker', '--bundle', bundle, '--redis', REDIS, '--queue', queue, '--store', store, '--workers', '1', '--threads', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
      p.stdout!.on('data', (d) => { out += d; });
      procs.push(p);
    }
    for (const t0 = Date.now(); (out.match(/"worker ready"/g) ?? []).length < workers;) { if (Date.now() - t0 > 120000) throw new Error(`workers not ready: ${out}`); await new Promise((r) => setTimeout(r, 100)); }
    const t0 = performance.now();
    const ids = await Promise.all(clips.map(async (c) => ((await (await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(c) })).json()) as { id: string }).id));
    let frames = 0;
    for (const id of ids) {
      for (;;) {
        const j = await (await fetch(`${s.url}/videos/${id}`)).json() as { state: string; frames: { done: number }; error?: string };
        if (j.state === 'failed') throw new Error(`job ${id} failed: ${j.error}`);
        if (j.state === 'done') { frames += j.frames.done; break; }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    return { seconds, frames, segments: (out.match(/"segment done"/g) ?? []).length };
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(0) : p.once('exit', r)))));
    await s.close();
    await removeQueueKeys(redis, queue);
  }
}

/** BullMQ's own cost: flows of `per` children with processors that return at once. */
async function queueOverhead(redis: IORedis, flows: number, per: number): Promise<{ perSegmentMs: number; addMs: number }> {
  const queue = `i2i-bench-overhead-${process.pid}`;
  await removeQueueKeys(redis, queue);
  const conn = () => new IORedis(REDIS, { maxRetriesPerRequest: null });
  const producer = new FlowProducer({ connection: conn() });
  let joined = 0;
  const seg = new Worker(`${queue}-segments`, async () => ({ frames: 1 }), { connection: conn(), concurrency: 1 });
  const join = new Worker(queue, async (job) => { await job.getChildrenValues(); joined++; return {}; }, { connection: conn(), concurrency: 1 });
  await Promise.all([seg.waitUntilReady(), join.waitUntilReady()]);
  const t0 = performance.now();
  let addMs = 0;
  for (let f = 0; f < flows; f++) {
    const a = performance.now();
    await producer.add({ name: 'join', queueName: queue, data: { f }, children: Array.from({ length: per }, (_, i) => ({ name: 'segment', queueName: `${queue}-segments`, data: { i }, opts: { attempts: 3, failParentOnFailure: true } })) });
    addMs += performance.now() - a;
  }
  while (joined < flows) await new Promise((r) => setTimeout(r, 5));
  const total = performance.now() - t0;
  await Promise.all([seg.close(), join.close(), producer.close()]);
  await removeQueueKeys(redis, queue);
  return { perSegmentMs: total / (flows * per), addMs: addMs / flows };
}

async function main(): Promise<void> {
  fs.mkdirSync(OUT, { recursive: true });
  const redis = new IORedis(REDIS, { maxRetriesPerRequest: 1 });
  await redis.ping();
  const given = path.resolve(values.bundles!);
  const bundle = fs.existsSync(path.join(given, 'bundle-small', 'manifest.json')) ? path.join(given, 'bundle-small')
    : (await prepareBundles({ out: OUT, skipLarge: true, quick: QUICK, log })).small.bundle;
  const data = fs.existsSync(path.join(given, 'data')) ? path.join(given, 'data') : path.join(OUT, 'data');
  const clips = makeClips(data, 4, QUICK ? 4 : 10);
  log(`bundle ${bundle}, ${clips.length} clips of ${QUICK ? 4 : 10} s, segments of ${values['segment-seconds']} s`);
  emit(`bench:scale on ${new Date().toISOString().slice(0, 10)}: ${clips.length} clips of ${QUICK ? 4 : 10} s (1024x512, 30 frames/s, audio), --segment-seconds ${values['segment-seconds']}, small DenseNet 256x512 int8, i2i worker processes of 1 inference worker x 1 thread, this 2-core machine, Redis on loopback`);
  emit();
  emit('| worker processes | segments | frames | wall (s) | frames/s | speed-up over 1 |');
  emit('|---|---|---|---|---|---|');
  let base = 0;
  for (const n of [1, 2, 4]) {
    log(`${n} worker process(es)`);
    const r = await run(bundle, clips, n, redis);
    const fps = r.frames / r.seconds;
    base ||= fps;
    emit(`| ${n} | ${r.segments} | ${r.frames} | ${r.seconds.toFixed(1)} | ${fps.toFixed(1)} | ${(fps / base).toFixed(2)}x |`);
  }
  log('queue overhead (processors that do nothing)');
  const o = await queueOverhead(redis, QUICK ? 10 : 50, 10);
  emit();
  emit(`Queue overhead: ${o.perSegmentMs.toFixed(2)} ms per segment (flows of 10 segments and a join, processors that return at once, 1 worker of each), adding one flow ${o.addMs.toFixed(1)} ms.`);
  fs.writeFileSync(path.join(OUT, 'table.md'), table.join('\n') + '\n');
  log(`wrote ${path.join(OUT, 'table.md')}`);
  redis.disconnect();
}

main().then(() => process.exit(0), (e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exit(1); });
