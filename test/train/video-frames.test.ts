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
    assert.deepEqual(frames.map((f) => path.basename(f)), ['a_00000.png', 'a_00001.png', 'a_00002.png', 'b_00000.png', 'b_00001.png']);
    const meta = await sharp(frames[0]).metadata();
    assert.deepEqual([meta.width, meta.height], [64, 48]);
  });
  it('names a broken video and an empty folder', async () => {
    const dir = tmpDir();
    await assert.rejects(sampleVideoFolder(dir, tmpDir(), { fps: 1, maxFrames: 1 }), /holds no video files/);
    fs.writeFileSync(path.join(dir, 'broken.mp4'), 'garbage');
    await assert.rejects(sampleVideoFolder(dir, tmpDir(), { fps: 1, maxFrames: 1 }), /ffmpeg could not read .*broken.mp4/);
  });
});
