import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import sharp from 'sharp';
import { readIndexedPng } from '../../runtime/image';
import { createApp } from '../../serve/app';
import { openApiDocument } from '../../serve/openapi';
import { PostProcessor } from '../../serve/postprocess';
import { startServer, type RunningServer } from '../../serve/server';
import { alive, tmpDir } from '../helpers';
import { makeBundle, ROAD, SKY } from './fixture';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A PNG w x h: red left half, blue right half. */
async function halvesPng(w: number, h: number): Promise<Buffer> {
  const p = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) p[(y * w + x) * 3 + (x < w / 2 ? 0 : 2)] = 255;
  return sharp(p, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

const post = (url: string, body: Buffer | string | FormData, headers: Record<string, string> = {}) => fetch(url, { method: 'POST', body, headers });

describe('serve: POST /segment over real HTTP on loopback', function () {
  this.timeout(120000);
  const root = tmpDir();
  const fast = path.join(root, 'fast'), slow = path.join(root, 'slow'), tfjsBundle = path.join(root, 'tfjs');
  let s: RunningServer;
  before(async () => {
    await makeBundle(fast);
    await makeBundle(tfjsBundle, { tfjs: true, tflite: false });
    await makeBundle(slow, { height: 128, width: 256, slowLayers: 8, slowChannels: 32 });
    s = await startServer({ bundle: fast, port: 0, workers: 1, maxBytes: 200_000, maxPixels: 1_000_000, log: silent });
  });
  after(async () => { await s?.close(); });

  it('png: a palette PNG of trainIds at the frame\'s own size, lined up with the frame', async () => {
    const r = await post(`${s.url}/segment`, await halvesPng(322, 182), { 'Content-Type': 'image/png', 'X-Request-Id': 'abc-123' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'image/png');
    assert.equal(r.headers.get('x-request-id'), 'abc-123');
    assert.match(r.headers.get('server-timing')!, /decode;dur=[\d.]+, queue;dur=[\d.]+, infer;dur=[\d.]+, encode;dur=[\d.]+, total;dur=/);
    const png = readIndexedPng(Buffer.from(await r.arrayBuffer()));
    assert.equal(png.width, 322); assert.equal(png.height, 182);
    assert.deepEqual(png.palette[ROAD], [128, 64, 128]);
    // Every row: road up to the middle, sky after it; the boundary within a pixel of the frame's.
    for (const y of [0, 91, 181]) {
      const row = png.indices.subarray(y * 322, (y + 1) * 322);
      const firstSky = row.indexOf(SKY);
      assert.ok(Math.abs(firstSky - 161) <= 1, `row ${y}: sky starts at ${firstSky}`);
      assert.ok(row.subarray(0, firstSky).every((v) => v === ROAD) && row.subarray(firstSky).every((v) => v === SKY));
    }
  });

  it('png of a frame at the input size: encoded in the inference worker (no post-processing job), the labels answer\'s pixels in the class colours', async () => {
    // The fixture's input is 32x64: this frame needs no resize, so its PNG comes from the worker.
    const frame = await halvesPng(64, 32);
    const jobs: string[] = [];
    const run = PostProcessor.prototype.run;
    PostProcessor.prototype.run = function (job) { jobs.push(job.format); return run.call(this, job); };
    try {
      const r = await post(`${s.url}/segment`, frame, { 'Content-Type': 'image/png' });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'image/png');
      assert.match(r.headers.get('server-timing')!, /encode;dur=[\d.]+/);
      const png = readIndexedPng(Buffer.from(await r.arrayBuffer()));
      assert.deepEqual(jobs, [], 'the PNG needed no post-processing thread');
      const l = await post(`${s.url}/segment?format=labels`, frame, { 'Content-Type': 'image/png' });
      assert.equal(l.status, 200);
      assert.deepEqual(jobs, ['labels'], 'the labels answer still goes through one');
      assert.deepEqual([png.width, png.height], [64, 32]);
      assert.deepEqual(png.indices, new Uint8Array(await l.arrayBuffer()));
      assert.deepEqual(png.palette[ROAD], [128, 64, 128]);
      assert.equal(png.indices[5 * 64 + 3], ROAD);
      assert.equal(png.indices[5 * 64 + 60], SKY);
    } finally { PostProcessor.prototype.run = run; }
  });

  it('EXIF orientation: a JPEG stored 40x20 with orientation 6 is segmented upright (20x40, red on top)', async () => {
    const w = 40, h = 20, p = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) p[(y * w + x) * 3 + (x < w / 2 ? 0 : 2)] = 255;
    const jpg = await sharp(p, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const r = await post(`${s.url}/segment?format=labels`, jpg, { 'Content-Type': 'image/jpeg' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-width'), '20'); assert.equal(r.headers.get('x-height'), '40');
    const labels = new Uint8Array(await r.arrayBuffer());
    assert.equal(labels.length, 20 * 40);
    // Rotated clockwise: the stored left (red) half is now the top.
    assert.equal(labels[2 * 20 + 10], ROAD);
    assert.equal(labels[37 * 20 + 10], SKY);
  });

  it('json: sizes, classes, fractions, the mask, timings and drift; multipart field "image" works too', async () => {
    const form = new FormData();
    form.append('image', new Blob([await halvesPng(100, 50)], { type: 'image/png' }), 'frame.png');
    const r = await post(`${s.url}/segment?format=json`, form);
    assert.equal(r.status, 200);
    const j = await r.json() as { width: number; height: number; classes: { name: string }[]; fractions: Record<string, number>; mask: string; timings: Record<string, number>; drift: number };
    assert.equal(j.width, 100); assert.equal(j.height, 50);
    assert.equal(j.classes.length, 19);
    assert.ok(Math.abs(j.fractions.road - 0.5) < 0.02 && Math.abs(j.fractions.sky - 0.5) < 0.02, JSON.stringify(j.fractions));
    assert.equal(readIndexedPng(Buffer.from(j.mask, 'base64')).width, 100);
    for (const k of ['decode', 'queue', 'infer', 'encode']) assert.ok(j.timings[k] >= 0, k);
    assert.ok(typeof j.drift === 'number' && j.drift > 1, `half-blue is far from the reddish calibration: ${j.drift}`);
    assert.equal((j as { overlay?: string }).overlay, undefined, 'no overlay unless asked');
    // overlay=1: the overlay JPEG of the same inference in the JSON, at the frame's size, at alpha.
    const o = await post(`${s.url}/segment?format=json&overlay=1&alpha=1`, await halvesPng(64, 32), { 'Content-Type': 'image/png' });
    assert.equal(o.status, 200);
    const jo = await o.json() as { fractions: Record<string, number>; overlay: string };
    const { data, info } = await sharp(Buffer.from(jo.overlay, 'base64')).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.format, info.width, info.height], ['raw', 64, 32]);
    const px = (x: number) => Array.from(data.subarray((16 * 64 + x) * 3, (16 * 64 + x) * 3 + 3));
    px(10).forEach((v, i) => assert.ok(Math.abs(v - [128, 64, 128][i]) < 12, `road px ${px(10)}`));
    px(54).forEach((v, i) => assert.ok(Math.abs(v - [70, 130, 180][i]) < 12, `sky px ${px(54)}`));
  });

  it('overlay: a JPEG of the frame blended with the class colours (alpha)', async () => {
    const r = await post(`${s.url}/segment?format=overlay&alpha=1`, await halvesPng(64, 32), { 'Content-Type': 'image/png' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'image/jpeg');
    const { data, info } = await sharp(Buffer.from(await r.arrayBuffer())).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, 64); assert.equal(info.height, 32);
    const px = (x: number, y: number) => Array.from(data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3));
    // alpha 1: the colours of road (128,64,128) and sky (70,130,180), within JPEG error.
    px(10, 16).forEach((v, i) => assert.ok(Math.abs(v - [128, 64, 128][i]) < 12, `road px ${px(10, 16)}`));
    px(54, 16).forEach((v, i) => assert.ok(Math.abs(v - [70, 130, 180][i]) < 12, `sky px ${px(54, 16)}`));
  });

  it('bad input: the right 4xx with {error, hint}, the process and its worker unharmed, no worker leaked', async () => {
    const pids = s.engine.pids();
    const png = await halvesPng(64, 32);
    const cases: [string, () => Promise<Response>, number, RegExp][] = [
      ['text/plain', () => post(`${s.url}/segment`, 'hello', { 'Content-Type': 'text/plain' }), 415, /text\/plain/],
      ['no type', () => fetch(`${s.url}/segment`, { method: 'POST', body: new Uint8Array(png) }), 415, /Content-Type/],
      ['empty', () => post(`${s.url}/segment`, Buffer.alloc(0), { 'Content-Type': 'image/png' }), 400, /empty/],
      ['truncated', () => post(`${s.url}/segment`, png.subarray(0, png.length >> 1), { 'Content-Type': 'image/png' }), 400, /truncated|corrupt/],
      ['garbage', () => post(`${s.url}/segment`, Buffer.from('GIF89a not really'), { 'Content-Type': 'image/jpeg' }), 415, /./],
      ['too many bytes', () => post(`${s.url}/segment`, Buffer.alloc(300_000, 1), { 'Content-Type': 'image/jpeg' }), 413, /limit/],
      ['too many pixels', async () => post(`${s.url}/segment`, await sharp({ create: { width: 2000, height: 1000, channels: 3, background: 'red' } }).png().toBuffer(), { 'Content-Type': 'image/png' }), 413, /pixel/i],
      ['bad format', () => post(`${s.url}/segment?format=gif`, png, { 'Content-Type': 'image/png' }), 400, /format/],
      ['bad alpha', () => post(`${s.url}/segment?format=overlay&alpha=2`, png, { 'Content-Type': 'image/png' }), 400, /alpha/],
      ['overlay flag without json', () => post(`${s.url}/segment?format=png&overlay=1`, png, { 'Content-Type': 'image/png' }), 400, /overlay=1 goes with format=json/],
      ['bad overlay flag', () => post(`${s.url}/segment?format=json&overlay=yes`, png, { 'Content-Type': 'image/png' }), 400, /overlay must be 1 or 0/],
      ['bad timeout', () => post(`${s.url}/segment`, png, { 'Content-Type': 'image/png', 'X-Timeout-Ms': 'soon' }), 400, /X-Timeout-Ms/],
      ['multipart without image', () => { const f = new FormData(); f.append('frame', 'x'); return post(`${s.url}/segment`, f); }, 400, /"image"/],
      ['multipart text part', () => { const f = new FormData(); f.append('image', new Blob(['x'], { type: 'text/html' }), 'a.html'); return post(`${s.url}/segment`, f); }, 415, /text\/html/],
      ['broken multipart', () => post(`${s.url}/segment`, '--xx\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\nabc', { 'Content-Type': 'multipart/form-data; boundary=xx' }), 400, /./],
      ['unknown route', () => fetch(`${s.url}/nope`), 404, /route/],
    ];
    for (const [name, send, status, msg] of cases) {
      const r = await send();
      assert.equal(r.status, status, `${name}: ${r.status}`);
      const j = await r.json() as { error: string; hint: string };
      assert.match(j.error, msg, name);
      assert.ok(j.hint.length > 0, `${name} has a hint`);
    }
    // A flood of garbage in parallel (the PNG cut anywhere before its IEND chunk): only 4xx, never 5xx.
    const flood = await Promise.all(Array.from({ length: 40 }, (_, i) => post(`${s.url}/segment`, Buffer.from(png.subarray(0, 1 + Math.floor((i * (png.length - 14)) / 39))), { 'Content-Type': 'image/png' }).then((r) => r.status)));
    assert.ok(flood.every((c) => c >= 400 && c < 500), `flood statuses ${[...new Set(flood)]}`);
    assert.deepEqual(s.engine.pids(), pids, 'the same worker, none added or lost');
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    assert.equal((await post(`${s.url}/segment`, png, { 'Content-Type': 'image/png' })).status, 200);
  });

  it('/v1/model, /metrics and /readyz; the OpenAPI document lists exactly the mounted routes', async () => {
    const card = await (await fetch(`${s.url}/v1/model`)).json() as { classes: unknown[]; input: { height: number }; model: { precision: string; runtime: string }; drift: { meaning: string }; training?: unknown };
    assert.equal(card.classes.length, 19); assert.equal(card.input.height, 32);
    assert.equal(card.model.precision, 'fp32'); assert.equal(card.model.runtime, 'tflite');
    assert.match(card.drift.meaning, /95th percentile/);
    assert.equal(card.training, undefined, 'the model card carries nothing of the training machine');
    assert.equal((await fetch(`${s.url}/readyz`)).status, 200);
    const text = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(text, /i2i_http_requests_total\{route="\/segment",status="200"\} [1-9]/);
    assert.match(text, /i2i_http_requests_total\{route="\/segment",status="415"\}/);
    assert.match(text, /i2i_request_stage_seconds_count\{stage="infer"\} [1-9]/);
    assert.match(text, /i2i_batch_size_count [1-9]/);
    assert.match(text, /i2i_drift_count [1-9]/);
    assert.match(text, /nodejs_eventloop_lag_seconds/);
    assert.match(text, /process_resident_memory_bytes/);
    assert.match(text, /i2i_worker_resident_memory_bytes\{worker="0"\} [1-9]\d{6,}/, 'each worker process\'s memory');
    const doc = await (await fetch(`${s.url}/openapi.json`)).json() as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.equal(doc.openapi, '3.1.0');
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    const mounted = (createApp(s.engine).app.router.stack as { route?: { path: string; methods: Record<string, boolean> } }[])
      .flatMap((l) => (l.route ? Object.keys(l.route.methods).map((m) => `${m.toUpperCase()} ${l.route!.path}`) : [])).sort();
    assert.deepEqual(documented, mounted);
    // With tokens the document declares the scheme and the 401s; without, neither.
    type Doc = { components: { securitySchemes?: { bearer?: object; admin?: object } }; paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown }>> };
    const withAuth = openApiDocument({ auth: true, version: '1' }) as Doc, without = doc as unknown as Doc;
    // The admin scheme (model reloads) is there either way: its routes exist with or without inference tokens.
    assert.ok(withAuth.components.securitySchemes?.bearer && !without.components.securitySchemes?.bearer && without.components.securitySchemes?.admin);
    for (const p of ['/segment', '/v1/model', '/metrics']) {
      const op = Object.values(withAuth.paths[p])[0];
      assert.ok(op.responses['401'] && op.security, `${p} documents its 401 under auth`);
      assert.ok(!Object.values(without.paths[p])[0].responses['401'], `${p} has no 401 without auth`);
    }
    assert.ok(!withAuth.paths['/healthz'].get.responses['401'], 'health stays open');
  });

  it('uploads are bounded in time: a body that stops arriving gets 408; an aborted multipart upload leaves nothing in progress', async () => {
    const c = await startServer({ bundle: fast, port: 0, workers: 1, timeoutMs: 300, log: silent });
    try {
      const u = new URL(c.url);
      const [status, body] = await new Promise<[number, string]>((resolve, reject) => {
        const req = http.request({ host: u.hostname, port: u.port, path: '/segment', method: 'POST', headers: { 'Content-Type': 'image/png', 'Content-Length': '5000' } }, (res) => {
          let b = '';
          res.setEncoding('utf8').on('data', (d) => { b += d; }).on('end', () => resolve([res.statusCode!, b]));
        });
        req.on('error', reject);
        req.write(Buffer.alloc(100));  // ...and never the rest
      });
      // The server's own answer at the request's deadline (Node's socket timeout would say 408 too, bodiless, 30 s later).
      assert.equal(status, 408);
      assert.match((JSON.parse(body) as { error: string }).error, /did not arrive within 300 ms/);
      // A multipart upload cut off by its client.
      await new Promise<void>((resolve) => {
        const req = http.request({ host: u.hostname, port: u.port, path: '/segment', method: 'POST', headers: { 'Content-Type': 'multipart/form-data; boundary=b', 'Transfer-Encoding': 'chunked' } });
        req.on('error', () => resolve());
        req.write('--b\r\nContent-Disposition: form-data; name="image"; filename="f.png"\r\nContent-Type: image/png\r\n\r\n0123');
        setTimeout(() => { req.destroy(); resolve(); }, 50);
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.match(await (await fetch(`${c.url}/metrics`)).text(), /i2i_segment_requests_in_progress 0/);
      const ok = await post(`${c.url}/segment`, await halvesPng(64, 32), { 'Content-Type': 'image/png' });
      assert.equal(ok.status, 200);
      assert.ok((await fetch(`${c.url}/healthz`)).headers.get('server-timing')?.startsWith('total;dur='), 'Server-Timing on every response');
    } finally { await c.close(); }
  });

  it('the port opens before the model is loaded: /healthz 200 and /readyz 503 until every worker warmed up', async () => {
    let url = '';
    const seen: number[] = [];
    const started = startServer({ bundle: slow, port: 0, workers: 1, log: silent, onListening: (u) => { url = u; } });
    let done = false;
    void started.then(() => { done = true; }, () => { done = true; });
    while (!url) await new Promise((r) => setTimeout(r, 2));
    const health = await fetch(`${url}/healthz`);
    while (!done) { seen.push((await fetch(`${url}/readyz`)).status); await new Promise((r) => setTimeout(r, 5)); }
    const s2 = await started;
    try {
      assert.equal(health.status, 200);
      // 503 while loading, then 200 (readiness may turn just before startServer returns), never back.
      const first200 = seen.indexOf(200);
      assert.ok(seen[0] === 503 && seen.slice(first200 < 0 ? seen.length : first200).every((v) => v === 200) && seen.every((v) => v === 503 || v === 200), `readyz while starting: ${seen}`);
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
    } finally { await s2.close(); }
  });

  it('draining: /readyz turns 503 and new frames are refused with 503, /healthz stays 200', async () => {
    const { app, setDraining } = createApp(s.engine);
    const srv = http.createServer(app);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
    try {
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
      setDraining();
      const ready = await fetch(`${url}/readyz`);
      assert.equal(ready.status, 503);
      assert.deepEqual(await ready.json(), { ready: false, draining: true, workers: 1, queued: 0 });
      const r = await post(`${url}/segment`, await halvesPng(64, 32), { 'Content-Type': 'image/png' });
      assert.equal(r.status, 503);
      assert.match((await r.json() as { error: string }).error, /draining/);
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
    } finally { await new Promise((r) => srv.close(r)); }
  });

  it('bearer tokens: 401 with WWW-Authenticate without one, any listed token passes, health stays open', async () => {
    const tokens = path.join(root, 'tokens');
    fs.writeFileSync(tokens, '# fleet tokens\nalpha-token\n\nbeta-token\n');
    const a = await startServer({ bundle: fast, port: 0, workers: 1, tokenFile: tokens, log: silent });
    try {
      const png = await halvesPng(64, 32);
      const none = await post(`${a.url}/segment`, png, { 'Content-Type': 'image/png' });
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="i2i"', 'no error code without credentials (RFC 6750)');
      assert.ok((await none.json() as { hint: string }).hint.includes('Authorization: Bearer'));
      const wrong = await post(`${a.url}/segment`, png, { 'Content-Type': 'image/png', Authorization: 'Bearer alpha-tokenX' });
      assert.equal(wrong.status, 401);
      assert.match(wrong.headers.get('www-authenticate')!, /error="invalid_token"/);
      assert.equal((await post(`${a.url}/segment`, png, { 'Content-Type': 'image/png', Authorization: 'Bearer beta-token' })).status, 200);
      assert.equal((await fetch(`${a.url}/metrics`)).status, 401);
      assert.equal((await fetch(`${a.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${a.url}/readyz`)).status, 200);
    } finally { await a.close(); }
  });

  it('a slow inference: /healthz answers while it runs; a full queue is 503 with Retry-After; a passed deadline 504', async () => {
    const b = await startServer({ bundle: slow, port: 0, workers: 1, maxQueue: 1, log: silent });
    try {
      const png = await halvesPng(256, 128);
      let done = 0;
      const first = post(`${b.url}/segment`, png, { 'Content-Type': 'image/png' }).then((r) => { done = performance.now(); return r; });
      while (b.engine.stats().inFlight < 1) await new Promise((r) => setTimeout(r, 2));
      const t0 = performance.now();
      assert.equal(b.engine.stats().inFlight, 1, 'an inference is running');
      const h = await fetch(`${b.url}/healthz`);
      const healthAt = performance.now();
      assert.equal(h.status, 200);
      assert.equal(b.engine.stats().inFlight, 1, 'still running when /healthz answered');
      // Queued behind the first, with a 40 ms deadline: dropped, 504.
      const late = post(`${b.url}/segment`, png, { 'Content-Type': 'image/png', 'X-Timeout-Ms': '40' });
      while (b.engine.stats().queued < 1) await new Promise((r) => setTimeout(r, 2));
      const full = await post(`${b.url}/segment`, png, { 'Content-Type': 'image/png' });
      const [r1, r2] = await Promise.all([first, late]);
      assert.equal(r1.status, 200);
      assert.ok(healthAt < done, `healthz answered at +${(healthAt - t0).toFixed(0)} ms, before the inference finished (+${(done - t0).toFixed(0)} ms)`);
      assert.equal(full.status, 503);
      assert.ok(Number(full.headers.get('retry-after')) >= 1);
      assert.match((await full.json() as { error: string }).error, /queue is full/);
      assert.equal(r2.status, 504);
      const m = await (await fetch(`${b.url}/metrics`)).text();
      assert.match(m, /i2i_frames_dropped_total\{reason="deadline"\} 1/);
      // A client that goes away while its frame waits frees the slot: the next request is queued, not refused.
      // Polled, not slept: on a loaded machine 30 ms was sometimes too short for a request to reach the engine.
      const settle = async (cond: () => boolean) => { for (const t = Date.now(); !cond() && Date.now() - t < 3000;) await new Promise((r) => setTimeout(r, 2)); };
      const running = post(`${b.url}/segment`, png, { 'Content-Type': 'image/png' });
      await settle(() => b.engine.stats().inFlight === 1);
      const ac = new AbortController();
      const gone = fetch(`${b.url}/segment`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' }, signal: ac.signal }).catch((e: Error) => e.name);
      await settle(() => b.engine.stats().queued === 1);
      assert.equal(b.engine.stats().queued, 1);
      ac.abort();
      assert.equal(await gone, 'AbortError');
      await settle(() => b.engine.stats().queued === 0);
      assert.equal(b.engine.stats().queued, 0, 'the aborted frame left the queue');
      const next = await post(`${b.url}/segment`, png, { 'Content-Type': 'image/png' });
      assert.equal(next.status, 200);
      assert.equal((await running).status, 200);
      assert.match(await (await fetch(`${b.url}/metrics`)).text(), /i2i_frames_dropped_total\{reason="aborted"\} 1/);
    } finally { await b.close(); }
  });

  it('tfjs: concurrent requests share one model call (the batch size each response reports)', async () => {
    const t = await startServer({ bundle: tfjsBundle, port: 0, workers: 1, runtime: 'tfjs', maxBatch: 4, maxWaitMs: 300, log: silent });
    try {
      const png = await halvesPng(64, 32);
      const rs = await Promise.all(Array.from({ length: 4 }, () => post(`${t.url}/segment?format=json`, png, { 'Content-Type': 'image/png' }).then((r) => r.json() as Promise<{ batch: number; fractions: Record<string, number> }>)));
      assert.deepEqual(rs.map((r) => r.batch), [4, 4, 4, 4]);
      assert.ok(rs.every((r) => Math.abs(r.fractions.road - 0.5) < 0.02));
      assert.match(await (await fetch(`${t.url}/metrics`)).text(), /i2i_batch_size_bucket\{le="4"\} 1/);
    } finally { await t.close(); }
  });

  it('SIGTERM: the request in flight finishes 200, the process exits 0 and leaves no worker', async function () {
    const cli = spawn(process.execPath, [path.resolve(__dirname, '../../bin/i2i.js'), 'serve', '--bundle', slow, '--port', '0', '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '', out = '';
    cli.stderr.on('data', (d) => { err += d; });
    cli.stdout.on('data', (d) => { out += d; });
    const exited = new Promise<number | null>((r) => cli.on('exit', (c) => r(c)));
    try {
      const t0 = Date.now();
      while (!/listening on (\S+)/.test(err) && Date.now() - t0 < 60000) await new Promise((r) => setTimeout(r, 50));
      const url = /listening on (\S+)/.exec(err)![1];
      const workers = fs.readFileSync(`/proc/${cli.pid}/task/${cli.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      assert.equal(workers.length, 1);
      const inflight = post(`${url}/segment`, await halvesPng(256, 128), { 'Content-Type': 'image/png' });
      await new Promise((r) => setTimeout(r, 50));
      cli.kill('SIGTERM');
      const r = await inflight;
      assert.equal(r.status, 200);
      assert.equal(await exited, 0, err);
      assert.ok(!workers.some(alive), 'no worker outlives the server');
      const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; reqId?: string });
      assert.ok(lines.some((l) => l.msg === 'request' && l.reqId), 'JSON access log lines with request ids');
      assert.ok(lines.some((l) => l.msg === 'draining') && lines.some((l) => l.msg === 'stopped'));
    } finally { cli.kill('SIGKILL'); }
  });
});
