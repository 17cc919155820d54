import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import sharp from 'sharp';
import { ffmpegPath } from '../../core/ffmpeg';
import { Engine } from '../../serve/engine/engine';
import { startServer } from '../../serve/server';
import { liveFfmpegChildren } from '../../streams/ffmpeg';
import { LiveStream } from '../../streams/live';
import { attachments } from '../../cli/attach';
import { alive, tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const probe = (file: string) => JSON.parse(execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-count_frames', '-show_streams', '-show_format', '-of', 'json', file]).toString()) as
  { streams: { codec_type: string; width: number; height: number; nb_read_frames: string }[]; format: { duration: string } };
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('streams: live sources through the real ffmpeg', function () {
  this.timeout(300000);
  const root = tmpDir();
  const slow = path.join(root, 'slow');
  const src = path.join(root, 'cam.mp4');
  let engine: Engine;
  before(async () => {
    // 30 frames/s for 3 s; the slow bundle takes longer than 1/30 s a frame, so frames must be dropped.
    ff(['-f', 'lavfi', '-i', 'testsrc=s=320x180:r=30', '-t', '3', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', src]);
    await makeBundle(slow, { height: 128, width: 256, slowLayers: 8, slowChannels: 32 });
    engine = await Engine.start({ bundle: slow, workers: 1 });
  });
  after(async () => { await engine?.close(); });

  it('a file played at its native rate: the newest frame is segmented whenever the engine is free, the rest dropped and counted; the rolling segment plays for as long as the source did', async () => {
    const out = path.join(root, 'live-out');
    const s = new LiveStream({ name: 'cam', source: src, engine, out });
    const t0 = Date.now();
    await s.start();
    const secs = (Date.now() - t0) / 1000;
    const st = s.stats();
    assert.equal(st.state, 'ended');
    assert.ok(secs > 2.5, `played at its rate, not as fast as possible (${secs} s)`);
    assert.ok(st.frames.read >= 85 && st.frames.read <= 90, `read ${st.frames.read} of 90`);
    assert.ok(st.frames.dropped > 0 && st.frames.segmented > 0, JSON.stringify(st.frames));
    assert.equal(st.frames.segmented + st.frames.dropped, st.frames.read, 'every frame read was segmented or dropped');
    assert.equal(st.sourceFps, 30);
    assert.equal(typeof st.drift, 'number');
    const files = fs.readdirSync(out).sort();
    const mp4 = files.filter((f) => f.endsWith('.mp4'));
    assert.equal(mp4.length, 1, files.join(' '));
    const p = probe(path.join(out, mp4[0]));
    const v = p.streams.find((x) => x.codec_type === 'video')!;
    assert.deepEqual([v.width, v.height], [320, 180]);
    assert.equal(Number(v.nb_read_frames), st.frames.segmented, 'every segmented frame is in the segment');
    // Frames keep the time they were read: the segment lasts about as long as the source played.
    assert.ok(Math.abs(Number(p.format.duration) - 3) < 0.8, `segment lasts ${p.format.duration} s`);
    const lines = fs.readFileSync(path.join(out, mp4[0].replace(/\.mp4$/, '.jsonl')), 'utf8').trim().split('\n');
    assert.equal(lines.length, st.frames.segmented);
    assert.deepEqual(liveFfmpegChildren(), []);
  });

  it('a source that drops is reconnected with backoff; the server shows the overlay as MJPEG and the stats, counts drops in /metrics, and its drain ends the views', async () => {
    // An HTTP source that serves an MPEG-TS recording and breaks the first connection off half way.
    const ts = path.join(root, 'cam.ts');
    ff(['-i', src, '-c', 'copy', '-f', 'mpegts', ts]);
    const body = fs.readFileSync(ts);
    let connections = 0;
    const source = http.createServer((req, res) => {
      connections++;
      res.writeHead(200, { 'Content-Type': 'video/mp2t' });
      if (connections === 1) { res.write(body.subarray(0, body.length >> 1)); setTimeout(() => res.destroy(), 300); }
      else res.end(body);
    });
    await new Promise<void>((r) => source.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(source.address() as AddressInfo).port}/cam.ts`;
    let live: LiveStream[] = [];
    const attach = attachments({ streams: [{ name: 'front', source: url }] }, silent);
    const s = await startServer({ bundle: slow, port: 0, workers: 1, log: silent, attach: (e) => { const a = attach(e); live = a.live; return a; } });
    try {
      // MJPEG: read two JPEG parts off the multipart stream.
      const u = new URL(`${s.url}/streams/front.mjpeg`);
      const [type, parts, ended] = await new Promise<[string, Buffer[], Promise<void>]>((resolve, reject) => {
        http.get(u, (res) => {
          let buf = Buffer.alloc(0);
          const found: Buffer[] = [];
          const end = new Promise<void>((r) => res.on('close', () => r()));
          res.on('data', (c: Buffer) => {
            buf = Buffer.concat([buf, c]);
            for (;;) {
              const m = /Content-Length: (\d+)\r\n\r\n/.exec(buf.toString('latin1'));
              if (!m) break;
              const start = m.index + m[0].length, n = Number(m[1]);
              if (buf.length < start + n) break;
              found.push(buf.subarray(start, start + n));
              buf = buf.subarray(start + n);
            }
            if (found.length === 2) resolve([String(res.headers['content-type']), found, end]);
          });
        }).on('error', reject);
      });
      assert.match(type, /^multipart\/x-mixed-replace; boundary=/);
      for (const j of parts) {
        const meta = await sharp(j).metadata();
        assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 320, 180]);
      }
      // Read again after the reconnect: more frames than the first, broken, connection carried.
      const firstRead = () => live[0].stats().frames.read;
      for (const t0 = Date.now(); !(connections >= 2 && firstRead() > 50) && Date.now() - t0 < 30000;) await new Promise((r) => setTimeout(r, 100));
      const st = await (await fetch(`${s.url}/streams/front`)).json() as { reconnects: number; frames: { read: number; dropped: number; segmented: number }; source: string };
      assert.ok(st.reconnects >= 1 && connections >= 2 && st.frames.read > 50, `reconnected: ${JSON.stringify(st)}`);
      assert.equal(st.source, url);
      assert.ok(st.frames.dropped > 0);
      assert.equal((await fetch(`${s.url}/streams/nope`)).status, 404);
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      assert.match(metrics, /i2i_stream_frames_total\{stream="front",outcome="dropped"\} [1-9]/);
      assert.match(metrics, /i2i_stream_reconnects_total\{stream="front"\} [1-9]/);
      assert.ok(await s.close(), 'the drain finished: the MJPEG view was ended, not waited for');
      await ended;
    } finally {
      await s.close();
      source.close();
    }
    assert.deepEqual(liveFfmpegChildren(), [], 'no ffmpeg left');
  });
});

describe('streams: i2i segment-stream on the command line', function () {
  this.timeout(120000);
  it('a looped file until Ctrl-C: exit 130, the current segment plays, no child outlives the command', async () => {
    const root = tmpDir();
    const src = path.join(root, 'cam.mp4'), out = path.join(root, 'segments'), bundle = path.join(root, 'b');
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=25', '-t', '1', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', src]);
    await makeBundle(bundle, { height: 32, width: 64 });
    
    const cli = spawn(process.execPath, [path.resolve(__dirname, '../../bin/i2i.js'), 'segment-stream', src, '--bundle', bundle, '--out', out, '--loop', '--workers', '1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    cli.stdout.on('data', (d) => { stdout += d; });
    cli.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((r) => cli.on('exit', (c) => r(c)));
    // The first stats line comes after 5 s: by then the 1 s file has looped several times.
    for (const t0 = Date.now(); !stdout.includes('\n') && Date.now() - t0 < 60000;) await new Promise((r) => setTimeout(r, 100));
    const kids = fs.readFileSync(`/proc/${cli.pid}/task/${cli.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    cli.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    const last = JSON.parse(stdout.trim().split('\n').pop()!) as { state: string; frames: { read: number; segmented: number } };
    assert.equal(last.state, 'stopped');
    assert.ok(last.frames.read > 100, `looped: ${last.frames.read} frames read`);
    const mp4 = fs.readdirSync(out).filter((f) => f.endsWith('.mp4') && !f.endsWith('.video.mp4'));
    assert.equal(mp4.length, 1, fs.readdirSync(out).join(' '));
    assert.equal(Number(probe(path.join(out, mp4[0])).streams[0].nb_read_frames), last.frames.segmented, 'the segment plays with every segmented frame');
    assert.deepEqual(kids.filter(alive), [], 'no child outlives the command');
  });
});
