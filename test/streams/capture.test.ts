/**
 * Drift-driven capture of video jobs and live streams (i2i serve --capture), through the real
 * ffmpeg: a clip whose first 2 s look like the bundle's calibration frames (drift ~1.6) and whose
 * last 4 s do not (drift in the hundreds). With --capture-drift 10 only the last 4 s may be kept,
 * at most one frame per --capture-every second of each video or stream, as PNG of the decoded frame,
 * each listed in capture.jsonl with its drift, model version, source (job or stream, pts) and pts.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { ffmpegPath } from '../../core/ffmpeg';
import { startServer } from '../../serve/server';
import { liveFfmpegChildren } from '../../streams/ffmpeg';
import { attachments } from '../../cli/attach';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const BIN = path.resolve(__dirname, '../../bin/i2i.js');
type Line = { file: string; drift: number; time: string; version: string; source: string; pts: number };

/** The capture folder as `i2i train --target-frames` reads it: its PNGs, and the index listing exactly them. */
function captured(dir: string): { files: string[]; lines: Line[] } {
  const files = fs.readdirSync(dir).filter((f) => /\.(png|jpe?g|webp)$/.test(f)).sort();
  const index = path.join(dir, 'capture.jsonl');
  const lines = fs.existsSync(index) ? fs.readFileSync(index, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : [];
  assert.deepEqual(lines.map((l) => l.file).sort(), files, 'the index lists exactly the frames on disk');
  assert.ok(!fs.readdirSync(dir).some((f) => f.endsWith('.tmp')), 'no temporary file left');
  return { files, lines };
}

describe('streams: drift-driven capture of video jobs and live streams (real ffmpeg)', function () {
  this.timeout(300000);
  const root = tmpDir();
  const bundle = path.join(root, 'bundle'), clip = path.join(root, 'drive.mp4');
  before(async () => {
    await makeBundle(bundle, { height: 32, width: 64 });
    // 0-2 s: the reddish colour the fixture calibrated on; 2-4 s blue; 4-6 s testsrc. 10 frames/s.
    ff(['-f', 'lavfi', '-i', 'color=c=0xBF4040:s=160x90:r=10:d=2', '-f', 'lavfi', '-i', 'color=c=0x2040E0:s=160x90:r=10:d=2', '-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10:d=2',
      '-filter_complex', '[0:v][1:v][2:v]concat=n=3:v=1[v]', '-map', '[v]', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', clip]);
  });

  it('a video job: its frames with drift >= --capture-drift are kept as PNG, one per --capture-every seconds of video, with drift, version, job and pts', async () => {
    const cap = path.join(root, 'captured-video');
    const s = await startServer({ bundle, port: 0, workers: 1, log: silent, capture: { dir: cap, minDrift: 10, everySeconds: 1, perMinute: 1000 },
      attach: attachments({ videos: { store: path.join(root, 'store') } }, silent) });
    let id = '';
    try {
      const r = await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4', 'X-Filename': 'drive.mp4' }, body: fs.readFileSync(clip) });
      assert.equal(r.status, 202, await r.clone().text());
      id = ((await r.json()) as { id: string }).id;
      for (const t0 = Date.now(); ;) {
        const j = await (await fetch(`${s.url}/videos/${id}`)).json() as { state: string };
        if (j.state === 'done') break;
        if (j.state === 'failed' || Date.now() - t0 > 60000) throw new Error(JSON.stringify(j));
        await new Promise((res) => setTimeout(res, 100));
      }
      const stats = (await (await fetch(`${s.url}/videos/${id}/result?stats=1`)).text()).trim().split('\n').map((l) => JSON.parse(l) as { pts: number; drift: number });
      assert.equal(stats.length, 60);
      assert.ok(stats.filter((x) => x.pts < 1.95).every((x) => x.drift < 10) && stats.filter((x) => x.pts > 2.05).every((x) => x.drift >= 10), 'the clip drifts from 2 s on');
      const version = s.engine.model.version;
      // /metrics counts the job's kept frames too (it counted only POST /segment's).
      let metric = '';
      for (const t0 = Date.now(); Date.now() - t0 < 10000 && !/i2i_frames_captured_total 4\b/.test(metric); await new Promise((r) => setTimeout(r, 100))) {
        metric = (await (await fetch(`${s.url}/metrics`)).text()).split('\n').find((l) => l.startsWith('i2i_frames_captured_total')) ?? '';
      }
      assert.equal(metric, 'i2i_frames_captured_total 4');
      await s.close();
      const { files, lines } = captured(cap);
      // Sampled: the first drifted frame, then the first one at least a second of video later.
      assert.deepEqual(lines.map((l) => l.pts), [2, 3, 4, 5], JSON.stringify(lines));
      for (const l of lines) {
        assert.equal(l.drift, stats.find((x) => Math.abs(x.pts - l.pts) < 1e-6)!.drift, 'the drift the job computed for that frame');
        assert.ok(l.drift >= 10);
        assert.equal(l.version, version);
        assert.equal(l.source, `video job ${id} (drive.mp4) pts ${l.pts.toFixed(3)}`);
        assert.match(l.file, /^\d{8}T\d{9}Z_d[\d.]+_[\w-]+_\d+\.png$/);
      }
      // The decoded frame itself, at its own size: blue at 2 s and 3 s.
      for (const f of files) {
        const m = await sharp(path.join(cap, f)).metadata();
        assert.deepEqual([m.format, m.width, m.height], ['png', 160, 90]);
      }
      const { data } = await sharp(path.join(cap, lines[0].file)).raw().toBuffer({ resolveWithObject: true });
      const px = [data[(45 * 160 + 80) * 3], data[(45 * 160 + 80) * 3 + 1], data[(45 * 160 + 80) * 3 + 2]];
      assert.ok(px[2] > 180 && px[0] < 80, `the 2 s frame is blue: ${px}`);
    } finally {
      await s.close();
    }
    assert.deepEqual(liveFfmpegChildren(), []);
  });

  it('i2i serve --capture ... --capture-every 1 --stream NAME=FILE (the bin): the live stream\'s drifted frames are kept, sampled by their time in the stream', async () => {
    const cap = path.join(root, 'captured-live');
    const cli = spawn(process.execPath, [BIN, 'serve', '--bundle', bundle, '--port', '0', '--workers', '1', '--no-videos', '--stream', `cam=${clip}`,
      '--capture', cap, '--capture-drift', '10', '--capture-every', '1', '--capture-per-min', '1000'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    cli.stderr!.on('data', (d) => { err += d; });
    const exited = new Promise<number | null>((r) => cli.once('exit', (c) => r(c)));
    try {
      let url = '';
      for (const t0 = Date.now(); !url; await new Promise((r) => setTimeout(r, 50))) {
        url = /listening on (\S+)/.exec(err)?.[1] ?? '';
        if (Date.now() - t0 > 60000 || cli.exitCode !== null) throw new Error(`serve did not start: ${err}`);
      }
      // The file plays at its rate (6 s) and ends.
      let st: { state: string; frames: { segmented: number } } = { state: '', frames: { segmented: 0 } };
      for (const t0 = Date.now(); st.state !== 'ended'; await new Promise((r) => setTimeout(r, 200))) {
        st = await (await fetch(`${url}/streams/cam`)).json() as typeof st;
        if (Date.now() - t0 > 60000) throw new Error(`the stream did not end: ${JSON.stringify(st)}`);
      }
      cli.kill('SIGTERM');
      assert.equal(await exited, 0, err);
      const { files, lines } = captured(cap);
      assert.ok(lines.length >= 3 && lines.length <= 5, `about one frame per second of the 4 drifted seconds: ${JSON.stringify(lines)}`);
      const pts = lines.map((l) => l.pts);
      pts.forEach((t, i) => { if (i) assert.ok(t - pts[i - 1] >= 1, `spaced by --capture-every: ${pts}`); });
      // The reddish first 2 s (drift ~1.6) are never kept: the first kept frame is at ~2 s of the stream or later.
      assert.ok(pts[0] >= 1.5, `first kept at ${pts[0]} s`);
      for (const l of lines) {
        assert.ok(l.drift >= 10, JSON.stringify(l));
        assert.equal(l.source, `stream cam pts ${l.pts.toFixed(3)}`);
        assert.match(l.version, /^[0-9a-f]{12}$/);
      }
      for (const f of files) {
        const m = await sharp(path.join(cap, f)).metadata();
        assert.deepEqual([m.format, m.width, m.height], ['png', 160, 90]);
      }
    } finally {
      if (cli.exitCode === null && cli.signalCode === null) { cli.kill('SIGKILL'); await exited; }
    }
  });
});
