import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { readManifest } from '../../core/bundle';
import { ImageError, paletteOf, readIndexedPng } from '../../runtime/image';
import { Engine, EngineError, type EngineResult } from '../../serve/engine/engine';
import { alive, tmpDir } from '../helpers';
import { halves, makeBundle, ROAD, SKY } from './fixture';

const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: EngineError) => e.code ?? e.message);

describe('serve/engine: worker processes, bounded queue, deadlines, batching, faults', function () {
  this.timeout(120000);
  const root = tmpDir();
  const fast = path.join(root, 'fast'), slow = path.join(root, 'slow');
  before(async () => {
    await makeBundle(fast, { tfjs: true });
    // ~0.3-1 s per frame in TFLite on one thread: 8 3x3 convs of 32 channels at 128x256.
    await makeBundle(slow, { height: 128, width: 256, slowLayers: 8, slowChannels: 32 });
  });

  it('segments frames in a worker process: red left is road, blue right is sky, drift is scored', async () => {
    const e = await Engine.start({ bundle: fast, workers: 1 });
    try {
      assert.equal(e.runtime, 'tflite');
      const r = await e.submit(halves(32, 64));
      assert.equal(r.labels.length, 32 * 64);
      assert.equal(r.labels[5 * 64 + 3], ROAD);
      assert.equal(r.labels[5 * 64 + 60], SKY);
      assert.equal(r.batch, 1);
      assert.ok(typeof r.drift === 'number' && r.drift > 1, `half-blue frames are far from reddish calibration frames: drift ${r.drift}`);
      await assert.rejects(e.submit(new Uint8Array(10)), (err: EngineError) => err.code === 'bad-frame');
    } finally { await e.close(); }
  });

  it('encoded images are decoded in the worker to the model input: the labels of the raw frame; one that does not decode fails alone with its 400 and the worker serves on', async () => {
    const raw = halves(32, 64);
    // The same frame as a PNG at twice the size (the worker resizes it to 32x64, as decodeToInput does), and a JPEG cut short.
    const png = await sharp(Buffer.from(raw), { raw: { width: 64, height: 32, channels: 3 } }).resize(128, 64, { kernel: 'nearest' }).png().toBuffer();
    const jpeg = await sharp(Buffer.from(raw), { raw: { width: 64, height: 32, channels: 3 } }).jpeg().toBuffer();
    const cut = jpeg.subarray(0, jpeg.length - 200);
    for (const runtime of ['tflite', 'tfjs'] as const) {
      const e = await Engine.start({ bundle: fast, runtime, workers: 1, maxBatch: 4, maxWaitMs: 200 });
      try {
        const pids = e.pids();
        const want = (await e.submit(raw)).labels;
        // tfjs batches the three into one call: the cut JPEG fails alone.
        const [a, b, c] = await Promise.allSettled([e.submit({ encoded: png, maxPixels: 1e6 }), e.submit({ encoded: cut, maxPixels: 1e6 }), e.submit(raw)]);
        assert.equal(a.status, 'fulfilled', runtime);
        const ra = (a as PromiseFulfilledResult<EngineResult>).value;
        assert.deepEqual(ra.labels, want, `${runtime}: labels of the decoded PNG`);
        assert.ok(ra.decodeMs! > 0, `${runtime}: decoding timed in the worker`);
        assert.equal(b.status, 'rejected');
        const err = (b as PromiseRejectedResult).reason;
        assert.ok(err instanceof ImageError && err.status === 400 && /truncated or corrupt/.test(err.message), `${runtime}: ${err}`);
        assert.equal(c.status, 'fulfilled', runtime);
        // tfjs: one call for the three; the model computed two of them.
        if (runtime === 'tfjs') assert.equal((c as PromiseFulfilledResult<EngineResult>).value.batch, 2, 'one model call, two frames computed');
        // A call whose every image fails: each its 400, and the worker serves on.
        const all = await Promise.allSettled([e.submit({ encoded: cut, maxPixels: 1e6 }), e.submit({ encoded: cut, maxPixels: 1e6 })]);
        assert.ok(all.every((x) => x.status === 'rejected' && x.reason instanceof ImageError && x.reason.status === 400), `${runtime}: ${JSON.stringify(all)}`);
        await assert.rejects(e.submit({ encoded: png, maxPixels: 0 }), /maxPixels must be a positive integer/);
        await assert.rejects(e.submit({ encoded: Buffer.from('not an image'), maxPixels: 1e6 }), (x: ImageError) => x.status === 415 || x.status === 400);
        assert.deepEqual(e.pids(), pids, `${runtime}: the same worker serves on`);
        assert.deepEqual((await e.submit({ encoded: png, maxPixels: 1e6 })).labels, want);
      } finally { await e.close(); }
    }
  });

  it('answer png: an image at the input size comes back as the palette PNG of its labels (bit-exact) instead of them; others as labels; per frame of a batch with a failed decode', async () => {
    const raw = halves(32, 64);
    const atSize = await sharp(Buffer.from(raw), { raw: { width: 64, height: 32, channels: 3 } }).png().toBuffer();
    const larger = await sharp(Buffer.from(raw), { raw: { width: 64, height: 32, channels: 3 } }).resize(128, 64, { kernel: 'nearest' }).png().toBuffer();
    const cut = atSize.subarray(0, atSize.length - 20);
    const palette = paletteOf(readManifest(fast).classes);
    for (const runtime of ['tflite', 'tfjs'] as const) {
      const e = await Engine.start({ bundle: fast, runtime, workers: 1, maxBatch: 5, maxWaitMs: 300 });
      try {
        // tfjs: one call for all five, so each PNG must go to its own frame, past the one that fails.
        const [a, bad, b, c, d] = await Promise.allSettled([e.submit({ encoded: atSize, maxPixels: 1e6, answer: 'png' }), e.submit({ encoded: cut, maxPixels: 1e6, answer: 'png' }),
          e.submit({ encoded: larger, maxPixels: 1e6, answer: 'png' }), e.submit(raw), e.submit({ encoded: atSize, maxPixels: 1e6 })]);
        assert.ok(bad.status === 'rejected' && bad.reason instanceof ImageError && bad.reason.status === 400, `${runtime}: the cut PNG fails alone`);
        const [ra, rb, rc, rd] = [a, b, c, d].map((x) => { assert.equal(x.status, 'fulfilled', `${runtime}: ${JSON.stringify(x)}`); return (x as PromiseFulfilledResult<EngineResult>).value; });
        if (runtime === 'tfjs') assert.equal(ra.batch, 4, 'one model call, four frames computed');
        assert.ok(ra.png && ra.labels === undefined, `${runtime}: the PNG instead of the labels for the frame at the input size`);
        const got = readIndexedPng(Buffer.from(ra.png!));
        assert.deepEqual([got.width, got.height], [64, 32]);
        assert.deepEqual(got.indices, rc.labels, `${runtime}: the PNG's pixels are the frame's labels`);
        assert.deepEqual(got.palette.slice(0, palette.length), palette, `${runtime}: in the bundle's class colours`);
        assert.ok(ra.encodeMs! >= 0, `${runtime}: the worker's encoding is timed`);
        assert.ok(rb.png === undefined && rb.labels, `${runtime}: not at the input size: labels, which the caller resizes`);
        assert.ok(rc.png === undefined && rd.png === undefined, `${runtime}: a raw frame, and an image that did not ask, get labels`);
        assert.deepEqual([rb.labels, rd.labels], [rc.labels, rc.labels], `${runtime}: the same frame, the same labels`);
      } finally { await e.close(); }
    }
  });

  it('tfjs: concurrent frames share a model call (micro-batching), each gets its own labels', async () => {
    const e = await Engine.start({ bundle: fast, runtime: 'tfjs', workers: 1, maxBatch: 4, maxWaitMs: 200 });
    try {
      assert.equal(e.batchLimit, 4);
      const blue = new Uint8Array(32 * 64 * 3).map((_, i) => (i % 3 === 2 ? 255 : 0));
      const frames = [halves(32, 64), blue, halves(32, 64), blue];
      const rs = await Promise.all(frames.map((f) => e.submit(f)));
      assert.deepEqual(rs.map((r) => r.batch), [4, 4, 4, 4]);
      assert.equal(rs[1].labels[0], SKY); assert.equal(rs[0].labels[0], ROAD); assert.equal(rs[3].labels[100], SKY);
    } finally { await e.close(); }
  });

  it('a full queue rejects at once; a frame past its deadline is dropped, never run', async () => {
    const e = await Engine.start({ bundle: slow, workers: 1, maxQueue: 1 });
    const batches: number[] = [];
    e.on('batch', (n: number) => batches.push(n));
    try {
      const f = halves(128, 256);
      const running = e.submit(f);                       // taken by the worker at once
      const late = e.submit(f, { deadline: Date.now() + 30 }); // waits, then expires
      const t0 = Date.now();
      assert.equal(await code(e.submit(f)), 'queue-full');
      assert.ok(Date.now() - t0 < 50, 'queue-full is immediate');
      assert.equal(await code(late), 'deadline');
      assert.equal(await code(running), 'ok');
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(batches, [1], 'the expired frame never reached a worker');
      // An aborted client frees its slot.
      const ac = new AbortController();
      const busy = e.submit(f);
      const gone = e.submit(f, { signal: ac.signal });
      ac.abort();
      assert.equal(await code(gone), 'aborted');
      assert.equal(e.stats().queued, 0);
      await busy;
    } finally { await e.close(); }
  });

  it('a worker killed mid-inference: its frame fails worker-lost at once, a new worker takes over', async () => {
    const e = await Engine.start({ bundle: slow, workers: 1 });
    try {
      const [pid] = e.pids();
      const job = e.submit(halves(128, 256));
      await new Promise((r) => setTimeout(r, 50));
      process.kill(pid, 'SIGKILL');
      assert.equal(await code(job), 'worker-lost');
      const t0 = Date.now();
      while (!e.ready && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 50));
      assert.ok(e.ready, 'a replacement worker came up');
      assert.notEqual(e.pids()[0], pid);
      assert.equal(await code(e.submit(halves(128, 256))), 'ok');
    } finally { await e.close(); }
  });

  it('a hung worker is killed after hangMs, its frame fails, and a replacement comes up', async () => {
    const e = await Engine.start({ bundle: slow, workers: 1, hangMs: 20 });
    try {
      const [pid] = e.pids();
      assert.equal(await code(e.submit(halves(128, 256))), 'worker-lost');
      assert.ok(!alive(pid));
      const t0 = Date.now();
      while (!e.ready && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 50));
      assert.ok(e.ready && e.pids()[0] !== pid, 'replaced');
    } finally { await e.close(); }
  });

  it('the last worker dies with frames queued: they fail unavailable at once; a replacement that cannot load is retried until it can', async () => {
    const dir = path.join(root, 'flaky');
    await makeBundle(dir, { height: 128, width: 256, slowLayers: 8, slowChannels: 32 });
    const e = await Engine.start({ bundle: dir, workers: 1, maxQueue: 4 });
    try {
      const running = e.submit(halves(128, 256)), waiting = e.submit(halves(128, 256));
      await new Promise((r) => setTimeout(r, 30));
      // The operator overwrites the bundle file while serving: replacements fail its sha256 check.
      const file = path.join(dir, 'model.tflite'), good = fs.readFileSync(file);
      fs.writeFileSync(file, Buffer.concat([good, Buffer.from('x')]));
      process.kill(e.pids()[0], 'SIGKILL');
      assert.equal(await code(running), 'worker-lost');
      assert.equal(await code(waiting), 'unavailable');
      assert.equal(await code(e.submit(halves(128, 256))), 'unavailable');
      await new Promise((r) => setTimeout(r, 1200));  // a few failed replacements (backoff 250, 500 ms)
      assert.ok(!e.ready);
      fs.writeFileSync(file, good);
      const waitReady = async () => { for (const t1 = Date.now(); !e.ready && Date.now() - t1 < 30000;) await new Promise((r) => setTimeout(r, 20)); };
      await waitReady();
      assert.ok(e.ready, 'a replacement loaded once the file was good again');
      // A replacement that dies while it loads (a native crash; killed here before it is ready) is replaced too.
      process.kill(e.pids()[0], 'SIGKILL');
      const before = new Set(e.pids());
      let loading: number | undefined;
      for (const t1 = Date.now(); loading === undefined && Date.now() - t1 < 30000;) {
        loading = e.pids().find((p) => !before.has(p));
        await new Promise((r) => setTimeout(r, 2));
      }
      assert.ok(loading !== undefined && !e.ready, 'a replacement is loading');
      process.kill(loading!, 'SIGKILL');
      const t0 = Date.now();
      while (!e.ready && Date.now() - t0 < 30000) await new Promise((r) => setTimeout(r, 50));
      assert.ok(e.ready, 'the pool recovered its worker');
      assert.equal(await code(e.submit(halves(128, 256))), 'ok');
    } finally { await e.close(); }
  });

  it('close() finishes what is in flight, then no worker process is left', async () => {
    const e = await Engine.start({ bundle: slow, workers: 2 });
    const pids = e.pids();
    assert.equal(pids.length, 2);
    const jobs = [e.submit(halves(128, 256)), e.submit(halves(128, 256))];
    await new Promise((r) => setTimeout(r, 20));
    await e.close();
    assert.deepEqual(await Promise.all(jobs.map(code)), ['ok', 'ok']);
    assert.equal(await code(e.submit(halves(128, 256))), 'closed');
    assert.deepEqual(pids.filter(alive), []);
  });

  it('start() fails with the worker\'s reason on a damaged bundle', async () => {
    const bad = path.join(root, 'bad');
    await makeBundle(bad);
    require('node:fs').appendFileSync(path.join(bad, 'model.tflite'), 'x');
    await assert.rejects(Engine.start({ bundle: bad, workers: 1 }), /does not match its manifest/);
  });
});
