/** GET / in a real headless Chromium: upload a frame, see the overlay load; the model card; a live stream's MJPEG view. */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import sharp from 'sharp';
import { attachments } from '../../cli/attach';
import { ffmpegPath } from '../../core/ffmpeg';
import { readManifest } from '../../core/bundle';
import { CITYSCAPES_CLASSES } from '../../core/labels';
import { startServer, type RunningServer } from '../../serve/server';
import { decodedSize, launchOrSkip, tableRows, textMatching, undecodedImages, watch } from '../browser/chromium';
import { tmpDir } from '../helpers';
import { makeBundle } from './fixture';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('serve: the page at GET / in headless Chromium', function () {
  this.timeout(120000);
  const root = tmpDir();
  const bundle = path.join(root, 'bundle'), frame = path.join(root, 'frame.png'), clip = path.join(root, 'cam.mp4');
  let browser: Browser | undefined;
  let s: RunningServer | undefined;

  before(async function () {
    browser = await launchOrSkip(this, 'the page tests');
    await makeBundle(bundle);
    // Red left two thirds (road), blue right third (sky).
    const w = 90, h = 40, p = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) p[(y * w + x) * 3 + (x < 60 ? 0 : 2)] = 255;
    await sharp(p, { raw: { width: w, height: h, channels: 3 } }).png().toFile(frame);
    execFileSync(ffmpegPath(), ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-t', '30', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-y', clip]);
    const attach = attachments({ streams: [{ name: 'front', source: clip }] }, silent);
    s = await startServer({ bundle, port: 0, workers: 1, log: silent, attach });
  });
  after(async () => { await browser?.close(); await s?.close(); });

  it('pick a frame: the overlay image decodes, the fractions and drift show, the model card and the stream view fill in, nothing external, no console error', async () => {
    const page = await browser!.newPage();
    const seen = watch(page);
    const res = await page.goto(`${s!.url}/`, { waitUntil: 'domcontentloaded' });
    assert.equal(res?.status(), 200);
    assert.match(res!.headers()['content-security-policy'], /default-src 'none'; script-src 'sha256-/);
    await textMatching(page, '#status', /^Ready/);
    // The model card: one row per class, one per parity entry of the bundle.
    const manifest = readManifest(bundle);
    assert.equal((await tableRows(page, '#classes')).length, CITYSCAPES_CLASSES.length);
    assert.deepEqual((await tableRows(page, '#parity')).map((r) => r[0]), manifest.parity.map((p) => `${p.format} ${p.precision}`));
    assert.match((await page.locator('#model').textContent())!, /precisionfp32/);

    await page.setInputFiles('#file', frame);
    assert.deepEqual(await decodedSize(page, '#overlay'), [90, 40], 'the overlay at the frame\'s own size');
    await textMatching(page, '#status', /inference/);
    assert.deepEqual(await tableRows(page, '#fractions'), [['road', '66.7 %'], ['sky', '33.3 %']]);
    assert.equal(seen.requests.filter((u) => u.includes('/segment')).length, 1, 'one inference per frame: fractions, drift and overlay from one request');
    // The drift shown is the API's for the same frame.
    const api = await (await fetch(`${s!.url}/segment?format=json`, { method: 'POST', body: fs.readFileSync(frame), headers: { 'Content-Type': 'image/png' } })).json() as { drift: number };
    assert.match((await page.locator('#drift').textContent())!, new RegExp(`^Drift ${api.drift.toFixed(2).replace('.', '\\.')}: `));

    // The live stream's MJPEG view decodes and its stats line fills in.
    assert.deepEqual(await decodedSize(page, '#views img', 30000), [160, 90]);
    await textMatching(page, '#views figcaption', /frames\/s/);

    assert.deepEqual(await undecodedImages(page), []);
    assert.deepEqual(seen.errors, []);
    const origin = new URL(s!.url).origin;
    assert.deepEqual(seen.requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:')), [], 'no external request');
    await page.close();
  });

  it('a bad file: the error and its hint on the page, the server still serving', async () => {
    const page = await browser!.newPage();
    await page.goto(`${s!.url}/`, { waitUntil: 'domcontentloaded' });
    await textMatching(page, '#status', /^Ready/);
    const bad = path.join(root, 'bad.png');
    fs.writeFileSync(bad, Buffer.from('not a png at all'));
    await page.setInputFiles('#file', bad);
    await page.waitForSelector('#status.error');
    assert.match((await page.locator('#status').textContent())!, /image|decode/i);
    assert.equal((await fetch(`${s!.url}/healthz`)).status, 200);
    await page.close();
  });
});
