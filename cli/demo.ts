/**
 * `npm run demo`: the whole pipeline on a built-in default, on CPU, in minutes, as a user would run
 * it stage by stage: synthesise both driving domains (i2i synth), train source-only and the full
 * I2I method with the same budget, evaluate both on held-out target frames, convert the adapted one
 * (TFLite float32 and int8, calibrated on target frames), serve it on a free port and segment the
 * held-out frames through POST /segment, make a dashcam-like clip with an audio track and run it
 * through segment-video, write the report, stop everything, and print one table.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Manifest } from '../core/bundle';
import { UserError } from '../core/errors';
import { median } from '../core/stats';
import { ffmpegPath } from '../core/ffmpeg';
import { CITYSCAPES_CLASSES } from '../core/labels';
import { convert, parityTable } from '../convert/convert';
import { writeReport } from '../report/report';
import type { Logger } from '../serve/app';
import { startServer, type RunningServer } from '../serve/server';
import { probeVideo, runFfmpeg } from '../streams/ffmpeg';
import { segmentVideo } from '../streams/segment-video';
import type { ConfigPatch } from '../train/config';
import { writeSynth } from '../train/data/synth';
import { evaluateRun } from '../train/evaluate-run';
import { train } from '../train/trainer';

export interface DemoProfile {
  name: string;
  scenes: { source: number; target: number; val: number };
  /** Scene size (height, width) and the bundle's input. */
  size: [number, number];
  input: [number, number];
  steps: number;
  precisions: ('fp32' | 'int8' | 'fp16' | 'uint8')[];
  /** Frames each held-out scene stays on screen in the clip (10 frames/s). */
  clipRepeat: number;
  overrides?: ConfigPatch;
}

export const FULL: DemoProfile = { name: 'full', scenes: { source: 200, target: 200, val: 40 }, size: [256, 512], input: [128, 256], steps: 400, precisions: ['fp32', 'int8', 'fp16', 'uint8'], clipRepeat: 5 };
/** `--quick`: the same stages on less than a third of the data and 120 steps (2 minutes on 2 cores). */
export const QUICK: DemoProfile = { name: 'quick', scenes: { source: 60, target: 60, val: 16 }, size: [256, 512], input: [128, 256], steps: 120, precisions: ['fp32', 'int8'], clipRepeat: 5 };

export interface DemoSummary {
  profile: string;
  minutes: number;
  mIoU: { sourceOnly: number; adapted: number };
  /** mIoU points lost by the int8 TFLite file against float32 on the held-out frames. */
  int8Drop: number;
  server: { frames: number; medianMs: number; p95Ms: number; runtime: string; precision: string };
  video: { frames: number; fps: number; width: number; height: number; audio: boolean };
  drift: { target: number; source: number; frames: number };
  paths: Record<string, string>;
}

/** The q-quantile as the nearest sample above (p95 of a few dozen latencies). */
function quantile(v: number[], q: number): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** The server's JSON log lines go to a file: the terminal shows the demo's own progress. */
function fileLogger(file: string): Logger & { close(): void } {
  const fd = fs.openSync(file, 'w');
  const line = (level: string) => (o: object, msg?: string) => { fs.writeSync(fd, JSON.stringify({ time: new Date().toISOString(), level, msg, ...o }) + '\n'); };
  return { info: line('info'), warn: line('warn'), error: line('error'), close: () => fs.closeSync(fd) };
}

async function synthesise(data: string, p: DemoProfile, progress: (l: string) => void): Promise<void> {
  const marker = path.join(data, 'scenes.json');
  const want = JSON.stringify({ scenes: p.scenes, size: p.size });
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === want) { progress(`[demo] reusing the synthetic scenes in ${data}`); return; }
  fs.rmSync(data, { recursive: true, force: true });
  const [height, width] = p.size;
  progress(`[demo] 1/8 synthesising ${p.scenes.source} source scenes (GTA5 layout) and ${p.scenes.target} + ${p.scenes.val} target scenes (Cityscapes layout, train + val) at ${height}x${width} into ${data}`);
  await writeSynth({ out: path.join(data, 'source'), domain: 'source', count: p.scenes.source, height, width, seed: 1 });
  await writeSynth({ out: path.join(data, 'target'), domain: 'target', count: p.scenes.target, height, width, seed: 2 });
  await writeSynth({ out: path.join(data, 'target'), domain: 'target', count: p.scenes.val, height, width, seed: 3, split: 'val' });
  fs.writeFileSync(marker, want);
}

const pngsIn = (dir: string) => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.png')).sort().map((f) => path.join(dir, f));

/** POST each frame to /segment?format=json: round-trip milliseconds and the drift the server reports. */
async function postFrames(url: string, files: string[]): Promise<{ ms: number[]; drift: number[] }> {
  const ms: number[] = [], drift: number[] = [];
  for (const f of files) {
    const body = fs.readFileSync(f);
    const t0 = performance.now();
    const res = await fetch(`${url}/segment?format=json`, { method: 'POST', body, headers: { 'Content-Type': 'image/png' }, signal: AbortSignal.timeout(30_000) });
    const j = await res.json() as { drift: number | null; error?: string };
    if (!res.ok) throw new Error(`POST /segment answered ${res.status} for ${f}: ${j.error}`);
    ms.push(performance.now() - t0);
    if (j.drift !== null) drift.push(j.drift);
  }
  return { ms, drift };
}

/** A dashcam-like clip: each held-out scene for `repeat` frames at 10 frames/s, H.264 with an AAC tone as its audio. */
async function makeClip(frames: string[], repeat: number, out: string): Promise<void> {
  // An image sequence of links, each scene `repeat` times: the image2 demuxer gives exactly that many
  // frames at 10 frames/s (the concat demuxer with durations lost frames to -r's rounding on short
  // clips), and the tone is generated at exactly the video's length (no -shortest, no -frames:v,
  // which ended the audio track early).
  const dir = `${out}.frames`;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  let n = 0;
  for (const f of frames) for (let k = 0; k < repeat; k++) fs.symlinkSync(path.resolve(f), path.join(dir, `${String(n++).padStart(6, '0')}.png`));
  const ff = runFfmpeg(['-v', 'error', '-nostdin', '-y', '-framerate', '10', '-i', path.join(dir, '%06d.png'), '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${n / 10}`,
    '-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', out], { stdin: 'ignore', stdout: 'ignore' });
  const r = await ff.done;
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.code !== 0) throw new Error(`ffmpeg could not make the demo clip (${ffmpegPath()}): ${ff.stderrTail()}`);
}

export async function runDemo(o: { out: string; profile?: DemoProfile; progress?: (l: string) => void }): Promise<{ text: string; summary: DemoSummary }> {
  const p = o.profile ?? FULL;
  const progress = o.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const t0 = Date.now();
  const at = (...parts: string[]) => path.join(o.out, ...parts);
  try { fs.mkdirSync(o.out, { recursive: true }); } catch (e) {
    throw new UserError(`Cannot create the demo's folder ${o.out}: ${(e as Error).message}.`, 'Pass --out a folder you can write.');
  }
  const data = at('data'), src = at('data', 'source'), tgt = at('data', 'target');
  await synthesise(data, p, progress);

  const common: ConfigPatch = { ...p.overrides, steps: p.steps, logEvery: Math.min(25, p.steps), data: { ...p.overrides?.data, sourceRoot: src, targetRoot: tgt } };
  const scores: Record<string, { mIoU: number; perClass: number[] }> = {};
  for (const [i, method] of ['source-only', 'full'].entries()) {
    const dir = at(method);
    fs.rmSync(dir, { recursive: true, force: true });
    progress(`[demo] ${2 + i}/8 training ${method} (synthetic game -> camera scenes, ${p.steps} steps) into ${dir}`);
    await train({ task: 'synth-drive', method, out: dir, overrides: common, progress });
    const r = await evaluateRun(dir, { targetRoot: tgt });
    scores[method] = { mIoU: r.seg!.mIoU, perClass: r.seg!.perClass };
    progress(`[demo]     ${method}: mIoU ${(r.seg!.mIoU * 100).toFixed(1)} on ${r.seg!.n} held-out target frames`);
  }

  const bundle = at('bundle');
  fs.rmSync(bundle, { recursive: true, force: true });
  progress(`[demo] 4/8 converting the adapted segmenter into ${bundle} (${p.precisions.join(', ')}; int8 calibrated on target training frames), each file judged on the held-out target frames`);
  const manifest = await convert({ checkpoint: at('full'), out: bundle, input: p.input, precisions: p.precisions, calibrate: path.join(tgt, 'leftImg8bit', 'train'), eval: tgt, progress });
  const int8 = manifest.parity.find((r) => r.format === 'tflite' && r.precision === 'int8');

  const val = pngsIn(path.join(tgt, 'leftImg8bit', 'val'));
  const sourceFrames = pngsIn(path.join(src, 'images')).slice(0, val.length);
  const clip = at('clip.mp4'), segClip = at('clip.seg.mp4'), stats = at('clip.seg.jsonl'), serverLog = at('server.log');
  let server: RunningServer | undefined;
  let servedBy = { runtime: '', precision: '' };
  const log = fileLogger(serverLog);
  let served: { ms: number[]; target: number[]; source: number[] };
  let video: Awaited<ReturnType<typeof segmentVideo>>;
  try {
    progress(`[demo] 5/8 starting i2i serve on a free port (log: ${serverLog})`);
    server = await startServer({ bundle, port: 0, log });
    servedBy = { runtime: server.engine.runtime, precision: server.engine.file.precision };
    progress(`[demo]     serving on ${server.url} (${servedBy.runtime} ${servedBy.precision}); POST /segment with ${val.length} held-out target frames and ${sourceFrames.length} source frames`);
    const t = await postFrames(server.url, val);
    const s = await postFrames(server.url, sourceFrames);
    served = { ms: t.ms, target: t.drift, source: s.drift };

    progress(`[demo] 6/8 making a ${(val.length * p.clipRepeat / 10).toFixed(1)} s dashcam-like clip of the held-out scenes with an audio track (${clip}), then segment-video on the server's engine`);
    await makeClip(val, p.clipRepeat, clip);
    let last = 0;
    video = await segmentVideo({ engine: server.engine, input: clip, out: segClip, stats, onProgress: (q) => {
      if (Date.now() - last < 2000 && q.done < q.total) return;
      last = Date.now();
      progress(`[demo]     segment-video ${q.done}/${q.total} frames, ${q.fps.toFixed(1)} frames/s`);
    } });
    if (video.error) throw new Error(`segment-video failed on the demo clip: ${video.error}`);
  } finally {
    progress('[demo] 7/8 stopping the server');
    try { await server?.close(); } finally { log.close(); }
  }

  const report = at('report.html');
  progress(`[demo] 8/8 writing the report ${report}`);
  const rep = await writeReport({ run: at('full'), baseline: at('source-only'), bundle, out: report, progress });

  const summary: DemoSummary = {
    profile: p.name,
    minutes: (Date.now() - t0) / 60000,
    mIoU: { sourceOnly: scores['source-only'].mIoU, adapted: scores.full.mIoU },
    int8Drop: int8?.scoreDropVsFp32 ?? NaN,
    server: { frames: served.ms.length, medianMs: median(served.ms), p95Ms: quantile(served.ms, 0.95), ...servedBy },
    video: { frames: video.frames, fps: video.fps, width: video.info.width, height: video.info.height, audio: (await probeVideo(segClip)).hasAudio },
    drift: { target: median(served.target), source: median(served.source), frames: served.target.length },
    paths: { data, sourceOnly: at('source-only'), adapted: at('full'), bundle, clip, segmented: segClip, stats, serverLog, report: rep.out, summary: at('summary.json') },
  };
  fs.writeFileSync(summary.paths.summary, JSON.stringify(summary, null, 2) + '\n');
  return { text: table(summary, scores, manifest), summary };
}

function table(s: DemoSummary, scores: Record<string, { perClass: number[] }>, manifest: Manifest): string {
  const pct = (v: number) => (Number.isNaN(v) ? '-' : (v * 100).toFixed(1));
  const present = CITYSCAPES_CLASSES.map((c, i) => [c, i] as const).filter(([, i]) => Object.values(scores).some((r) => !Number.isNaN(r.perClass[i])));
  return [
    `i2i-adapt demo (${s.profile}): synthetic game -> camera driving scenes, ${s.minutes.toFixed(1)} min`,
    '',
    '| | |',
    '|---|---|',
    `| mIoU source-only -> adapted (held-out target frames) | ${pct(s.mIoU.sourceOnly)} -> ${pct(s.mIoU.adapted)} |`,
    `| int8 TFLite mIoU drop vs float32 | ${pct(s.int8Drop)} points |`,
    `| server POST /segment latency, ${s.server.frames} PNG frames, ${s.server.runtime} ${s.server.precision} (median / p95) | ${s.server.medianMs.toFixed(1)} / ${s.server.p95Ms.toFixed(1)} ms |`,
    `| segment-video, ${s.video.frames} frames ${s.video.width}x${s.video.height}${s.video.audio ? ' with audio' : ''} | ${s.video.fps.toFixed(1)} frames/s |`,
    `| drift median, held-out target vs source frames | ${s.drift.target.toFixed(2)} vs ${s.drift.source.toFixed(2)} |`,
    '',
    `IoU per class (%), ${present.length} classes the scenes draw:`,
    `| method | ${present.map(([c]) => c).join(' | ')} |`,
    `|---|${present.map(() => '---').join('|')}|`,
    ...Object.entries(scores).map(([m, r]) => `| ${m} | ${present.map(([, i]) => pct(r.perClass[i])).join(' | ')} |`),
    '',
    `The bundle (input ${manifest.input.height}x${manifest.input.width}), each file against the training model on the held-out frames:`,
    parityTable(manifest),
    '',
    'written:',
    ...Object.entries(s.paths).map(([k, v]) => `  ${k.padEnd(10)} ${v}`),
  ].join('\n');
}
