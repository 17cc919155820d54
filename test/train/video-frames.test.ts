import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { ffmpegPath } from '../../core/ffmpeg';
import { sampleVideoFolder } from '../../train/data/video-frames';
import { tmpDir } from '../helpers';

describe('target frames from videos (fluent-ffmpeg, bundled ffmpeg)', () => {
  it('samples every video of a folder at the requested fps, capped per video', async () => {
    const dir = tmpDir();
    // Two real H.264 files made by ffmpeg itself: 2 s and 1 s of a test pattern at 10 fps.
    for (const [name, secs] of [['a.mp4', 2], ['b.mkv', 1]] as const) {
      execFileSync(ffmpegPath(), ['-v', 'error', '-f', 'lavfi', '-i', `testsrc=size=64x48:rate=10:duration=${secs}`, '-pix_fmt', 'yuv420p', '-c:v', 'libx264', path.join(dir, name)]);
    }
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a video');
    const out = tmpDir();
    const frames = await sampleVideoFolder(dir, out, { fps: 2, maxFrames: 3 });
    // a: 2 s at 2 fps is 4 frames, capped at 3; b: 1 s at 2 fps is 2.
    assert.deepEqual(frames.map((f) => path.basename(f)), ['a.mp4_00000.png', 'a.mp4_00001.png', 'a.mp4_00002.png', 'b.mkv_00000.png', 'b.mkv_00001.png']);
    const meta = await sharp(frames[0]).metadata();
    assert.deepEqual([meta.width, meta.height], [64, 48]);
  });
  // A clip whose brightness is its frame number x 6 (10 fps): a frame's grey level tells its time.
  const clip = (file: string, secs: number, offset = 0, per = 6) => execFileSync(ffmpegPath(), ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi',
    '-i', `color=c=black:s=32x32:r=10:d=${secs},format=gray,geq=lum='${offset}+N*${per}'`, '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-crf', '0', file]);
  const timeOf = async (png: string) => {
    const { data } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    return data.reduce((a, v) => a + v, 0) / data.length / 6 / 10; // seconds
  };

  it('spreads the frames over the whole video, not its first seconds', async () => {
    const dir = tmpDir();
    clip(path.join(dir, 'drive.mp4'), 4);
    // 4 fps would give 16 frames; capped at 4 they cover the 4 s clip, one in the middle of each second.
    const frames = await sampleVideoFolder(dir, tmpDir(), { fps: 4, maxFrames: 4 });
    assert.equal(frames.length, 4);
    const t = await Promise.all(frames.map(timeOf));
    // Within a frame (0.1 s) or two of the middle of each second.
    t.forEach((v, k) => assert.ok(Math.abs(v - (k + 0.5)) <= 0.25, `frame ${k} is from ${v.toFixed(2)} s, expected about ${k + 0.5} s (all: ${t.map((x) => x.toFixed(2))})`));
  });

  it('keeps videos with the same stem apart (a.mp4 and a.mov, sub/a.mp4 and other/a.mp4)', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'sub')); fs.mkdirSync(path.join(dir, 'other'));
    const files = ['a.mp4', 'a.mov', 'sub/a.mp4', 'other/a.mp4', 'a_b.mp4'];
    // Video i is grey level 50 i + 4 N at frame N: its frames stay within [50 i, 50 i + 40).
    files.forEach((f, i) => clip(path.join(dir, f), 1, i * 50, 4));
    const out = tmpDir();
    const frames = await sampleVideoFolder(dir, out, { fps: 2, maxFrames: 2 });
    assert.equal(frames.length, 10);
    assert.equal(new Set(frames).size, 10);
    assert.equal(fs.readdirSync(out).length, 10);
    // Videos in path order, two frames each; each frame holds its own video's grey levels.
    const order = ['a.mov', 'a.mp4', 'a_b.mp4', 'other/a.mp4', 'sub/a.mp4'];
    for (let v = 0; v < order.length; v++) {
      const level = files.indexOf(order[v]) * 50;
      for (const f of frames.slice(v * 2, v * 2 + 2)) {
        const { data } = await sharp(f).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
        const mean = data.reduce((a, x) => a + x, 0) / data.length;
        assert.ok(mean >= level && mean < level + 40, `${path.basename(f)} (mean ${mean.toFixed(1)}) is not from ${order[v]} (${level}..${level + 40})`);
      }
    }
  });

  it('names a broken video and an empty folder', async () => {
    const dir = tmpDir();
    await assert.rejects(sampleVideoFolder(dir, tmpDir(), { fps: 1, maxFrames: 1 }), /holds no video files/);
    fs.writeFileSync(path.join(dir, 'broken.mp4'), 'garbage');
    await assert.rejects(sampleVideoFolder(dir, tmpDir(), { fps: 1, maxFrames: 1 }), /ffmpeg could not read .*broken.mp4/);
  });
});
