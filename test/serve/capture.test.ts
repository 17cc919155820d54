/**
 * The loop from the vehicle back to adaptation, on tiny data: serve a bundle with --capture, send it
 * frames of another domain (kept: their drift is high), fine-tune the run on them (i2i train --from
 * RUN --target-frames DIR, through the bin), convert, reload the server: the same frames' drift falls.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convert } from '../../convert/convert';
import { FrameCapture } from '../../serve/capture';
import { startServer } from '../../serve/server';
import { writeSynth } from '../../train/data/synth';
import { train } from '../../train/trainer';
import { tmpDir } from '../helpers';

const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const quiet = () => undefined;
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

describe('serve: drift-driven capture and the adaptation loop', function () {
  this.timeout(400000);

  it('capture keeps drifted frames only, within its rate and its bound on disk, as sent', async () => {
    const dir = tmpDir();
    const png = Buffer.from('89504e470d0a1a0a0000', 'hex');
    const c = new FrameCapture({ dir, minDrift: 1, max: 3, perMinute: 5 });
    assert.equal(c.offer(png, 0.5, { version: 'v1', source: 't' }), false, 'below the threshold');
    assert.equal(c.offer(png, null, { version: 'v1', source: 't' }), false, 'no drift output');
    assert.equal(c.offer(Buffer.from('GIF89a'), 5, { version: 'v1', source: 't' }), false, 'not an image this project reads');
    for (let i = 0; i < 7; i++) c.offer(png, 1 + i, { version: 'v1', source: `t${i}` });
    await c.flush();
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.png')).sort();
    assert.equal(files.length, 3, 'at most --capture-max on disk');
    assert.equal(c.stats.kept, 5, 'at most --capture-per-min a minute');
    assert.equal(c.stats.skippedRate, 2);
    assert.match(files[2], /_d5\.000_v1_4\.png$/, 'the oldest were removed');
    assert.deepEqual(fs.readFileSync(path.join(dir, files[0])), png, 'the bytes as sent');
    const lines = fs.readFileSync(path.join(dir, 'capture.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { drift: number; version: string });
    assert.deepEqual(lines.map((l) => l.drift), [1, 2, 3, 4, 5]);
    assert.ok(lines.every((l) => l.version === 'v1'));
    // A new capture over the same folder counts what is there.
    assert.equal(new FrameCapture({ dir, max: 3 }).stats.onDisk, 3);
  });

  it('serve --capture -> fine-tune on the kept frames -> convert -> reload: their drift falls', async () => {
    const root = tmpDir();
    const src = path.join(root, 'source'), tgt = path.join(root, 'target'), cap = path.join(root, 'captured');
    await writeSynth({ out: src, domain: 'source', count: 12, height: 64, width: 128, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 12, height: 64, width: 128, seed: 2 });
    const run = path.join(root, 'run'), run2 = path.join(root, 'run2');
    const small = { steps: 4, batchSize: 2, model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8] }, data: { imageSize: 32, scale: 0.5, sourceRoot: src, targetRoot: tgt } };
    await train({ task: 'synth-drive', method: 'source-only', out: run, progress: quiet, overrides: small });
    const a = path.join(root, 'bundle-a'), b = path.join(root, 'bundle-b');
    await convert({ checkpoint: run, out: a, input: [32, 64], precisions: ['fp32'], calibrate: path.join(tgt, 'leftImg8bit', 'train'), progress: quiet });

    const s = await startServer({ bundle: a, port: 0, workers: 1, log: silent, capture: { dir: cap, minDrift: 1, perMinute: 1000 } });
    try {
      // The vehicle drives into another domain: the source scenes, never calibrated on.
      const frames = fs.readdirSync(path.join(src, 'images')).sort().map((f) => fs.readFileSync(path.join(src, 'images', f)));
      const drifts = async () => {
        const out: number[] = [];
        for (const f of frames) {
          const r = await fetch(`${s.url}/segment?format=json`, { method: 'POST', body: f, headers: { 'Content-Type': 'image/png' } });
          assert.equal(r.status, 200);
          out.push((await r.json() as { drift: number }).drift);
        }
        return out;
      };
      const before = await drifts();
      // Written behind the responses: wait for them (bounded).
      const want = before.filter((d) => d >= 1).length;
      const onDisk = () => fs.readdirSync(cap).filter((f) => f.endsWith('.png'));
      for (const t0 = Date.now(); onDisk().length < want && Date.now() - t0 < 10000;) await new Promise((res) => setTimeout(res, 20));
      const kept = onDisk();
      assert.equal(kept.length, before.filter((d) => d >= 1).length, `kept exactly the frames with drift >= 1 (${before.map((d) => d.toFixed(2))})`);
      assert.ok(kept.length >= 4, `most of the other domain's frames drift (${before.map((d) => d.toFixed(2))})`);
      assert.match(await (await fetch(`${s.url}/metrics`)).text(), new RegExp(`i2i_frames_captured_total ${kept.length}`));

      // Adapt to what was kept, as a user would: the bin, fine-tuning the served run on the captured frames.
      const out = execFileSync(process.execPath, [BIN, 'train', '--from', run, '--target-frames', cap, '--steps', '4', '--out', run2], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      assert.match(out, /trained synth-drive \/ source-only to step 4/);
      await convert({ checkpoint: run2, out: b, input: [32, 64], precisions: ['fp32'], calibrate: cap, progress: quiet });
      const manifest = JSON.parse(fs.readFileSync(path.join(b, 'manifest.json'), 'utf8')) as { training: { config: { fromRun: string; data: { targetFrames: string } } } };
      assert.equal(manifest.training.config.fromRun, run);
      assert.equal(manifest.training.config.data.targetFrames, cap);

      const r = await s.reload(b);
      assert.equal(r.previous.dir, a);
      const after = await drifts();
      assert.ok(median(after) < median(before) && median(after) < 1, `median drift of the captured domain ${median(before).toFixed(2)} -> ${median(after).toFixed(2)}`);
    } finally { await s.close(); }
  });
});
