/**
 * Drift-driven capture on the fleet (real Redis; skipped in one line without one unless
 * I2I_REQUIRE_REDIS=1): `i2i worker --capture DIR` keeps the drifted frames of the segments it
 * runs, sampled by the video's own pts (a segment's times count from its seek point), as
 * `i2i serve --capture` does for in-process jobs. Its own queue name, removed after.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import IORedis from 'ioredis';
import sharp from 'sharp';
import { bundleId } from '../../core/bundle';
import { ffmpegPath } from '../../core/ffmpeg';
import { QueueVideoJobs } from '../../fleet/jobs';
import { removeQueueKeys } from '../../fleet/queue';
import { DirStore } from '../../fleet/store';
import { startServer, type RunningServer } from '../../serve/server';
import { attachments } from '../../cli/attach';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const REDIS = process.env.I2I_REDIS ?? 'redis://127.0.0.1:6379';
const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function redisAnswers(): Promise<boolean> {
  const r = new IORedis(REDIS, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try { await r.connect(); await r.ping(); return true; } catch { return false; } finally { r.disconnect(); }
}

describe('fleet: i2i worker --capture (real Redis, real ffmpeg)', function () {
  this.timeout(300000);
  const root = tmpDir();
  const queue = `i2i-capture-${process.pid}-${Date.now().toString(36)}`;
  const bundle = path.join(root, 'bundle'), store = path.join(root, 'store'), clip = path.join(root, 'drive.mp4'), cap = path.join(root, 'captured');
  let s: RunningServer | undefined;
  let w: ChildProcess | undefined;
  before(async function () {
    if (!(await redisAnswers())) {
      if (process.env.I2I_REQUIRE_REDIS === '1') throw new Error(`I2I_REQUIRE_REDIS=1 but no Redis answers at ${REDIS}`);
      process.stderr.write(`  (no Redis at ${REDIS}: the fleet capture test is skipped)\n`);
      this.skip();
    }
    await makeBundle(bundle, { height: 32, width: 64 });
    // 0-2 s like the calibration frames (drift ~1.6), 2-6 s not (drift in the hundreds); a keyframe a second.
    ff(['-f', 'lavfi', '-i', 'color=c=0xBF4040:s=160x90:r=10:d=2', '-f', 'lavfi', '-i', 'color=c=0x2040E0:s=160x90:r=10:d=2', '-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10:d=2',
      '-filter_complex', '[0:v][1:v][2:v]concat=n=3:v=1[v]', '-map', '[v]', '-c:v', 'libx264', '-g', '10', '-pix_fmt', 'yuv420p', clip]);
  });
  after(async () => {
    if (w && w.exitCode === null && w.signalCode === null) { w.kill('SIGKILL'); await new Promise((r) => w!.once('exit', r)); }
    await s?.close();
    if (await redisAnswers()) { const r = new IORedis(REDIS); try { await removeQueueKeys(r, queue); } finally { r.disconnect(); } }
  });

  it('the worker keeps the segments\' frames with drift >= --capture-drift, one per --capture-every seconds of each segment, named by job, segment and the video\'s pts', async () => {
    const jobs = await QueueVideoJobs.open({ redis: REDIS, queue, store: new DirStore(store), bundle: bundleId(bundle), segmentSeconds: 2 });
    s = await startServer({ bundle, port: 0, workers: 1, log: silent, attach: attachments({ videos: { queue: jobs } }, silent) });
    w = spawn(process.execPath, [BIN, 'worker', '--bundle', bundle, '--redis', REDIS, '--queue', queue, '--store', store, '--workers', '1',
      '--capture', cap, '--capture-drift', '10', '--capture-every', '1', '--capture-per-min', '1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    w.stdout!.on('data', (d) => { logs += d; });
    w.stderr!.on('data', (d) => { logs += d; });
    const exited = new Promise<number | null>((r) => w!.once('exit', (c) => r(c)));
    for (const t0 = Date.now(); !/worker ready/.test(logs); await new Promise((r) => setTimeout(r, 100))) if (Date.now() - t0 > 60000 || w.exitCode !== null) throw new Error(`worker not ready: ${logs}`);
    const r = await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4', 'X-Filename': 'drive.mp4' }, body: fs.readFileSync(clip) });
    assert.equal(r.status, 202, await r.clone().text());
    const id = (await r.json() as { id: string }).id;
    for (const t0 = Date.now(); ; await new Promise((res) => setTimeout(res, 150))) {
      const j = await (await fetch(`${s.url}/videos/${id}`)).json() as { state: string };
      if (j.state === 'done') break;
      if (j.state === 'failed' || Date.now() - t0 > 90000) throw new Error(`${JSON.stringify(j)}\n${logs}`);
    }
    const stats = (await (await fetch(`${s.url}/videos/${id}/result?stats=1`)).text()).trim().split('\n').map((l) => JSON.parse(l) as { pts: number; drift: number });
    // The worker writes its captured frames by the time it has stopped.
    w.kill('SIGTERM');
    assert.equal(await exited, 0, logs);
    const files = fs.readdirSync(cap).filter((f) => f.endsWith('.png')).sort();
    const lines = fs.readFileSync(path.join(cap, 'capture.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { file: string; drift: number; pts: number; source: string; version: string });
    assert.deepEqual(lines.map((l) => l.file).sort(), files, 'the index lists exactly the frames on disk');
    // Segments [0, 2), [2, 4), [4, 6): the first has no drifted frame; each other keeps its first and the one a second later.
    assert.deepEqual(lines.map((l) => l.pts).sort((x, y) => x - y), [2, 3, 4, 5], JSON.stringify(lines));
    for (const l of lines) {
      assert.equal(l.drift, stats.find((x) => Math.abs(x.pts - l.pts) < 1e-6)!.drift, 'the drift of that frame of the video');
      assert.equal(l.source, `video job ${id} segment ${l.pts < 4 ? 1 : 2} pts ${l.pts.toFixed(3)}`);
      assert.equal(l.version, s.engine.model.version);
      const m = await sharp(path.join(cap, l.file)).metadata();
      assert.deepEqual([m.format, m.width, m.height], ['png', 160, 90]);
    }
  });
});
