/**
 * Unlabelled target frames from a folder of videos (`--target-videos DIR`, subfolders included):
 * each video gives round(duration x fps) frames, at most `maxFrames`, spread evenly over its whole
 * duration (frame k near (k + 1/2) x duration / n), written as PNGs through fluent-ffmpeg.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ffmpeg from 'fluent-ffmpeg';
import { UserError } from '../../core/errors';
import { ffmpegPath, ffprobePath, VIDEO_FILE } from '../../core/ffmpeg';

/** File names the video readers take. */
export const VIDEO = VIDEO_FILE;

export interface FrameSampling { fps: number; maxFrames: number; width?: number }

/** Frames a run already sampled into `dir` (sorted PNG paths; none if the folder is missing). */
export function sampledFrames(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.png')).sort().map((f) => path.join(dir, f)) : [];
}

/** Every video under `dir` (subfolders too), sorted. */
export function listVideos(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`Video folder not found: ${dir}.`, 'Pass --target-videos <folder of .mp4/.mov/.mkv files>.');
  const vids: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (VIDEO.test(e.name)) vids.push(path.join(d, e.name));
    }
  };
  walk(dir);
  if (vids.length === 0) throw new UserError(`${dir} holds no video files (.mp4, .mov, .mkv, .avi, .webm).`, 'Put the dashcam videos in that folder.');
  return vids;
}

/**
 * The frame-file prefix of a video: its path under the folder, extension kept (a.mp4 and a.mov
 * differ), characters outside [\w.-] replaced; a name that had to be changed gets a hash of the
 * original, so sub/a.mp4, other/a.mp4 and "a b.mp4" / "a_b.mp4" never share frame files.
 */
export function frameKey(relative: string): string {
  const safe = relative.replace(/[^\w.-]/g, '_');
  return safe === relative ? safe : `${safe}-${createHash('sha1').update(relative).digest('hex').slice(0, 8)}`;
}

/** The container's duration in seconds, or undefined where it does not say (some streams, raw files). */
export function videoDuration(video: string): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    execFile(ffprobePath(), ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', video], (err, stdout, stderr) => {
      if (err) return reject(new UserError(`ffmpeg could not read ${video}: ${String(stderr || err.message).split('\n')[0]}.`, 'Check that the file is a playable video.'));
      const d = Number(stdout.trim());
      resolve(Number.isFinite(d) && d > 0 ? d : undefined);
    });
  });
}

/** Samples frames of one video into `outDir/<key>_NNNNN.png`; returns the files written. */
export async function sampleVideo(video: string, outDir: string, s: FrameSampling, key = frameKey(path.basename(video))): Promise<string[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const duration = await videoDuration(video);
  // n frames over the whole duration: the fps filter (rounding to the nearest output tick) keeps
  // for tick k the last frame before (k + 1/2) x duration / n, near the middle of the k-th share.
  // A video without a duration is read from its start at fps, as far as maxFrames.
  const n = duration ? Math.min(s.maxFrames, Math.max(1, Math.round(duration * s.fps))) : s.maxFrames;
  const rate = duration ? n / duration : s.fps;
  const filters = [`fps=${rate}`, ...(s.width ? [`scale=${s.width}:-2`] : [])];
  const mine = new RegExp(`^${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}_\\d{5}\\.png$`);
  return new Promise((resolve, reject) => {
    ffmpeg(video)
      .setFfmpegPath(ffmpegPath())
      .setFfprobePath(ffprobePath())
      .outputOptions(['-vf', filters.join(','), '-frames:v', String(n), '-start_number', '0'])
      .output(path.join(outDir, `${key}_%05d.png`))
      .on('error', (e: Error) => reject(new UserError(`ffmpeg could not read ${video}: ${e.message.split('\n')[0]}.`, 'Check that the file is a playable video.')))
      .on('end', () => resolve(fs.readdirSync(outDir).filter((f) => mine.test(f)).sort().map((f) => path.join(outDir, f))))
      .run();
  });
}

/** Samples every video under a folder; one bad file fails with its name, earlier frames stay on disk. */
export async function sampleVideoFolder(dir: string, outDir: string, s: FrameSampling): Promise<string[]> {
  const frames: string[] = [];
  for (const v of listVideos(dir)) frames.push(...(await sampleVideo(v, outDir, s, frameKey(path.relative(dir, v)))));
  return frames;
}
