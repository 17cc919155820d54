/**
 * One video file through the engine: ffmpeg decodes RGB frames at the display size, each is resized
 * to the bundle input (sharp) and segmented by the worker pool, labels are mapped back onto the
 * frame, and ffmpeg encodes the overlay (H.264) and/or the mask (lossless RGB H.264 of the palette
 * colours) with the source's audio. Decode, inference and encode overlap: up to `inFlight` frames
 * are in the engine at once, results are written in frame order, and every stage waits on the
 * next (bounded buffers), so a slow encoder slows the decoder and memory stays flat.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { blendOverlay, paletteOf, paletteRgb, presentFractions, resizeLabels } from '../runtime/image';
import type { Engine, LabelsResult } from '../serve/engine/engine';
import type { FrameSampler } from '../core/capture';
import { decodeFrames, encodeVideo, probeVideo, type VideoInfo } from './ffmpeg';

export type OutputKind = 'overlay' | 'mask' | 'both';

export interface SegmentVideoOptions {
  engine: Engine;
  input: string;
  /** The overlay MP4 (and `<stem>.mask.mp4` beside it), or the mask MP4 when output is 'mask'. */
  out: string;
  output?: OutputKind;
  /** One JSON line per frame: index, pts seconds, class fractions, drift. */
  stats?: string;
  fps?: number;
  start?: number;
  duration?: number;
  alpha?: number;
  /** Exactly this many frames from `start` (scale-out segments: cut on keyframes, counted from the packet index). */
  frames?: number;
  /** Copy the source's audio into the outputs (default true; scale-out parts leave it to the join). */
  audio?: boolean;
  /** Frames between decode and encode at once: in the engine, or segmented and waiting for the encoder (default: 2 per worker + 2). */
  inFlight?: number;
  signal?: AbortSignal;
  /** A hard stop (a timeout): every ffmpeg of this video is killed at once, frames in flight are lost. */
  kill?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Drift-driven capture (i2i serve --capture): each segmented frame is offered with its drift and pts. */
  capture?: FrameSampler;
}

export interface Progress { file: string; done: number; total: number; fps: number; etaSeconds: number }

export interface VideoResult {
  input: string;
  outputs: string[];
  stats?: string;
  frames: number;
  seconds: number;
  fps: number;
  info: VideoInfo;
  /** Stopped early (Ctrl-C, or a decode error): the outputs hold the frames before it and play. */
  partial: boolean;
  error?: string;
  /**
   * Whose fault `error` is: 'input' (the file: truncated, corrupt; the same file fails the same way),
   * 'output' (writing: an encoder or the audio mux; a full disk passes, a codec does not), 'engine'
   * (inference: a worker lost; worth retrying), 'killed' (the hard stop).
   */
  failure?: 'input' | 'output' | 'engine' | 'killed';
}

export function outputPaths(out: string, kind: OutputKind): { overlay?: string; mask?: string } {
  const mask = kind === 'mask' ? out : out.replace(/(\.[^./]+)?$/, '.mask.mp4');
  return { overlay: kind === 'mask' ? undefined : out, mask: kind === 'overlay' ? undefined : mask };
}

export async function segmentVideo(o: SegmentVideoOptions): Promise<VideoResult> {
  const t0 = performance.now();
  const info = await probeVideo(o.input);
  const m = o.engine.manifest;
  const palette = paletteOf(m.classes);
  const { width: W, height: H } = info;
  const fps = o.fps ?? info.fps;
  const span = Math.max(0, Math.min(o.duration ?? Infinity, info.duration - (o.start ?? 0)));
  const total = o.frames ?? Math.max(1, o.fps ? Math.round(span * o.fps) : Math.round(span * info.fps) || info.frames);
  const paths = outputPaths(o.out, o.output ?? 'overlay');
  for (const p of [paths.overlay, paths.mask, o.stats]) if (p) fs.mkdirSync(path.dirname(p), { recursive: true });
  const audio = o.audio === false || !info.hasAudio ? undefined : { file: o.input, codecs: info.audio.map((a) => a.codec), start: o.start, duration: o.duration };
  // A variable frame rate stays variable: each frame keeps its own time (sampling at --fps is constant).
  const timestamps = info.vfr && !o.fps;
  const overlayEnc = paths.overlay ? encodeVideo(paths.overlay, { width: W, height: H, fps, audioFrom: audio, codec: 'h264', timestamps, kill: o.kill }) : undefined;
  const maskEnc = paths.mask ? encodeVideo(paths.mask, { width: W, height: H, fps, audioFrom: audio, codec: 'lossless', timestamps, kill: o.kill }) : undefined;
  let firstPts: number | undefined;
  const stats = o.stats ? fs.createWriteStream(o.stats) : undefined;
  const { ff: decoder, frames } = decodeFrames(info, { fps: o.fps, start: o.start, duration: o.duration, frames: o.frames });
  const inFlight = o.inFlight ?? 2 * Math.max(1, o.engine.stats().workers) + 2;
  type Pending = { index: number; pts: number; rgb: Buffer; result: Promise<LabelsResult> };
  const onAbort = () => decoder.kill();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  o.kill?.addEventListener('abort', onAbort, { once: true });
  if (o.kill?.aborted) decoder.kill();
  let done = 0, error: string | undefined, failure: VideoResult['failure'];

  const alpha = o.alpha ?? 0.5;
  const emit = async (f: Pending) => {
    const r = await f.result;
    const labels = resizeLabels(r.labels, m.input.width, m.input.height, W, H);
    const writes: Promise<void>[] = [];
    firstPts ??= f.pts;
    const t = f.pts - firstPts;
    if (overlayEnc) writes.push(overlayEnc.write(blendOverlay({ data: f.rgb, width: W, height: H, channels: 3 }, labels, palette, alpha), t));
    if (maskEnc) writes.push(maskEnc.write(paletteRgb(labels, palette), t));
    await Promise.all(writes);
    o.capture?.offer({ data: f.rgb, width: W, height: H }, r.drift, r.version, f.pts);
    if (stats) {
      const line = JSON.stringify({ index: f.index, pts: Number(f.pts.toFixed(6)), drift: r.drift, fractions: presentFractions(labels, m.classes) });
      if (!stats.write(line + '\n')) await new Promise<void>((res) => stats.once('drain', () => res()));
    }
    done++;
    const secs = (performance.now() - t0) / 1000;
    o.onProgress?.({ file: o.input, done, total: Math.max(total, done), fps: done / secs, etaSeconds: Math.max(0, (total - done) / Math.max(done / secs, 1e-9)) });
  };

  // Two loops: this one decodes, resizes and submits; a chain of emits writes results in frame order.
  // They meet in a window of `inFlight` frames, so the encoder taking a frame never holds up the next
  // submission, and a stalled encoder stops the decoder once the window is full.
  let chain = Promise.resolve(), submitted = 0, emitted = 0, emitError: Error | undefined;
  let room: (() => void) | undefined;
  try {
    for await (const f of frames) {
      if (o.signal?.aborted || emitError) break;
      const pixels = await sharp(f.rgb, { raw: { width: W, height: H, channels: 3 } }).resize(m.input.width, m.input.height, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
      // No deadline: a video frame is worth computing however long the queue (the engine bounds it).
      const result = submitWithRetry(o.engine, pixels);
      result.catch(() => { failure ??= 'engine'; });
      result.catch(() => undefined);  // observed in emit, in order
      const p: Pending = { ...f, result };
      submitted++;
      chain = chain.then(async () => {
        if (emitError) return;
        try { await emit(p); } catch (e) { emitError = e as Error; failure ??= 'output'; }
        emitted++;
        room?.();
      });
      while (submitted - emitted >= inFlight && !emitError) await new Promise<void>((r) => { room = r; });
      room = undefined;
    }
  } catch (e) {
    error = (e as Error).message;
    failure = 'input';
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    o.kill?.removeEventListener('abort', onAbort);
  }
  // What was decoded is still segmented and written: a partial output keeps every frame it had.
  await chain;
  if (emitError) error ??= emitError.message;
  // ffmpeg ends a cut-off Matroska or MPEG-TS file as if it were complete: compare with the frames
  // the container announced (2% and one frame of slack for rounding and variable frame rates).
  if (!error && !o.signal?.aborted && done < 0.98 * total - 1) {
    error = `${o.input} ended after frame ${done} of the ${total} its header announces: the file is truncated (the ${done} frames before the cut were segmented)`;
    failure = 'input';
  }
  const ends = await Promise.allSettled([overlayEnc?.end(), maskEnc?.end(), stats && new Promise<void>((r) => stats.end(() => r()))]);
  const failedEnd = ends.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failedEnd && !error) { error = (failedEnd.reason as Error).message; failure = 'output'; }
  if (o.kill?.aborted) { error ??= 'stopped'; failure = 'killed'; }
  const seconds = (performance.now() - t0) / 1000;
  return {
    input: o.input, outputs: [paths.overlay, paths.mask].filter((p): p is string => Boolean(p)), stats: o.stats,
    frames: done, seconds, fps: done / seconds, info, partial: Boolean(error) || Boolean(o.signal?.aborted), error, failure: error ? failure ?? 'output' : undefined,
  };
}

/** The engine refuses frames only when its queue is full; a video waits and retries rather than dropping one. */
async function submitWithRetry(engine: Engine, pixels: Uint8Array): Promise<LabelsResult> {
  for (;;) {
    try {
      return await engine.submit(pixels);
    } catch (e) {
      if ((e as { code?: string }).code !== 'queue-full') throw e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
