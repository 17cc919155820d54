/**
 * Benchmark (not a test): video through the engine, `npm run bench:video`.
 * - Pipeline vs engine: segment-video's frames/s on a dashcam-like clip (decode, resize, inference,
 *   overlay at the clip's size, H.264 encode, audio mux) divided by the engine's own frames/s on the
 *   same frames already decoded and resized (the same in-flight window): the goal is >= 0.9.
 * - Live: the clip played at its 30 frames/s as a live source (-re): frames segmented and dropped.
 * Models as bench:serve makes them: the small dilated DenseNet at 256x512 int8 and DenseNet121 at
 * 512x1024 int8, 2 worker processes of 1 thread (this machine's 2 cores).
 *
 *   npm run bench:video -- [--out runs/bench-video] [--reuse] [--quick] [--skip-large]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { ffmpegPath } from '../core/ffmpeg';
import { listImages } from '../convert/frames';
import { Engine } from '../serve/engine/engine';
import { decodeFrames, probeVideo } from '../streams/ffmpeg';
import { LiveStream } from '../streams/live';
import { segmentVideo } from '../streams/segment-video';
import { prepareBundles, type ModelCase } from './bundles';

const { values } = parseArgs({ options: {
  out: { type: 'string', default: 'runs/bench-video' }, reuse: { type: 'boolean' }, quick: { type: 'boolean' }, 'skip-large': { type: 'boolean' }, 'small-steps': { type: 'string', default: '200' },
} });
const OUT = path.resolve(values.out!);
const QUICK = Boolean(values.quick);
const log = (l: string) => process.stderr.write(`[bench:video] ${l}\n`);
const table: string[] = [];
const emit = (l = '') => { table.push(l); process.stdout.write(l + '\n'); };

/** A 1024x512, 30 frames/s clip with an audio track, from the held-out synthetic target scenes (each held for 3 frames, looped). */
function makeClip(data: string, file: string, seconds: number): void {
  if (fs.existsSync(file)) return;
  const scenes = listImages(path.join(data, 'target', 'leftImg8bit', 'val'), 40);
  const frames = Array.from({ length: Math.ceil(seconds * 10) }, (_, i) => scenes[i % scenes.length]);
  const list = `${file}.txt`;
  fs.writeFileSync(list, frames.map((f) => `file '${f}'\nduration 0.1\n`).join('') + `file '${frames[frames.length - 1]}'\n`);
  execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=44100',
    '-vf', 'scale=1024:512,fps=30', '-t', String(seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', file]);
  fs.rmSync(list);
}

/** Engine-only frames/s: the clip's frames decoded and resized beforehand, submitted with the pipeline's in-flight window. */
async function engineFps(engine: Engine, clip: string, c: ModelCase, n: number): Promise<number> {
  const info = await probeVideo(clip);
  const inputs: Buffer[] = [];
  for await (const f of decodeFrames(info).frames) {
    if (inputs.length === n) break;
    inputs.push(await sharp(f.rgb, { raw: { width: info.width, height: info.height, channels: 3 } }).resize(c.input[1], c.input[0], { fit: 'fill', kernel: 'linear' }).raw().toBuffer());
  }
  const window = 2 * engine.stats().workers;
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  for (const px of inputs) {
    pending.push(engine.submit(px));
    if (pending.length >= window) await pending.shift();
  }
  await Promise.all(pending);
  return inputs.length / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  fs.mkdirSync(OUT, { recursive: true });
  const { small, large, data } = await prepareBundles({ out: OUT, reuse: values.reuse, quick: QUICK, skipLarge: values['skip-large'], smallSteps: Number(values['small-steps']), log });
  const clip = path.join(OUT, `drive-1024x512-30fps-${QUICK ? 4 : 10}s.mp4`);
  makeClip(data, clip, QUICK ? 4 : 10);
  const info = await probeVideo(clip);
  log(`clip ${info.width}x${info.height}, ${info.fps} frames/s, ${info.frames} frames, audio ${info.hasAudio}`);
  emit(`bench:video on ${new Date().toISOString().slice(0, 10)}: clip ${info.width}x${info.height} at ${info.fps} frames/s with audio, int8 TFLite, inference worker processes x 1 thread, overlay output, this 2-core machine`);
  emit();
  emit('| model | inference workers | frames | engine only (frames/s) | segment-video (frames/s) | pipeline / engine | live at 30 fps: segmented / dropped / read | drop rate |');
  emit('|---|---|---|---|---|---|---|---|');
  // The small model with 2 workers (both cores on inference) and with 1 (a core left for decode, overlay and encode).
  const cases = [{ c: small, workers: 2 }, { c: small, workers: 1 }, ...(large ? [{ c: large, workers: 2 }] : [])];
  for (const { c, workers } of cases) {
    const n = c === small ? info.frames : (QUICK ? 8 : 30);
    const engine = await Engine.start({ bundle: c.bundle, runtime: 'tflite', precision: 'int8', workers, threads: 1 });
    try {
      log(`${c.name}, ${workers} worker(s): engine only on ${n} frames`);
      const eng = await engineFps(engine, clip, c, n);
      log(`${c.name}: segment-video on the same ${n} frames`);
      const out = path.join(OUT, `${c === small ? 'small' : 'densenet121'}.overlay.mp4`);
      const r = await segmentVideo({ engine, input: clip, out, duration: n / info.fps, stats: out.replace(/\.mp4$/, '.jsonl') });
      if (r.error || r.frames !== n) throw new Error(`segment-video: ${r.frames} of ${n} frames, ${r.error}`);
      log(`${c.name}: live, the clip played at 30 frames/s`);
      const live = new LiveStream({ name: 'bench', source: clip, engine });
      await live.start();
      const s = live.stats();
      emit(`| ${c.name} | ${workers} | ${n} | ${eng.toFixed(2)} | ${r.fps.toFixed(2)} | **${(r.fps / eng).toFixed(3)}** | ${s.frames.segmented} / ${s.frames.dropped} / ${s.frames.read} | ${(100 * s.frames.dropped / Math.max(1, s.frames.read)).toFixed(1)}% |`);
    } finally {
      await engine.close();
    }
  }
  emit();
  emit('pipeline / engine: segment-video frames/s (probe, decode, resize, inference, overlay, H.264 encode, audio mux; wall clock of the whole call) over the engine\'s frames/s on the same frames pre-decoded. Drop rate: frames of the 30 frames/s source that arrived while the engine was busy (the newest is always segmented next).');
  fs.writeFileSync(path.join(OUT, 'table.md'), table.join('\n') + '\n');
  log(`wrote ${path.join(OUT, 'table.md')}`);
}

main().then(() => process.exit(0), (e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exit(1); });
