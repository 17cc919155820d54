/**
 * Sources whose audio an MP4 cannot hold as it is (cameras' PCM in MOV/AVI/MKV, Opus in WebM,
 * FLAC in MKV): the outputs get AAC, the job succeeds, and a folder run completes them once.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg';
import { segmentVideos } from '../../streams/batch';
import { liveFfmpegChildren } from '../../streams/ffmpeg';
import { segmentVideo } from '../../streams/segment-video';
import { bundleEngine } from './engine-fixture';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const probe = (file: string) => JSON.parse(execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', file]).toString()).streams as { codec_type: string; codec_name: string; nb_read_frames?: string; duration?: string }[];

/** 2 s of 10 frames/s video with a tone, in `container` with `audio` as the audio codec (real encoders). */
export function clipWithAudio(file: string, audio: string[]): string {
  ff(['-f', 'lavfi', '-i', 'testsrc=s=96x64:r=10', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '2',
    '-c:v', file.endsWith('.webm') ? 'libvpx' : file.endsWith('.avi') ? 'mjpeg' : 'libx264', ...(file.endsWith('.webm') || file.endsWith('.avi') ? [] : ['-pix_fmt', 'yuv420p']), ...audio, file]);
  return file;
}

describe('streams: audio an MP4 cannot hold is made AAC (real ffmpeg)', function () {
  this.timeout(300000);
  const fx = bundleEngine();
  const { root, bundle } = fx;

  const cases: [string, string[], string][] = [
    ['camera.mov', ['-c:a', 'pcm_s16le'], 'pcm_s16le'],
    ['camera.avi', ['-c:a', 'pcm_s16le'], 'pcm_s16le'],
    ['camera.mkv', ['-c:a', 'flac'], 'flac'],
    ['phone.webm', ['-c:a', 'libopus'], 'opus'],
    ['copied.mkv', ['-c:a', 'aac'], 'aac'],
  ];
  for (const [name, args, codec] of cases) {
    it(`${name} (${codec} audio): every frame segmented, the output's audio is ${codec === 'aac' ? 'copied' : 'AAC'}`, async () => {
      const src = clipWithAudio(path.join(root, name), args);
      assert.equal(probe(src).find((s) => s.codec_type === 'audio')!.codec_name, codec, 'the fixture has the audio it claims');
      const out = path.join(root, 'out', `${name}.mp4`);
      const r = await segmentVideo({ engine: fx.engine(), input: src, out, output: 'both' });
      assert.equal(r.error, undefined);
      assert.equal(r.frames, 20);
      for (const f of [out, out.replace(/\.mp4$/, '.mask.mp4')]) {
        const s = probe(f);
        assert.equal(Number(s.find((x) => x.codec_type === 'video')!.nb_read_frames), 20, f);
        const a = s.find((x) => x.codec_type === 'audio');
        assert.equal(a?.codec_name, 'aac', `${f} has AAC audio`);
        assert.ok(Math.abs(Number(a!.duration) - 2) < 0.1, `audio lasts ${a!.duration} s`);
      }
      assert.ok(!fs.existsSync(`${out}.video.mp4`), 'no intermediate file left');
    });
  }

  it('a folder with a PCM camera file completes it once: the rerun skips it', async () => {
    const dir = path.join(root, 'cams');
    fs.mkdirSync(dir);
    clipWithAudio(path.join(dir, 'cam.mov'), ['-c:a', 'pcm_s16le']);
    const out = path.join(root, 'cams-out');
    const first = await segmentVideos({ engine: fx.engine(), bundle, input: dir, out });
    assert.deepEqual(first.map((f) => f.status), ['done'], JSON.stringify(first.map((f) => f.status === 'failed' ? f.error : f.status)));
    const again = await segmentVideos({ engine: fx.engine(), bundle, input: dir, out });
    assert.deepEqual(again.map((f) => f.status), ['skipped']);
    assert.deepEqual(liveFfmpegChildren(), []);
  });
});
