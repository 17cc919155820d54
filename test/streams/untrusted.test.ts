/**
 * Untrusted videos (uploads, server paths, folders): what is refused before any decoder runs, over
 * the real ffprobe/ffmpeg and real HTTP. A refused file is a 400 naming the problem.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg';
import { Engine } from '../../serve/engine/engine';
import { startServer, type RunningServer } from '../../serve/server';
import { decodeFrames, liveFfmpegChildren, probeVideo, type VideoInfo } from '../../streams/ffmpeg';
import { segmentVideo } from '../../streams/segment-video';
import { attachments } from '../../cli/attach';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * A FIFO that tells whether anything opened it for reading: a writer waits on it (opening a FIFO
 * for writing returns once a reader opens it), and closes at once so that the reader sees an end.
 */
function tripwire(file: string): { opened: () => boolean; release: () => Promise<void> } {
  execFileSync('mkfifo', [file]);
  let opened = false, released = false;
  const writer = fs.promises.open(file, 'w').then(async (h) => { if (!released) opened = true; await h.close(); });
  return {
    opened: () => opened,
    async release() {
      released = true;
      // Our own reader lets the waiting writer through, so no thread is left blocked.
      const r = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      await writer;
      fs.closeSync(r);
    },
  };
}

describe('streams: untrusted videos are refused before decoding (real ffmpeg, real HTTP)', function () {
  this.timeout(120000);
  const root = tmpDir();
  const bundle = path.join(root, 'bundle'), allowed = path.join(root, 'allowed');
  let engine: Engine;
  let s: RunningServer;
  const post = (body: Buffer, name: string, type = 'video/mp4') => fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': type, 'X-Filename': name }, body });
  // Retried once: a keep-alive socket the server closed while a fixture was being encoded resets.
  const list = () => fetch(`${s.url}/videos?limit=100`).catch(() => fetch(`${s.url}/videos?limit=100`));
  const jobCount = async () => ((await (await list()).json()) as { jobs: unknown[] }).jobs.length;

  before(async () => {
    fs.mkdirSync(allowed);
    await makeBundle(bundle, { height: 32, width: 64 });
    engine = await Engine.start({ bundle, workers: 1 });
    s = await startServer({ bundle, port: 0, workers: 1, log: silent, attach: attachments({ videos: { store: path.join(root, 'store'), videoDir: allowed } }, silent) });
  });
  after(async () => { await s?.close(); await engine?.close(); });

  it('an HLS playlist (named .m3u8 or .mp4) that names a local file is refused as a playlist, and nothing opens that file: probe, decoder, segment-video, POST /videos', async () => {
    const wire = tripwire(path.join(root, 'secret.ts'));
    const playlist = `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\n${path.join(root, 'secret.ts')}\n#EXT-X-ENDLIST\n`;
    for (const f of [path.join(allowed, 'list.m3u8'), path.join(root, 'x.mp4')]) fs.writeFileSync(f, playlist);
    try {
      await assert.rejects(probeVideo(path.join(allowed, 'list.m3u8')), /is an HLS playlist \(hls.*\), not a video file/);
      await assert.rejects(segmentVideo({ engine, input: path.join(allowed, 'list.m3u8'), out: path.join(root, 'o.mp4') }), /HLS playlist/);
      // ffmpeg 4.1 itself reads a playlist by its content whatever its name: the decoder refuses it too.
      const info: VideoInfo = { file: path.join(root, 'x.mp4'), width: 64, height: 32, rotation: 0, fps: 10, vfr: false, duration: 1, frames: 10, hasAudio: false, format: 'mov', codec: 'h264', audio: [] };
      const { frames } = decodeFrames(info);
      let n = 0;
      await assert.rejects((async () => { for await (const _ of frames) n++; })(), /ffmpeg stopped decoding/);
      assert.equal(n, 0);
      // Over HTTP: an upload named x.mp4, and a path inside --video-dir.
      const before = await jobCount();
      const up = await post(fs.readFileSync(path.join(root, 'x.mp4')), 'x.mp4');
      assert.equal(up.status, 400, await up.clone().text());
      const byPath = await fetch(`${s.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ path: 'list.m3u8' }) });
      assert.equal(byPath.status, 400);
      assert.match((await byPath.json() as { error: string }).error, /list\.m3u8 is an HLS playlist/);
      assert.equal(await jobCount(), before, 'no job was created');
      assert.equal(wire.opened(), false, 'the file the playlist names was never opened');
    } finally {
      await wire.release();
    }
    assert.deepEqual(liveFfmpegChildren(), []);
  });

  it('a JPEG, a PNG and a one-frame MJPEG MOV are still images: 400, no job', async () => {
    const jpg = path.join(root, 'a.jpg'), png = path.join(root, 'a.png'), mov = path.join(root, 'photo.mov');
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90', '-frames:v', '1', jpg]);
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90', '-frames:v', '1', png]);
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90', '-frames:v', '1', '-c:v', 'mjpeg', mov]);
    const before = await jobCount();
    for (const [file, type] of [[jpg, 'image/jpeg'], [png, 'image/png'], [jpg, 'video/mp4'], [mov, 'video/quicktime']]) {
      const r = await post(fs.readFileSync(file), path.basename(file), type);
      if (r.status === 415) continue;  // the route may refuse an image type before reading it: also a refusal
      assert.equal(r.status, 400, `${file} as ${type}: ${await r.clone().text()}`);
      assert.match((await r.json() as { error: string }).error, /still image/);
    }
    assert.equal(await jobCount(), before);
    // A real MJPEG video (a camera's) is still a video.
    const cam = path.join(root, 'cam.avi');
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-t', '1', '-c:v', 'mjpeg', cam]);
    assert.equal((await probeVideo(cam)).frames, 10);
  });

  it('frames over the pixel limit (default 4096x2304) are refused with 400 before decoding: a small 5120x2880 upload; a lower limit is an option', async () => {
    const big = path.join(root, 'big.mp4');
    ff(['-f', 'lavfi', '-i', 'color=c=gray:s=5120x2880:r=2', '-frames:v', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', big]);
    assert.ok(fs.statSync(big).size < 100_000, `a small file: ${fs.statSync(big).size} bytes`);
    const before = await jobCount();
    const r = await post(fs.readFileSync(big), 'big.mp4');
    assert.equal(r.status, 400, await r.clone().text());
    assert.match((await r.json() as { error: string }).error, /big\.mp4 has 5120x2880 frames \(14745600 pixels\), over this server's limit of 9437184 pixels/);
    assert.equal(await jobCount(), before);
    const small = await startServer({ bundle, port: 0, workers: 1, log: silent, attach: attachments({ videos: { store: path.join(root, 'store-small'), maxPixels: 64 * 32 } }, silent) });
    try {
      const clip = path.join(root, 'clip.mp4');
      ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-t', '1', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', clip]);
      const refused = await fetch(`${small.url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(clip) });
      assert.equal(refused.status, 400);
      assert.match((await refused.json() as { error: string }).error, /160x90 frames .* limit of 2048 pixels/);
    } finally {
      await small.close();
    }
  });
});
