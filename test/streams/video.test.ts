import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg';
import { labelsFromPaletteRgb } from '../../runtime/image';
import { segmentVideos } from '../../streams/batch';
import { decodeFrames, liveFfmpegChildren, probeVideo } from '../../streams/ffmpeg';
import { segmentVideo } from '../../streams/segment-video';
import { alive } from '../helpers';
import { ROAD, SKY } from '../serve/fixture';
import { CITYSCAPES_PALETTE } from '../../core/labels';
import { bundleEngine } from './engine-fixture';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);

/** A clip from lavfi: red left half, blue right half, optional sine audio; lossless, so the halves stay flat. */
function clip(file: string, o: { w: number; h: number; fps: number; seconds: number; audio?: boolean; rotate?: number }): string {
  const v = `color=c=red:s=${o.w}x${o.h}:r=${o.fps},drawbox=x=${o.w / 2}:y=0:w=${o.w / 2}:h=${o.h}:color=blue:t=fill`;
  ff(['-f', 'lavfi', '-i', v, ...(o.audio ? ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=22050`] : []), '-t', String(o.seconds),
    '-c:v', 'libx264', '-pix_fmt', 'yuv444p', '-qp', '0', ...(o.audio ? ['-c:a', 'aac', '-shortest'] : []), o.rotate ? `${file}.tmp.mp4` : file]);
  // Rotation metadata as phones write it (a display matrix): ffmpeg 4.1 stores it on a stream copy.
  if (o.rotate) { ff(['-i', `${file}.tmp.mp4`, '-c', 'copy', '-metadata:s:v:0', `rotate=${o.rotate}`, file]); fs.rmSync(`${file}.tmp.mp4`); }
  return file;
}

const streams = (file: string) => JSON.parse(execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', file]).toString()).streams as { codec_type: string; width?: number; height?: number; nb_read_frames?: string; avg_frame_rate?: string }[];

describe('streams: segment-video through the real ffmpeg', function () {
  this.timeout(300000);
  const fx = bundleEngine();
  const { root, bundle } = fx;

  it('frame count, size, frame rate and audio kept; the lossless mask video decodes back to the labels; stats per frame', async () => {
    const src = clip(path.join(root, 'a.mp4'), { w: 322, h: 182, fps: 10, seconds: 2, audio: true });
    const out = path.join(root, 'out', 'a.mp4'), stats = path.join(root, 'out', 'a.jsonl');
    const r = await segmentVideo({ engine: fx.engine(), input: src, out, output: 'both', stats });
    assert.equal(r.error, undefined);
    assert.equal(r.frames, 20, JSON.stringify({ ...r, info: r.info }));
    const [ov, mask] = [streams(out), streams(out.replace(/\.mp4$/, '.mask.mp4'))];
    for (const s of [ov, mask]) {
      const v = s.find((x) => x.codec_type === 'video')!;
      assert.equal(v.width, 322); assert.equal(v.height, 182);
      assert.equal(Number(v.nb_read_frames), 20);
      assert.equal(v.avg_frame_rate, '10/1');
      assert.ok(s.some((x) => x.codec_type === 'audio'), 'audio copied');
    }
    // Decode the mask back: left half road, right half sky, exactly (lossless RGB).
    const info = await probeVideo(out.replace(/\.mp4$/, '.mask.mp4'));
    const { frames } = decodeFrames(info);
    let n = 0;
    for await (const f of frames) {
      const labels = labelsFromPaletteRgb(f.rgb, CITYSCAPES_PALETTE);
      for (const y of [5, 90, 170]) {
        assert.equal(labels[y * 322 + 40], ROAD, `frame ${f.index} row ${y} left`);
        assert.equal(labels[y * 322 + 300], SKY, `frame ${f.index} row ${y} right`);
      }
      n++;
    }
    assert.equal(n, 20);
    const lines = fs.readFileSync(stats, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; pts: number; fractions: Record<string, number>; drift: number });
    assert.equal(lines.length, 20);
    assert.deepEqual(lines.map((l) => l.index), [...Array(20).keys()]);
    assert.ok(Math.abs(lines[10].pts - 1.0) < 1e-6, `pts ${lines[10].pts}`);
    assert.ok(Math.abs(lines[0].fractions.road - 0.5) < 0.02 && Math.abs(lines[0].fractions.sky - 0.5) < 0.02);
    assert.equal(typeof lines[0].drift, 'number');
    assert.deepEqual(liveFfmpegChildren(), [], 'no ffmpeg left running');
  });

  it('rotation metadata is honoured: a 64x32 clip stored with rotate=90 comes out 32x64 and upright', async () => {
    const src = clip(path.join(root, 'rot.mp4'), { w: 64, h: 32, fps: 5, seconds: 1, rotate: 90 });
    const info = await probeVideo(src);
    assert.ok(info.rotation === 90 || info.rotation === 270, `rotation ${info.rotation}`);
    assert.deepEqual([info.width, info.height], [32, 64]);
    const out = path.join(root, 'rot-out.mp4');
    const r = await segmentVideo({ engine: fx.engine(), input: src, out, output: 'mask' });
    assert.equal(r.frames, 5);
    const v = streams(out).find((x) => x.codec_type === 'video')!;
    assert.deepEqual([v.width, v.height], [32, 64]);
    // The mask lines up with the upright frame as players show it: road where it is red, sky where blue.
    const { frames: upright } = decodeFrames(info);
    const first = (await upright.next()).value!;
    await upright.return(undefined);
    const { frames } = decodeFrames(await probeVideo(out));
    const f = (await frames.next()).value!;
    await frames.return(undefined);
    const labels = labelsFromPaletteRgb(f.rgb, CITYSCAPES_PALETTE);
    let checked = 0;
    for (let p = 0; p < 32 * 64; p++) {
      const [r, , b] = first.rgb.subarray(p * 3, p * 3 + 3);
      if (Math.abs(r - b) < 100) continue;  // the chroma edge between the halves
      assert.equal(labels[p], r > b ? ROAD : SKY, `pixel ${p % 32},${Math.floor(p / 32)}`);
      checked++;
    }
    assert.ok(checked > 1800, `${checked} pixels checked`);
    // And the halves are turned: the upright frame's top row is one colour, its left column two.
    assert.equal(new Set(Array.from({ length: 32 }, (_, x) => labels[x])).size, 1);
  });

  it('a truncated file fails with its name and frame; what was segmented plays; a directory goes on with its other files; a rerun skips the complete ones', async () => {
    const dir = path.join(root, 'fleet');
    fs.mkdirSync(path.join(dir, 'cam2'), { recursive: true });
    clip(path.join(dir, 'cam1.mp4'), { w: 64, h: 32, fps: 10, seconds: 1 });
    // A recording cut off mid-file (a camera losing power): MKV, 40 frames of detailed content with
    // a keyframe every 5, truncated at 60% of its bytes.
    const cut = path.join(dir, 'cam2', 'broken.mkv');
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-t', '4', '-c:v', 'libx264', '-g', '5', '-pix_fmt', 'yuv420p', `${cut}.whole.mkv`]);
    const mkv = fs.readFileSync(`${cut}.whole.mkv`);
    fs.rmSync(`${cut}.whole.mkv`);
    fs.writeFileSync(cut, mkv.subarray(0, Math.floor(mkv.length * 0.6)));
    const out = path.join(root, 'fleet-out');
    const first = await segmentVideos({ engine: fx.engine(), bundle, input: dir, out });
    const byName = Object.fromEntries(first.map((f) => [path.basename(f.input), f]));
    assert.equal(byName['cam1.mp4'].status, 'done');
    const broken = byName['broken.mkv'];
    assert.equal(broken.status, 'failed');
    if (broken.status === 'failed') {
      assert.match(broken.error, /broken\.mkv/);
      assert.ok(broken.result && broken.result.frames > 0 && broken.result.frames < 40, `kept ${broken.result?.frames} frames: ${broken.error}`);
      const v = streams(path.join(out, 'cam2', 'broken.mp4')).find((x) => x.codec_type === 'video')!;
      assert.equal(Number(v.nb_read_frames), broken.result!.frames, 'the partial output plays, every segmented frame in it');
    }
    assert.ok(fs.existsSync(path.join(out, 'cam1.mp4.done.json')) && !fs.existsSync(path.join(out, 'cam2', 'broken.mp4.done.json')));
    const again = await segmentVideos({ engine: fx.engine(), bundle, input: dir, out });
    assert.deepEqual(again.map((f) => [path.basename(f.input), f.status]), [['cam1.mp4', 'skipped'], ['broken.mkv', 'failed']]);
    assert.deepEqual(liveFfmpegChildren(), []);
  });

  it('the CLI: Ctrl-C stops with a playable partial output, exit code 130, no ffmpeg child left', async () => {
    const src = clip(path.join(root, 'ctrlc.mp4'), { w: 64, h: 32, fps: 25, seconds: 40 });
    const out = path.join(root, 'ctrlc-out.mp4');
    const cli = spawn(process.execPath, [path.resolve(__dirname, '../../bin/i2i.js'), 'segment-video', src, '--bundle', bundle, '--out', out, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    cli.stderr.on('data', (d) => { err += d; });
    const exited = new Promise<number | null>((r) => cli.on('exit', (c) => r(c)));
    for (const t0 = Date.now(); !/[1-9]\d*\/1000 frames/.test(err) && Date.now() - t0 < 60000;) await new Promise((r) => setTimeout(r, 50));
    const kids = () => { try { return fs.readFileSync(`/proc/${cli.pid}/task/${cli.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; } };
    const children = kids();
    assert.ok(children.length >= 3, `decoder, encoder and a worker run: ${children}`);
    cli.kill('SIGINT');
    assert.equal(await exited, 130, err);
    assert.deepEqual(children.filter(alive), [], 'no child outlives the command');
    const v = streams(out).find((x) => x.codec_type === 'video')!;
    assert.ok(Number(v.nb_read_frames) > 0 && Number(v.nb_read_frames) < 1000, `partial output with ${v.nb_read_frames} frames plays`);
  });

  it('an audio track that stops before the video keeps every video frame (the audio as long as it was)', async () => {
    const src = path.join(root, 'short-audio.mp4');
    ff(['-f', 'lavfi', '-i', 'color=c=red:s=64x32:r=10', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=22050:duration=0.8', '-t', '2',
      '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', src]);
    const out = path.join(root, 'out', 'short-audio.mp4');
    const r = await segmentVideo({ engine: fx.engine(), input: src, out });
    assert.equal(r.frames, 20);
    const s = streams(out);
    assert.equal(Number(s.find((x) => x.codec_type === 'video')!.nb_read_frames), 20, 'video frames kept');
    const a = JSON.parse(execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-select_streams', 'a', '-show_entries', 'stream=duration', '-of', 'json', out]).toString()).streams[0] as { duration: string };
    assert.ok(Math.abs(Number(a.duration) - 0.8) < 0.1, `audio ${a.duration} s`);
  });

  it('a variable frame rate stays variable: every frame keeps its source time (audio-free VFR clip, overlay and mask)', async () => {
    // 10 frames 0.1 s apart, then 10 at 1/30 s: a camera that sped up.
    const src = path.join(root, 'vfr.mp4');
    ff(['-f', 'lavfi', '-i', 'color=c=red:s=64x32:r=10', '-frames:v', '20', '-vf', "settb=1/1000,setpts='if(lt(N,10),N*0.1,1+(N-10)/30)/TB'", '-r', '1000', '-vsync', 'vfr',
      '-c:v', 'libx264', '-pix_fmt', 'yuv444p', '-qp', '0', '-video_track_timescale', '90000', src]);
    const info = await probeVideo(src);
    assert.ok(info.vfr, `probed as VFR: ${info.fps}`);
    const out = path.join(root, 'vfr-out.mp4');
    const r = await segmentVideo({ engine: fx.engine(), input: src, out, output: 'both' });
    assert.equal(r.error, undefined);
    // The times a player shows: the frames ffmpeg decodes (the clip's edit list hides its last, 1 ms, frame).
    const times = async (file: string) => { const t: number[] = []; for await (const f of decodeFrames(await probeVideo(file)).frames) t.push(f.pts); return t; };
    const want = await times(src);
    assert.ok(want.length >= 19 && Math.abs(want[12] - want[11] - 1 / 30) < 0.002 && Math.abs(want[5] - want[4] - 0.1) < 0.002, want.join(' '));
    for (const f of [out, out.replace(/\.mp4$/, '.mask.mp4')]) {
      const got = await times(f);
      assert.equal(got.length, want.length, f);
      got.forEach((t, i) => assert.ok(Math.abs(t - got[0] - (want[i] - want[0])) < 0.002, `${path.basename(f)} frame ${i}: ${t} vs ${want[i]}`));
    }
  });

  it('back-pressure: an encoder that stops (SIGSTOP) stops the pipeline and the decoder without memory growing; it resumes and finishes every frame', async () => {
    const src = clip(path.join(root, 'bp.mp4'), { w: 640, h: 360, fps: 25, seconds: 8 });
    const out = path.join(root, 'bp-out.mp4');
    let done = 0;
    const run = segmentVideo({ engine: fx.engine(), input: src, out, onProgress: (p) => { done = p.done; } });
    for (const t0 = Date.now(); done < 10 && Date.now() - t0 < 60000;) await new Promise((r) => setTimeout(r, 20));
    const cmd = (pid: number) => { try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return ''; } };
    const encoder = liveFfmpegChildren().find((pid) => cmd(pid).includes('pipe:0'))!;
    const decoder = liveFfmpegChildren().find((pid) => cmd(pid).includes('pipe:1'))!;
    assert.ok(encoder && decoder, 'the encoder and decoder run');
    // CPU ticks of a process (utime + stime); a decoder that ran to the end and exited counts as unbounded.
    const cpu = (pid: number) => { try { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); } catch { return Infinity; } };
    process.kill(encoder, 'SIGSTOP');
    try {
      await new Promise((r) => setTimeout(r, 500));  // what was in the pipes settles
      const [d0, rss0, c0] = [done, process.memoryUsage().rss, cpu(decoder)];
      await new Promise((r) => setTimeout(r, 2000));
      const [d1, rss1, c1] = [done, process.memoryUsage().rss, cpu(decoder)];
      assert.equal(d1, d0, 'no frame is finished while the encoder takes none');
      // Unbounded, 2 s of decoding 640x360 RGB at hundreds of frames/s would be hundreds of MB.
      assert.ok(rss1 - rss0 < 40 * 2 ** 20, `memory grew by ${((rss1 - rss0) / 2 ** 20).toFixed(1)} MiB`);
      assert.ok(c1 - c0 <= 5, `the decoder used ${c1 - c0} ticks of CPU while blocked`);
    } finally {
      process.kill(encoder, 'SIGCONT');
    }
    const r = await run;
    assert.equal(r.error, undefined);
    assert.equal(r.frames, 200);
  });
});
