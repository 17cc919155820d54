import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ffmpegPath, ffprobePath } from '../../core/ffmpeg';
import { retimeMp4 } from '../../streams/mp4-timing';
import { tmpDir } from '../helpers';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const probe = (file: string, args: string[]) => execFileSync(ffprobePath(), ['-v', 'error', '-select_streams', 'v:0', ...args, file]).toString();

/** 12 frames of testsrc at a constant 10 fps, moov at the end (no +faststart), as the pipeline's encoder writes. */
function encode(file: string, codec = ['-c:v', 'libx264', '-bf', '0', '-pix_fmt', 'yuv420p'], extra = ['-video_track_timescale', '90000']): string {
  ff(['-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10', '-frames:v', '12', ...codec, ...extra, file]);
  return file;
}

const packetPts = (file: string) => probe(file, ['-show_entries', 'packet=pts_time', '-of', 'csv=p=0']).trim().split('\n').map(Number);
const stream = (file: string) => {
  const s = JSON.parse(probe(file, ['-count_frames', '-show_entries', 'stream=duration,nb_read_frames', '-of', 'json'])).streams[0] as { duration: string; nb_read_frames: string };
  return { duration: Number(s.duration), frames: Number(s.nb_read_frames) };
};

/** Within one tick of 90 kHz, plus ffprobe's 6 printed decimals. */
const TOL = 1 / 90000 + 1e-6;

function assertTiming(file: string, want: number[], duration: number): void {
  const got = packetPts(file);
  assert.equal(got.length, want.length, `packets ${got}`);
  got.forEach((t, i) => assert.ok(Math.abs(t - want[i]) <= TOL, `pts[${i}] ${t}, want ${want[i]} (all: ${got})`));
  const s = stream(file);
  assert.ok(Math.abs(s.duration - duration) <= TOL, `duration ${s.duration}, want ${duration}`);
  assert.equal(s.frames, want.length);
  // By default ffmpeg 4.1 times the null output by the frame rate in the H.264 SPS (libx264 still states
  // 10 fps) and warns when two frames share a 1/10 s slot; that says nothing about the file, so keep the
  // container's time base (-enc_time_base -1) and its timestamps (-vsync 0).
  const r = spawnSync(ffmpegPath(), ['-hide_banner', '-nostdin', '-v', 'error', '-i', file, '-vsync', '0', '-enc_time_base', '-1', '-f', 'null', '-']);
  assert.equal(r.status, 0);
  assert.equal(r.stderr.toString(), '', 'decodes cleanly');
}

/** Top-level boxes by their 32-bit headers (enough for these small test files). */
function topBoxes(file: string): { type: string; offset: number; size: number }[] {
  const b = fs.readFileSync(file), out = [];
  for (let p = 0; p < b.length; p += b.readUInt32BE(p)) out.push({ type: b.toString('latin1', p + 4, p + 8), offset: p, size: b.readUInt32BE(p) });
  return out;
}

const VFR = [0, 0.1, 0.15, 0.4, 0.45, 0.5, 1.0, 1.05, 1.3, 1.31, 1.6, 2.0];

describe('streams: retimeMp4 puts VFR timestamps back on a CFR encode (real ffmpeg)', function () {
  this.timeout(120000);
  const root = tmpDir('i2i-mp4-timing-');

  it('irregular pts land within a tick, the last sample repeats the previous duration, and it decodes in full', () => {
    const f = encode(path.join(root, 'out.mp4'));
    retimeMp4(f, VFR);
    assertTiming(f, VFR, 2.0 + 0.4);
  });

  it('pts are taken relative to pts[0]; equal pts get one tick, paid back by the next; lastDuration is honoured', () => {
    const f = encode(path.join(root, 'offset.mp4'));
    const pts = [7, 7.1, 7.1, 7.1, 7.4, 7.45, 7.5, 8.0, 8.05, 8.3, 8.31, 8.6];
    retimeMp4(f, pts, 0.05);
    const want = pts.map((t) => t - 7);
    want[2] += 1 / 90000; want[3] += 2 / 90000;
    assertTiming(f, want, 1.6 + 0.05);
  });

  it('survives the stream copy with +faststart that finishes the pipeline\'s files', () => {
    const f = encode(path.join(root, 'copy.mp4')), g = path.join(root, 'copy2.mp4');
    retimeMp4(f, VFR);
    ff(['-i', f, '-c', 'copy', '-movflags', '+faststart', g]);
    assert.deepEqual(topBoxes(g).map((b) => b.type).filter((t) => t === 'moov' || t === 'mdat'), ['moov', 'mdat']);
    assertTiming(g, VFR, 2.4);
  });

  it('the lossless RGB encode (libx264rgb -qp 0) works the same', () => {
    const f = encode(path.join(root, 'rgb.mp4'), ['-c:v', 'libx264rgb', '-qp', '0', '-bf', '0', '-pix_fmt', 'rgb24']);
    retimeMp4(f, VFR);
    assertTiming(f, VFR, 2.4);
  });

  it('box forms: a 64-bit largesize mdat, a size-0 (to end of file) moov, a duration that needs version-1 mdhd', () => {
    const f = encode(path.join(root, 'forms.mp4'));
    const boxes = topBoxes(f), b = fs.readFileSync(f);
    // What ffmpeg does past 4 GiB: the 8-byte 'free' before mdat becomes mdat's largesize header, no offset moves.
    const free = boxes.findIndex((x) => x.type === 'free');
    assert.equal(boxes[free + 1].type, 'mdat');
    b.writeUInt32BE(1, boxes[free].offset);
    b.write('mdat', boxes[free].offset + 4, 'latin1');
    b.writeBigUInt64BE(BigInt(8 + boxes[free + 1].size), boxes[free].offset + 8);
    b.writeUInt32BE(0, boxes.find((x) => x.type === 'moov')!.offset);
    fs.writeFileSync(f, b);
    // 12 samples 5000 s apart: 60000 s at 90 kHz is 5.4e9 ticks, past version 0's 32 bits.
    const pts = VFR.map((_, i) => i * 5000);
    retimeMp4(f, pts);
    const got = packetPts(f);
    got.forEach((t, i) => assert.ok(Math.abs(t - pts[i]) <= TOL, `pts[${i}] ${t}`));
    assert.equal(stream(f).duration, 60000);
  });

  it('refuses files of another shape, and leaves them untouched', () => {
    const refuses = (f: string, pts: number[], why: RegExp) => {
      const before = fs.readFileSync(f);
      assert.throws(() => retimeMp4(f, pts), why);
      assert.ok(fs.readFileSync(f).equals(before), 'file unchanged');
    };
    const fast = path.join(root, 'fast.mp4');
    encode(fast, undefined, ['-video_track_timescale', '90000', '-movflags', '+faststart']);
    refuses(fast, VFR, /moov comes before mdat/);
    const f = encode(path.join(root, 'count.mp4'));
    refuses(f, VFR.slice(0, 11), /11 timestamps for 12 video samples/);
    refuses(f, [...VFR, 2.1], /13 timestamps for 12 video samples/);
    refuses(f, [0, 0.2, 0.1, ...VFR.slice(3)], /pts decrease at 2/);
    const bf = encode(path.join(root, 'bframes.mp4'), ['-c:v', 'libx264', '-bf', '2', '-pix_fmt', 'yuv420p']);
    refuses(bf, VFR, /ctts/);
  });
});
