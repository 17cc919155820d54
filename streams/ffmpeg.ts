/**
 * Every ffmpeg and ffprobe process of streams/ (and fleet/), in one module. fluent-ffmpeg (the
 * package the user named, archived upstream) is not used here: its piping falls short exactly where
 * a pipeline needs it (no 'end' on piped output, stderr that must be drained or ffmpeg stalls,
 * `.pipe()` returning no handle to kill), and its probe spawns a child nobody owns. So:
 * - every child is registered and killed when this process exits (none outlives the command), and
 *   runs in a process group of its own (a terminal's Ctrl-C is the command's to handle);
 * - every file from outside is opened with UNTRUSTED_FILE_INPUT (core/ffmpeg.ts): local files,
 *   video containers only;
 * - stderr is always drained, its tail kept for error messages;
 * - `-nostdin` wherever ffmpeg must not read the terminal (the encoder reads frames from stdin).
 * The binary is @ffmpeg-installer's static ffmpeg 4.1 unless I2I_FFMPEG names a system one
 * (core/ffmpeg.ts); 4.1 has no -fps_mode, so -vsync is used.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { UserError } from '../core/errors';
import { ffmpegPath, ffprobePath, UNTRUSTED_FILE_INPUT, VIDEO_DEMUXERS, VideoRefused } from '../core/ffmpeg';
import { retimeMp4 } from './mp4-timing';

export interface VideoInfo {
  file: string;
  /** Display size: after the rotation metadata (ffmpeg's decoder applies it). */
  width: number;
  height: number;
  /** Rotation metadata in degrees (0, 90, 180, 270), as the file states it. */
  rotation: number;
  /** Average frame rate (frames / s), and whether the stream's timestamps vary (VFR). */
  fps: number;
  vfr: boolean;
  /** Seconds, and frames where the container says (else estimated from duration x fps). */
  duration: number;
  frames: number;
  hasAudio: boolean;
  /** The container as ffprobe names its demuxer (e.g. 'mov,mp4,m4a,3gp,3g2,mj2', 'matroska,webm'), the video codec, and each audio stream's codec. */
  format: string;
  codec: string;
  audio: { codec: string }[];
}

const rate = (r: string | undefined) => {
  const [a, b] = (r ?? '0/1').split('/').map(Number);
  return b ? a / b : a || 0;
};

/** What ffprobe's JSON says of a file (the fields read here). */
interface ProbeJson {
  format?: { format_name?: string; duration?: string };
  streams?: { codec_type?: string; codec_name?: string; width?: number; height?: number; avg_frame_rate?: string; r_frame_rate?: string; duration?: string; nb_frames?: string; tags?: Record<string, string>; side_data_list?: { rotation?: number | string }[] }[];
}

/** Codecs of single pictures: in a container with one frame they are a photo, not a video. */
const STILL_CODECS = new Set(['mjpeg', 'png', 'bmp', 'gif', 'webp', 'tiff', 'jpeg2000', 'jpegls', 'targa', 'ppm', 'pgm', 'pgmyuv', 'pam']);

/**
 * Probes a file from outside (upload, server path, folder of videos) with ffprobe restricted to
 * local files and to video containers (core/ffmpeg.ts UNTRUSTED_FILE_INPUT): a playlist, a list
 * or a still image is refused (VideoRefused) before ffprobe reads past its first bytes.
 */
export async function probeVideo(file: string): Promise<VideoInfo> {
  const r = await runProbe([...UNTRUSTED_FILE_INPUT, '-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file]);
  if (r.code !== 0) {
    if (/not on whitelist/i.test(r.stderr)) throw refusedContainer(file, await probedFormat(file));
    throw new UserError(`${file} is not a readable video: ${r.stderr.split('\n').filter(Boolean).pop() ?? `ffprobe ${r.signal ?? `exit ${r.code}`}`}.`, 'Check the file plays (ffprobe it), or remove it.');
  }
  let data: ProbeJson;
  try { data = JSON.parse(r.stdout) as ProbeJson; } catch { throw new UserError(`ffprobe wrote no readable description of ${file}.`, 'Check the ffprobe binary (I2I_FFPROBE).'); }
  const streams = data.streams ?? [], format = data.format ?? {};
  const v = streams.find((s) => s.codec_type === 'video');
  if (!v || !v.width || !v.height) throw new UserError(`${file} has no video stream.`, 'Pass a video file (MP4, MOV, MKV, ...).');
  // As the file states it: the old 'rotate' tag, or the display matrix. Only width/height use it
  // here: ffmpeg's decoder turns the frames upright itself (autorotate).
  const side = v.side_data_list?.find((d) => d.rotation !== undefined)?.rotation;
  const rotation = ((Math.round(Number(v.tags?.rotate ?? side ?? 0)) % 360) + 360) % 360;
  const swap = rotation === 90 || rotation === 270;
  const avg = rate(v.avg_frame_rate), real = rate(v.r_frame_rate);
  const fps = avg || real || 25;
  // The video's own duration: the stream's, else Matroska's per-track DURATION tag (HH:MM:SS.f; MKV
  // and WebM streams have no duration of their own), and only then the container's, which spans
  // every stream (an audio track longer than the video made a complete file look truncated).
  const clock = (t: unknown) => { const m = /^(\d+):(\d+):([\d.]+)$/.exec(String(t)); return m ? +m[1] * 3600 + +m[2] * 60 + +m[3] : NaN; };
  const duration = [Number(v.duration), clock(v.tags?.DURATION ?? v.tags?.duration), Number(format.duration)].find((d) => Number.isFinite(d) && d > 0) ?? 0;
  const frames = Number(v.nb_frames) || Math.round(duration * fps);
  const audio = streams.filter((s) => s.codec_type === 'audio').map((s) => ({ codec: s.codec_name ?? 'unknown' }));
  // A photo in a video container (or an MP3's cover art) decodes to one frame: it is not a video.
  if (STILL_CODECS.has(v.codec_name ?? '') && frames <= 1) throw new VideoRefused(`${file} is a still image (one ${v.codec_name} picture in ${format.format_name}), not a video.`, 'Send a video; POST /segment takes single images.');
  return {
    file, format: format.format_name ?? '', codec: v.codec_name ?? 'unknown', width: swap ? v.height : v.width, height: swap ? v.width : v.height, rotation, fps,
    // r_frame_rate is the base rate; an average that differs by more than rounding means timestamps vary.
    vfr: Boolean(avg && real && Math.abs(avg - real) / real > 0.01),
    duration, frames, hasAudio: audio.length > 0, audio,
  };
}

/** Frames of more pixels than this are refused before decoding (4096x2304: every 4K format; 16384x16384 would be 800 MB a frame). */
export const DEFAULT_MAX_VIDEO_PIXELS = 4096 * 2304;

/** Refuses a video whose frames are larger than `maxPixels` (width x height), before a decoder allocates them. */
export function checkPixels(info: VideoInfo, maxPixels = DEFAULT_MAX_VIDEO_PIXELS): void {
  if (info.width * info.height > maxPixels) {
    throw new VideoRefused(`${info.file} has ${info.width}x${info.height} frames (${info.width * info.height} pixels), over this server's limit of ${maxPixels} pixels a frame.`, 'Scale the video down first (ffmpeg -vf scale=-2:2160), or raise the limit (maxPixels).');
  }
}

/** The demuxer ffprobe would have used for a refused file (its debug log names it; the whitelist still stops it before the header). */
async function probedFormat(file: string): Promise<string> {
  const r = await runProbe([...UNTRUSTED_FILE_INPUT, '-v', 'debug', file]);
  return /Format (\S+) probed with/.exec(r.stderr)?.[1] ?? 'unknown';
}

function refusedContainer(file: string, format: string): VideoRefused {
  const what = /^hls|applehttp/.test(format) ? 'an HLS playlist' : /concat/.test(format) ? 'a concat list' : /_pipe$|^image2|^(gif|webp)/.test(format) ? 'a still image' : `"${format}" data`;
  return new VideoRefused(`${file} is ${what} (${format}), not a video file in a container this server reads (${VIDEO_DEMUXERS.join(', ')}).`, 'Send an MP4, MOV, MKV, WebM, AVI, MPEG-TS or FLV video.');
}

const children = new Set<ChildProcess>();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

export interface Ffmpeg {
  proc: ChildProcess;
  /** Resolves when the process has exited (never rejects): its code or signal and stderr's tail. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** The last lines ffmpeg wrote to stderr. */
  stderrTail(): string;
  kill(signal?: NodeJS.Signals): void;
  /** True once this side killed it: its exit is then ours, not a failure of the file. */
  wasKilled(): boolean;
}

/**
 * Spawns ffmpeg with `args`; `stdio` for stdin / stdout (stderr is always a drained pipe).
 * `onStderrLine` sees each line (showinfo's per-frame timestamps are read this way).
 */
export function runFfmpeg(args: string[], o: { stdin?: 'pipe' | 'ignore'; stdout?: 'pipe' | 'ignore'; onStderrLine?: (l: string) => void } = {}): Ffmpeg {
  return runOwned(ffmpegPath(), ['-hide_banner', ...(o.stdin === 'pipe' ? [] : ['-nostdin']), ...args], o);
}

/**
 * One owned child: registered (killed when this process exits), stderr drained with its tail kept.
 * Detached, in a process group of its own: Ctrl-C in a terminal (SIGINT to the foreground group)
 * or a group-wide SIGTERM reaches the command, which stops its work in order (the decoder first,
 * then the encoders finish their files), instead of every ffmpeg dying at once mid-file.
 * Still owned: killed by its owner on stop or failure, and when this process exits. If this
 * process is SIGKILLed, its pipes are the guard: a decoder's next write to stdout fails (EPIPE),
 * an encoder reads the end of stdin and closes its file; file-to-file copies (mux, join, probe)
 * finish their bounded work and exit.
 */
function runOwned(bin: string, args: string[], o: { stdin?: 'pipe' | 'ignore'; stdout?: 'pipe' | 'ignore'; onStderrLine?: (l: string) => void }): Ffmpeg {
  const proc = spawn(bin, args, { stdio: [o.stdin ?? 'ignore', o.stdout ?? 'ignore', 'pipe'], detached: true });
  let killed = false;
  children.add(proc);
  let tail: string[] = [], partial = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    const lines = (partial + d).split(/\r?\n|\r/);
    partial = lines.pop() ?? '';
    for (const l of lines) {
      o.onStderrLine?.(l);
      if (!/^\[Parsed_showinfo/.test(l)) tail.push(l);
    }
    if (tail.length > 40) tail = tail.slice(-20);
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    proc.once('error', (e) => { tail.push(`spawn failed: ${e.message}`); });
    proc.once('close', (code, signal) => { children.delete(proc); resolve({ code, signal, stderr: tail.slice(-8).join('\n') }); });
  });
  return {
    proc, done, stderrTail: () => tail.slice(-8).join('\n'), wasKilled: () => killed,
    kill: (s = 'SIGKILL') => { if (proc.exitCode === null && proc.signalCode === null) { killed = true; proc.kill(s); } },
  };
}

/**
 * ffprobe with `args`, owned like ffmpeg and bounded in time (a probe that hangs on a slow or
 * hostile file is killed): its stdout, and stderr's lines that matter (debug output filtered).
 */
export async function runProbe(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const keep: string[] = [];
  const p = runOwned(ffprobePath(), ['-hide_banner', ...args], { stdout: 'pipe', onStderrLine: (l) => { if (/probed with|whitelist|error|invalid/i.test(l) && keep.length < 50) keep.push(l); } });
  const out: Buffer[] = [];
  p.proc.stdout!.on('data', (c: Buffer) => out.push(c));
  let late = false;
  const timer = setTimeout(() => { late = true; p.kill(); }, timeoutMs);
  const r = await p.done;
  clearTimeout(timer);
  const stderr = [...keep, ...r.stderr.split('\n'), ...(late ? [`ffprobe gave no answer within ${timeoutMs / 1000} s`] : [])].filter(Boolean).join('\n');
  return { code: r.code, signal: r.signal, stdout: Buffer.concat(out).toString('utf8'), stderr };
}

/** ffmpeg children alive now (tests check that none is left). */
export function liveFfmpegChildren(): number[] {
  return [...children].flatMap((c) => (c.pid && c.exitCode === null && c.signalCode === null ? [c.pid] : []));
}

export interface DecodedFrame { index: number; /** Seconds from the start of the decoded range. */ pts: number; rgb: Buffer }
export interface DecodeOptions { fps?: number; start?: number; duration?: number; /** Exactly this many frames from `start` (ffmpeg's -t keeps only frames that end within it: a count is exact). */ frames?: number; /** Frames buffered ahead of the consumer before ffmpeg is paused (default 4). */ ahead?: number }

/**
 * Decodes the first video stream to raw RGB frames at its display size through a pipe (no file
 * per frame), every frame (or `fps` samples), timestamps read from showinfo. Back-pressure: stdout
 * pauses while `ahead` frames wait, so a slow consumer stalls ffmpeg instead of growing memory.
 * The generator returns normally at the end of the stream and throws (naming the file and the
 * frame) when ffmpeg fails; the frames before the failure have been yielded.
 */
export function decodeFrames(info: VideoInfo, o: DecodeOptions = {}): { ff: Ffmpeg; frames: AsyncGenerator<DecodedFrame> } {
  const filters = [...(o.fps ? [`fps=${o.fps}`] : []), 'showinfo'];
  const args = [
    '-loglevel', 'info', ...(o.start ? ['-ss', String(o.start)] : []), ...UNTRUSTED_FILE_INPUT, '-i', info.file, ...(o.duration ? ['-t', String(o.duration)] : []), ...(o.frames ? ['-frames:v', String(o.frames)] : []),
    '-map', '0:v:0', '-vf', filters.join(','), '-vsync', o.fps ? 'cfr' : 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
  ];
  const pts: number[] = [];
  // Damage ffmpeg decodes around (it goes on after these): the file is reported as corrupt at the end.
  let damage: { line: string; frame: number } | undefined;
  const ff = runFfmpeg(args, { stdout: 'pipe', onStderrLine: (l) => {
    const m = /\] n:\s*\d+ pts:\s*-?\d+ pts_time:(-?[\d.e+-]+)/.exec(l);
    if (m) pts.push(Number(m[1]));
    else if (!damage && /invalid data|error while decoding|truncat|corrupt|partial file/i.test(l)) damage = { line: l.trim(), frame: pts.length };
  } });
  const size = info.width * info.height * 3, ahead = o.ahead ?? 4;
  const out = ff.proc.stdout!;
  const ready: Buffer[] = [];
  let pending: Buffer[] = [], pendingBytes = 0, ended = false, wake: (() => void) | undefined;
  out.on('data', (c: Buffer) => {
    pending.push(c); pendingBytes += c.length;
    if (pendingBytes >= size) {
      // One copy per chunk that completes frames; the frames are views into it.
      const all = Buffer.concat(pending, pendingBytes);
      let off = 0;
      for (; all.length - off >= size; off += size) ready.push(all.subarray(off, off + size));
      pending = [all.subarray(off)]; pendingBytes = all.length - off;
    }
    if (ready.length >= ahead) out.pause();
    wake?.();
  });
  out.on('end', () => { ended = true; wake?.(); });
  async function* frames(): AsyncGenerator<DecodedFrame> {
    let index = 0;
    try {
      for (;;) {
        if (ready.length === 0) {
          if (ended) break;
          await new Promise<void>((r) => { wake = r; });
          wake = undefined;
          continue;
        }
        const rgb = ready.shift()!;
        if (ready.length < ahead) out.resume();
        // showinfo logs a frame before ffmpeg writes it; wait briefly if the log line is behind.
        for (let i = 0; pts.length <= index && i < 50 && !ended; i++) await new Promise((r) => setTimeout(r, 1));
        yield { index, pts: pts[index] ?? (index / (o.fps ?? info.fps)), rgb };
        index++;
      }
      const r = await ff.done;
      // Stopped by its owner (Ctrl-C, a cancelled job): the frames so far are the whole result, not a damaged file.
      if (r.code !== 0 && !ff.wasKilled()) {
        throw new UserError(`ffmpeg stopped decoding ${info.file} after frame ${index} (${r.signal ?? `exit ${r.code}`}): ${r.stderr.split('\n').filter(Boolean).pop() ?? 'no message'}.`, 'The file is truncated or corrupt; the frames before it were segmented.');
      }
      if (damage) throw new UserError(`${info.file} is damaged near frame ${damage.frame}: ${damage.line}.`, 'The frames ffmpeg could decode were segmented; re-record or repair the file.');
    } finally {
      ff.kill();
    }
  }
  return { ff, frames: frames() };
}

/** Audio codecs an MP4 holds as they are (ffmpeg 4.1's mp4 muxer refuses PCM, and FLAC and Opus without -strict -2; players do not play Vorbis or MP2 in MP4). */
const MP4_AUDIO = new Set(['aac', 'mp3', 'ac3', 'eac3']);

/**
 * Output options for a source's audio streams (mapped in order): a copy where MP4 holds the codec,
 * else AAC (PCM from cameras' MOV/AVI/MKV, Opus/Vorbis from WebM, FLAC, ...). The video is copied.
 */
export function mp4AudioArgs(codecs: string[]): string[] {
  return ['-c:v', 'copy', ...codecs.flatMap((c, i) => (MP4_AUDIO.has(c) ? [`-c:a:${i}`, 'copy'] : [`-c:a:${i}`, 'aac', `-b:a:${i}`, '192k']))];
}

export interface EncodeOptions {
  width: number; height: number; fps: number;
  /** This file's audio (if it has any) over the same range: copied, or made AAC where MP4 cannot hold its codecs (one per audio stream, as probed). */
  audioFrom?: { file: string; codecs: string[]; start?: number; duration?: number };
  /** 'h264': yuv420p for any player; 'lossless': RGB H.264 at qp 0, so a mask's colours (and labels) survive exactly. */
  codec: 'h264' | 'lossless';
  /**
   * Each frame is written with its presentation time (seconds from the first), and the file keeps
   * those times: a variable frame rate stays variable. Without it frames are 1/fps apart.
   */
  timestamps?: boolean;
  /** Kills the encoder, or the final mux if it runs (a hard stop: the file is not finished). */
  kill?: AbortSignal;
}

export interface Encoder { ff: Ffmpeg; write(frame: Buffer, pts?: number): Promise<void>; end(): Promise<void> }

/**
 * An MP4 encoder fed raw RGB frames on stdin. `write` resolves when ffmpeg has taken the frame
 * (back-pressure: a slow encoder slows its producer); `end` closes stdin and waits, so that ffmpeg
 * writes the index and the file plays, also after an early stop. The video is encoded alone, then
 * muxed with the source's audio file to file (copying both): with the audio as a second input of
 * the piped encoder, ffmpeg 4.1's -shortest cut the video to 2 of 20 frames (seen here). The audio
 * is read for as long as the video written lasts (so a partial output carries no audio past its
 * last frame), never -shortest: that cut the video to the audio, and a camera's audio track can
 * stop before its video (30 of 80 frames were kept, seen here). With `timestamps`, the piped
 * frames are encoded at a constant rate and their sample durations rewritten from the given times
 * (ffmpeg 4.1 has no setts filter; a raw pipe carries no timestamps) before that final copy.
 */
export function encodeVideo(out: string, o: EncodeOptions): Encoder {
  const a = o.audioFrom;
  const twoStep = Boolean(a || o.timestamps);
  const videoOnly = twoStep ? `${out}.video.mp4` : out;
  const enc = encodeVideoOnly(videoOnly, o);
  let current = enc.ff;
  o.kill?.addEventListener('abort', () => current.kill(), { once: true });
  if (o.kill?.aborted) enc.ff.kill();
  const pts: number[] = [];
  let written = 0;
  return {
    ff: enc.ff,
    async write(frame, t) {
      await enc.write(frame);
      written++;
      if (o.timestamps) pts.push(t ?? (pts.length ? pts[pts.length - 1] + 1 / o.fps : 0));
    },
    async end() {
      await enc.end();
      if (!twoStep) return;
      let retimed: string | undefined;
      if (o.timestamps && pts.length) {
        try { retimeMp4(videoOnly, pts, 1 / o.fps); } catch (e) { retimed = `its frame times could not be kept (${(e as Error).message}); it plays at ${o.fps} frames/s`; }
      }
      // How long the written video lasts: to its last frame's end.
      const seconds = pts.length ? pts[pts.length - 1] + 1 / o.fps : written / o.fps;
      const audioSeconds = Math.min(a?.duration ?? Infinity, seconds);
      const mux = runFfmpeg(['-loglevel', 'error', '-i', videoOnly, ...(a ? [...(a.start ? ['-ss', String(a.start)] : []), '-t', audioSeconds.toFixed(6), ...UNTRUSTED_FILE_INPUT, '-i', a.file] : []),
        '-map', '0:v', ...(a ? ['-map', '1:a?'] : []), ...mp4AudioArgs(a?.codecs ?? []), '-movflags', '+faststart', '-y', out]);
      current = mux;
      if (o.kill?.aborted) mux.kill();
      const r = await mux.done;
      if (r.code !== 0) {
        // The segmented video is kept whatever happens to the audio.
        fs.renameSync(videoOnly, out);
        throw new Error(`could not ${a ? `add the audio of ${a.file} to` : 'finish'} ${out} (${r.stderr}); the video is kept${a ? ' without it' : ''}`);
      }
      fs.rmSync(videoOnly, { force: true });
      if (retimed) throw new Error(`${out} was written but ${retimed}`);
    },
  };
}

function encodeVideoOnly(out: string, o: EncodeOptions): Encoder {
  // yuv420p needs even sizes: an odd side is padded by one pixel (the only change of size).
  const even = o.codec === 'h264' && (o.width % 2 || o.height % 2) ? ['-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2'] : [];
  // Retimed files: no B-frames (decode order = presentation order, so durations alone set the
  // times), a fine track timescale, and the index at the end (the final copy moves it to the front).
  const timed = o.timestamps ? ['-bf', '0', '-video_track_timescale', '90000'] : ['-movflags', '+faststart'];
  const args = [
    '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${o.width}x${o.height}`, '-framerate', String(o.fps), '-i', 'pipe:0',
    '-map', '0:v', ...even,
    ...(o.codec === 'h264' ? ['-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p'] : ['-c:v', 'libx264rgb', '-preset', 'veryfast', '-qp', '0', '-pix_fmt', 'rgb24']),
    ...timed, '-y', out,
  ];
  const ff = runFfmpeg(args, { stdin: 'pipe' });
  const stdin = ff.proc.stdin!;
  let failed: Error | undefined;
  stdin.on('error', (e) => { failed = e; });
  return {
    ff,
    write: (frame) => new Promise<void>((resolve, reject) => {
      if (failed || ff.proc.exitCode !== null) return reject(new Error(`the encoder of ${out} stopped: ${ff.stderrTail() || failed?.message}`));
      if (stdin.write(frame)) resolve();
      else {
        const onDrain = () => { ff.proc.off('close', onClose); resolve(); };
        const onClose = () => { stdin.off('drain', onDrain); reject(new Error(`the encoder of ${out} stopped: ${ff.stderrTail()}`)); };
        stdin.once('drain', onDrain);
        ff.proc.once('close', onClose);
      }
    }),
    async end() {
      if (!stdin.destroyed) stdin.end();
      const r = await ff.done;
      if (r.code !== 0) throw new Error(`ffmpeg could not write ${out} (${r.signal ?? `exit ${r.code}`}): ${r.stderr}`);
    },
  };
}
