/**
 * Model versions and rollout: every response names the model that computed it; a reload (SIGHUP,
 * POST /v1/model/reload, rollback) loads the new bundle in a new pool, warms it and switches at once,
 * with requests in flight answered by the old one; a bundle that fails leaves the old one serving.
 * Workers never load a bundle that changed on disk behind the server's back.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { bundleId } from '../../core/bundle';
import { readIndexedPng } from '../../runtime/image';
import { startServer } from '../../serve/server';
import { tmpDir } from '../helpers';
import { makeBundle, ROAD, SKY } from './fixture';

const logs: string[] = [];
const capture = { info: (o: object, m?: string) => { logs.push(`${m} ${JSON.stringify(o)}`); }, warn: (o: object, m?: string) => { logs.push(`${m} ${JSON.stringify(o)}`); }, error: (o: object, m?: string) => { logs.push(`${m} ${JSON.stringify(o)}`); } };
const BIN = path.resolve(__dirname, '../../bin/i2i.js');

/** Red left half, blue right half: bundle A says road | sky, bundle B (swapped) sky | road. */
const frame = () => {
  const w = 64, h = 32, p = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) p[(y * w + x) * 3 + (x < w / 2 ? 0 : 2)] = 255;
  return sharp(p, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
};
/** The class of the frame's left half as the server labelled it, and the version it says computed it. */
async function segment(url: string, png: Buffer): Promise<{ status: number; left?: number; version?: string }> {
  const r = await fetch(`${url}/segment`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' } });
  if (r.status !== 200) return { status: r.status };
  const img = await readIndexedPng(Buffer.from(await r.arrayBuffer()));
  return { status: 200, left: img.indices[0], version: r.headers.get('x-model-version') ?? undefined };
}
const versionOf = (dir: string) => (JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { models: { sha256: string }[] }).models[0].sha256.slice(0, 12);

describe('serve: model versions, reload and rollback', function () {
  this.timeout(180000);
  const root = tmpDir();
  const bundles = path.join(root, 'bundles'), a = path.join(bundles, 'a'), b = path.join(bundles, 'b'), wide = path.join(bundles, 'wide'), broken = path.join(bundles, 'broken');
  const current = path.join(root, 'current');
  const adminFile = path.join(root, 'admin.txt'), userFile = path.join(root, 'users.txt');
  let png: Buffer;
  before(async () => {
    await makeBundle(a);
    await makeBundle(b, { swapped: true });
    await makeBundle(wide, { width: 128 });
    await makeBundle(broken);
    fs.writeFileSync(path.join(broken, 'model.tflite'), 'not a model');
    fs.writeFileSync(adminFile, 'admin-secret\n');
    fs.writeFileSync(userFile, 'user-secret\n');
    png = await frame();
  });
  beforeEach(() => { fs.rmSync(current, { force: true }); fs.symlinkSync(a, current); logs.length = 0; });

  it('every response names its model; a reload under load switches at once and no request fails; rollback goes back', async () => {
    const s = await startServer({ bundle: current, bundleRoot: bundles, port: 0, workers: 1, log: capture, tokenFile: userFile, adminTokenFile: adminFile });
    const auth = { Authorization: 'Bearer user-secret' };
    const seg = async () => {
      const r = await fetch(`${s.url}/segment`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png', ...auth } });
      const img = r.status === 200 ? await readIndexedPng(Buffer.from(await r.arrayBuffer())) : undefined;
      return { status: r.status, left: img?.indices[0], version: r.headers.get('x-model-version') };
    };
    try {
      const va = versionOf(a), vb = versionOf(b);
      assert.deepEqual(await seg(), { status: 200, left: ROAD, version: va });
      // Load: two clients send frames back to back while the symlink switches and the server reloads.
      let stop = false;
      const results: { status: number; left?: number; version: string | null }[] = [];
      const client = async () => { while (!stop) results.push(await seg()); };
      const clients = [client(), client()];
      await new Promise((r) => setTimeout(r, 300));
      fs.rmSync(current); fs.symlinkSync(b, current);
      const r = await s.reload();
      assert.equal(r.active.version, vb);
      assert.equal(r.previous.version, va);
      await new Promise((r2) => setTimeout(r2, 300));
      stop = true;
      await Promise.all(clients);
      assert.ok(results.length > 10, `${results.length} requests`);
      assert.deepEqual(results.filter((x) => x.status !== 200), [], 'every request answered 200');
      // Each answer is consistent with the version it names, and once B answered, A never did again.
      for (const x of results) assert.equal(x.left, x.version === va ? ROAD : SKY, JSON.stringify(x));
      const firstB = results.findIndex((x) => x.version === vb);
      assert.ok(firstB > 0 && results.slice(firstB).every((x) => x.version === vb), results.map((x) => x.version).join(','));
      const card = await (await fetch(`${s.url}/v1/model`, { headers: auth })).json() as { bundle: string; version: string; model: { why: string; precision: string }; previous: { version: string } };
      assert.equal(card.version, vb);
      assert.equal(card.bundle, bundleId(b), 'the card names the bundle now served, not the one served at start');
      assert.equal(card.previous.version, va);
      assert.match(card.model.why, /only model|fastest|float32/);
      const json = await (await fetch(`${s.url}/segment?format=json`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png', ...auth } })).json() as { model: { version: string; file: string; precision: string } };
      assert.deepEqual([json.model.version, json.model.file, json.model.precision], [vb, 'model.tflite', 'fp32']);
      // Rollback over HTTP: admin token only.
      assert.equal((await fetch(`${s.url}/v1/model/rollback`, { method: 'POST', headers: auth })).status, 401, 'an inference token is not an admin token');
      const back = await fetch(`${s.url}/v1/model/rollback`, { method: 'POST', headers: { Authorization: 'Bearer admin-secret' } });
      assert.equal(back.status, 200, await back.clone().text());
      assert.equal(back.headers.get('x-model-version'), va);
      assert.deepEqual(await seg(), { status: 200, left: ROAD, version: va });
      const metrics = await (await fetch(`${s.url}/metrics`, { headers: auth })).text();
      assert.match(metrics, /i2i_model_reloads_total\{result="ok"\} 2/);
      assert.match(metrics, new RegExp(`i2i_frames_total\\{version="${vb}"\\} [1-9]`));
      assert.match(metrics, new RegExp(`i2i_model_info\\{version="${va}",file="model.tflite",precision="fp32"\\} 1`));
    } finally { await s.close(); }
  });

  it('a bundle that fails to load, or changes the input size, leaves the old one serving (422); names outside --bundle-root are refused', async () => {
    const s = await startServer({ bundle: current, bundleRoot: bundles, port: 0, workers: 1, log: capture, adminTokenFile: adminFile });
    const admin = { Authorization: 'Bearer admin-secret', 'Content-Type': 'application/json' };
    const reload = (body: object) => fetch(`${s.url}/v1/model/reload`, { method: 'POST', headers: admin, body: JSON.stringify(body) });
    try {
      const bad = await reload({ bundle: 'broken' });
      assert.equal(bad.status, 422);
      assert.match((await bad.json() as { error: string }).error, /did not load.*unchanged/s);
      const other = await reload({ bundle: 'wide' });
      assert.equal(other.status, 422);
      assert.match((await other.json() as { error: string }).error, /input size or class list/);
      assert.equal((await reload({ bundle: '../../etc' })).status, 403);
      assert.equal((await reload({ bundle: 'missing' })).status, 404);
      assert.equal((await fetch(`${s.url}/v1/model/reload`, { method: 'POST' })).status, 401);
      assert.deepEqual(await segment(s.url, png), { status: 200, left: ROAD, version: versionOf(a) });
      assert.match(await (await fetch(`${s.url}/metrics`)).text(), /i2i_model_reloads_total\{result="failed"\} 2\b/);
      assert.equal(s.engine.stats().workers, 1, 'the failed pools left no worker behind');
      const good = await reload({ bundle: 'b' });
      assert.equal(good.status, 200, await good.clone().text());
      assert.deepEqual(await segment(s.url, png), { status: 200, left: SKY, version: versionOf(b) });
    } finally { await s.close(); }
  });

  it('after a symlink switch (before SIGHUP) a replacement worker still loads the model being served (one worker)', async () => {
    const s = await startServer({ bundle: current, port: 0, workers: 1, log: capture });
    try {
      fs.rmSync(current); fs.symlinkSync(b, current);
      process.kill(s.engine.pids()[0], 'SIGKILL');
      let r = await segment(s.url, png);
      for (const t0 = Date.now(); r.status !== 200 && Date.now() - t0 < 30000; r = await segment(s.url, png)) await new Promise((res) => setTimeout(res, 100));
      assert.deepEqual(r, { status: 200, left: ROAD, version: versionOf(a) }, logs.join('\n'));
    } finally { await s.close(); }
  });

  it('a worker replaced after the bundle was rewritten in place refuses the new files; the pool keeps serving the model it chose', async () => {
    const inPlace = path.join(root, 'in-place');
    fs.cpSync(a, inPlace, { recursive: true });
    const s = await startServer({ bundle: inPlace, port: 0, workers: 2, log: capture });
    try {
      // B's manifest and model written over the served directory (no reload).
      for (const f of fs.readdirSync(b)) fs.cpSync(path.join(b, f), path.join(inPlace, f), { recursive: true });
      const [pid] = s.engine.pids();
      process.kill(pid, 'SIGKILL');
      for (const t0 = Date.now(); !logs.some((l) => /changed on disk/.test(l)) && Date.now() - t0 < 30000;) await new Promise((r) => setTimeout(r, 50));
      assert.ok(logs.some((l) => /changed on disk/.test(l)), logs.join('\n'));
      for (let i = 0; i < 6; i++) assert.deepEqual(await segment(s.url, png), { status: 200, left: ROAD, version: versionOf(a) });
    } finally { await s.close(); }
  });

  it('i2i serve (the bin): SIGHUP after a symlink switch reloads the bundle', async () => {
    const cli = spawn(process.execPath, [BIN, 'serve', '--bundle', current, '--port', '0', '--workers', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    cli.stderr!.on('data', (d) => { err += d; });
    try {
      for (const t0 = Date.now(); !/listening on (\S+)/.test(err) && Date.now() - t0 < 60000;) await new Promise((r) => setTimeout(r, 50));
      const url = /listening on (\S+)/.exec(err)![1];
      assert.equal((await segment(url, png)).version, versionOf(a));
      fs.rmSync(current); fs.symlinkSync(b, current);
      cli.kill('SIGHUP');
      for (const t0 = Date.now(); !/reloaded/.test(err) && Date.now() - t0 < 60000;) await new Promise((r) => setTimeout(r, 50));
      assert.match(err, new RegExp(`reloaded .*version ${versionOf(b)}`));
      assert.deepEqual(await segment(url, png), { status: 200, left: SKY, version: versionOf(b) });
    } finally { cli.kill('SIGKILL'); }
  });
});
