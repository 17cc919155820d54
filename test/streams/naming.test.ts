/**
 * Folder runs keep every input's output apart (x.mp4 and x.mkv in one folder), and a Matroska
 * file's frame total comes from its video track, not from the container (which spans the audio).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg';
import { segmentVideos } from '../../streams/batch';
import { probeVideo } from '../../streams/ffmpeg';
import { segmentVideo } from '../../streams/segment-video';
import { bundleEngine } from './engine-fixture';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const frames = (file: string) => Number(JSON.parse(execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_streams', '-of', 'json', file]).toString()).streams[0].nb_read_frames);
const video = (file: string, n: number, audio?: string[]) => ff(['-f', 'lavfi', '-t', String(n / 10), '-i', 'testsrc=s=96x64:r=10', ...(audio ?? []), '-c:v', 'libx264', '-pix_fmt', 'yuv420p', file]);

describe('streams: output names in a folder, and Matroska durations (real ffmpeg)', function () {
  this.timeout(300000);
  const fx = bundleEngine();
  const { root, bundle } = fx;

  it('x.mp4 and x.mkv in one folder: x.mp4 keeps its name, x.mkv becomes x.mkv.mp4 (stats and .done.json alike); a lone stem keeps <stem>.mp4; a rerun skips all', async () => {
    const dir = path.join(root, 'cams');
    fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    video(path.join(dir, 'x.mp4'), 10);
    video(path.join(dir, 'x.mkv'), 15);
    video(path.join(dir, 'y.mov'), 5);
    video(path.join(dir, 'sub', 'x.avi'), 7);
    const out = path.join(root, 'out'), stats = path.join(root, 'stats');
    const first = await segmentVideos({ engine: fx.engine(), bundle, input: dir, out, stats });
    assert.deepEqual(first.map((f) => f.status), ['done', 'done', 'done', 'done'], JSON.stringify(first.map((f) => (f.status === 'failed' ? f.error : f.status))));
    const want: Record<string, number> = { 'x.mp4': 10, 'x.mkv.mp4': 15, 'y.mp4': 5, 'sub/x.mp4': 7 };
    for (const [name, n] of Object.entries(want)) {
      assert.equal(frames(path.join(out, name)), n, name);
      assert.ok(fs.existsSync(path.join(out, `${name}.done.json`)), `${name}.done.json`);
      const lines = fs.readFileSync(path.join(stats, name.replace(/\.mp4$/, '.jsonl')), 'utf8').trim().split('\n');
      assert.equal(lines.length, n, `${name}'s stats`);
    }
    const again = await segmentVideos({ engine: fx.engine(), bundle, input: dir, out, stats });
    assert.deepEqual(again.map((f) => f.status), ['skipped', 'skipped', 'skipped', 'skipped']);
  });

  it('an MKV whose audio outlasts its video (2 s of video, 3 s of audio): 20 frames announced and segmented, no "truncated" verdict', async () => {
    const mkv = path.join(root, 'long-audio.mkv');
    video(mkv, 20, ['-f', 'lavfi', '-t', '3', '-i', 'sine=frequency=440:sample_rate=48000', '-c:a', 'flac']);
    const info = await probeVideo(mkv);
    assert.ok(Math.abs(info.duration - 2) < 0.05, `video duration ${info.duration}`);
    assert.equal(info.frames, 20);
    let total = 0;
    const r = await segmentVideo({ engine: fx.engine(), input: mkv, out: path.join(root, 'long-audio.mp4'), onProgress: (p) => { total = p.total; } });
    assert.equal(r.error, undefined);
    assert.equal(r.frames, 20);
    assert.equal(total, 20, 'progress counts the video\'s frames');
  });
});
