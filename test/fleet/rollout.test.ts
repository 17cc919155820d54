/**
 * A model rollout on the fleet (real Redis on 127.0.0.1:6379, I2I_REDIS overrides; skipped in one
 * line without one unless I2I_REQUIRE_REDIS=1): an API node that reloads to a new bundle queues new
 * videos for it, and the videos queued before still complete on workers of the old bundle; a worker
 * of a bundle rolled out stops once its segments are done; a video whose bundle nobody runs any
 * more fails with the reason instead of answering "queued" for ever. Its own queue name, removed after.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import IORedis from 'ioredis';
import { bundleId } from '../../core/bundle';
import { ffmpegPath } from '../../core/ffmpeg';
import { QueueVideoJobs } from '../../fleet/jobs';
import { removeQueueKeys } from '../../fleet/queue';
import { DirStore } from '../../fleet/store';
import { startFleetWorker, type FleetWorker } from '../../fleet/worker';
import { startServer, type RunningServer } from '../../serve/server';
import { attachments } from '../../cli/attach';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const REDIS = process.env.I2I_REDIS ?? 'redis://127.0.0.1:6379';
const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
type Job = { id: string; state: string; frames: { done: number; total: number }; error?: string };

async function redisAnswers(): Promise<boolean> {
  const r = new IORedis(REDIS, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try { await r.connect(); await r.ping(); return true; } catch { return false; } finally { r.disconnect(); }
}

describe('fleet: a model rollout does not strand the videos queued for the old bundle (real Redis)', function () {
  this.timeout(300000);
  const root = tmpDir();
  const queue = `i2i-rollout-${process.pid}-${Date.now().toString(36)}`;
  const bundles = path.join(root, 'bundles'), a = path.join(bundles, 'a'), b = path.join(bundles, 'b');
  const store = path.join(root, 'store'), clip = path.join(root, 'drive.mp4'), adminFile = path.join(root, 'admin.txt');
  // Heartbeats every second (a server or worker is gone after 3 s); bundles retired 15 s after their
  // last sign of life (long enough for the first test's old video to wait for its worker, loaded or not).
  const beat = 1000, retireAfterMs = 15000;
  const logs: string[] = [];
  const workers: FleetWorker[] = [];
  let s: RunningServer | undefined;
  let jobs: QueueVideoJobs | undefined;

  const worker = async (bundle: string, name: string) => {
    const w = await startFleetWorker({ bundle, redis: REDIS, queue, store: new DirStore(store), workers: 1, heartbeatMs: beat, log: (msg, extra) => logs.push(JSON.stringify({ worker: name, msg, ...extra })) });
    workers.push(w);
    return w;
  };
  const get = async (id: string) => {
    // Bounded, not timed: a GET that hangs (e.g. on a Redis that does not answer) fails here; a
    // slow answer on a loaded machine does not (the server bounds its own Redis calls at 5 s).
    const r = await fetch(`${s!.url}/videos/${id}`, { signal: AbortSignal.timeout(30000) })
      .catch((e: Error) => { throw e.name === 'TimeoutError' ? new Error(`GET /videos/${id} did not answer within 30 s`) : e; });
    assert.equal(r.status, 200, await r.clone().text());
    return await r.json() as Job;
  };
  const poll = async (id: string, until: (j: Job) => boolean, ms = 90000) => {
    for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 150))) {
      const j = await get(id);
      if (until(j)) return j;
    }
    throw new Error(`job ${id} never got there: ${JSON.stringify(await get(id))}\n${logs.join('\n')}`);
  };
  const post = async () => {
    const r = await fetch(`${s!.url}/videos?output=mask`, { method: 'POST', headers: { 'Content-Type': 'video/mp4', 'X-Filename': 'drive.mp4' }, body: fs.readFileSync(clip) });
    assert.equal(r.status, 202, await r.clone().text());
    return (await r.json() as Job).id;
  };
  const reload = async (name: string) => {
    const r = await fetch(`${s!.url}/v1/model/reload`, { method: 'POST', headers: { Authorization: 'Bearer admin-secret', 'Content-Type': 'application/json' }, body: JSON.stringify({ bundle: name }) });
    assert.equal(r.status, 200, await r.clone().text());
  };
  const fractions = async (id: string) => (await (await fetch(`${s!.url}/videos/${id}/result?stats=1`)).text()).trim().split('\n').map((l) => JSON.stringify((JSON.parse(l) as { fractions: object }).fractions));
  const doneBy = (id: string) => [...new Set(logs.map((l) => JSON.parse(l) as { worker: string; msg: string; job?: string }).filter((l) => l.msg === 'segment done' && l.job === id).map((l) => l.worker))];

  before(async function () {
    if (!(await redisAnswers())) {
      if (process.env.I2I_REQUIRE_REDIS === '1') throw new Error(`I2I_REQUIRE_REDIS=1 but no Redis answers at ${REDIS}`);
      process.stderr.write(`  (no Redis at ${REDIS}: the rollout tests are skipped)\n`);
      this.skip();
    }
    // 2 s at 10 frames/s, a keyframe every 10 frames: two 1 s segments.
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-t', '2', '-c:v', 'libx264', '-g', '10', '-pix_fmt', 'yuv420p', clip]);
    // Two versions of one contract: b labels road where a labels sky.
    await makeBundle(a, { height: 32, width: 64 });
    await makeBundle(b, { height: 32, width: 64, swapped: true });
    fs.writeFileSync(adminFile, 'admin-secret\n');
    jobs = await QueueVideoJobs.open({ redis: REDIS, queue, store: new DirStore(store), bundle: bundleId(a), segmentSeconds: 1, heartbeatMs: beat, retireAfterMs });
    s = await startServer({ bundle: a, bundleRoot: bundles, adminTokenFile: adminFile, port: 0, workers: 1, log: silent, attach: attachments({ videos: { queue: jobs } }, silent) });
  });
  after(async () => {
    for (const w of workers) await w.close().catch(() => undefined);
    await s?.close();
    if (await redisAnswers()) {
      const r = new IORedis(REDIS);
      try {
        await removeQueueKeys(r, queue);
        assert.deepEqual(await r.keys(`bull:${queue}*`), [], 'the test queues are gone');
      } finally { r.disconnect(); }
    }
  });

  it('after a reload the old bundle\'s queued video completes on the old bundle\'s workers, new videos on the new one\'s; the old workers stop once drained', async () => {
    const old = await post();
    assert.equal((await get(old)).state, 'queued');
    await reload('b');
    const fresh = await post();
    // A worker of the new bundle starts (the queue holds jobs of the old one) and takes only the new video.
    const wb = await worker(b, 'b');
    assert.equal((await poll(fresh, (j) => j.state === 'done' || j.state === 'failed')).state, 'done', logs.join('\n'));
    assert.equal((await get(old)).state, 'queued', 'the old video waits for the old bundle, not run by the new one');
    // A worker of the old bundle is still welcome while videos wait for it, and finishes them.
    const wa = await worker(a, 'a');
    const oldDone = await poll(old, (j) => j.state === 'done' || j.state === 'failed');
    assert.equal(oldDone.state, 'done', JSON.stringify(oldDone));
    assert.deepEqual(oldDone.frames, { done: 20, total: 20 });
    assert.deepEqual(doneBy(old), ['a'], 'the old video was segmented by the old bundle');
    assert.deepEqual(doneBy(fresh), ['b'], 'the new video by the new one');
    assert.notDeepEqual(await fractions(old), await fractions(fresh), 'two models, two results');
    // Drained, and no server serves its bundle: the old worker stops by itself and says why.
    const why = await Promise.race([wa.refused, new Promise<Error>((r) => setTimeout(() => r(new Error('the old worker did not stop')), 20000))]);
    assert.match(why.message, new RegExp(`carries jobs for bundle ${bundleId(b).slice(0, 12)}; this worker's bundle .* is ${bundleId(a).slice(0, 12)}, which no server serves and no segment waits for, so it stopped taking jobs`));
    const metrics = await (await fetch(`${s!.url}/metrics`)).text();
    assert.match(metrics, /i2i_queue_segments_done 4\b/, 'segments of both bundles counted');
    assert.match(metrics, /i2i_video_jobs\{state="done"\} 2/);
    // The new bundle's worker was never asked to stop.
    assert.equal(await Promise.race([wb.refused.then(() => 'refused'), new Promise((r) => setTimeout(() => r('running'), 100))]), 'running');
  });

  it('a video queued for a bundle no server serves and no worker runs any more fails with the reason (not "queued" for ever); the served bundle\'s worker is not touched', async () => {
    // Back to a for one video, then b again; a's workers are gone (the previous test's stopped).
    await reload('a');
    const stranded = await post();
    await reload('b');
    const t0 = Date.now();
    const j = await poll(stranded, (x) => x.state !== 'queued' && x.state !== 'running', 60000);
    assert.equal(j.state, 'failed', JSON.stringify(j));
    assert.match(j.error!, new RegExp(`No worker runs bundle ${bundleId(a).slice(0, 12)}, the model this video was queued for, and no server queues for it any more .*Submit the video again: it runs on the bundle served now \\(${bundleId(b).slice(0, 12)}\\)`));
    assert.ok(Date.now() - t0 >= retireAfterMs - 2000 && Date.now() - t0 < retireAfterMs + 20000, `failed after ${Date.now() - t0} ms (retired ${retireAfterMs} ms after the bundle was last served)`);
    const result = await fetch(`${s!.url}/videos/${stranded}/result`);
    assert.equal(result.status, 409);
    assert.match((await result.json() as { error: string }).error, /is failed: No worker runs bundle/);
    // The served bundle goes on: a new video completes on b's worker.
    const next = await post();
    assert.equal((await poll(next, (x) => x.state === 'done' || x.state === 'failed')).state, 'done');
    assert.deepEqual(doneBy(next), ['b']);
    // A restarted server with the new bundle opens the queue that held the old bundle's jobs (it used to refuse it).
    const again = await QueueVideoJobs.open({ redis: REDIS, queue, store: new DirStore(store), bundle: bundleId(b), heartbeatMs: beat, retireAfterMs });
    await again.close();
  });
});
