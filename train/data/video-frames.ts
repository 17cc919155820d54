/**
 * Unlabelled target frames from a folder of videos (`--target-videos DIR`): every video is sampled
 * at `fps` frames per second, at most `maxFrames` per video, into PNGs through fluent-ffmpeg.
 */
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

export function listVideos(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`Video folder not found: ${dir}.`, 'Pass --target-videos <folder of .mp4/.mov/.mkv files>.');
  const vids = fs.readdirSync(dir).filter((f) => VIDEO.test(f)).sort().map((f) => path.join(dir, f));
  if (vids.length === 0) throw new UserError(`${dir} holds no video files (.mp4, .mov, .mkv, .avi, .webm).`, 'Put the dashcam videos in that folder.');
  return vids;
}

/** Samples frames of one video into `outDir/<video>_NNNNN.png`; returns the files written. */
export function sampleVideo(video: string, outDir: string, s: FrameSampling): Promise<string[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const stem = path.basename(video).replace(VIDEO, '').replace(/[^\w.-]/g, '_');
  const filters = [`fps=${s.fps}`, ...(s.width ? [`scale=${s.width}:-2`] : [])];
  return new Promise((resolve, reject) => {
    ffmpeg(video)
      .setFfmpegPath(ffmpegPath())
      .setFfprobePath(ffprobePath())
      .outputOptions(['-vf', filters.join(','), '-frames:v', String(s.maxFrames), '-start_number', '0'])
      .output(path.join(outDir, `${stem}_%05d.png`))
      .on('error', (e: Error) => reject(new UserError(`ffmpeg could not read ${video}: ${e.message.split('\n')[0]}.`, 'Check that the file is a playable video.')))
      .on('end', () => resolve(fs.readdirSync(outDir).filter((f) => f.startsWith(`${stem}_`) && f.endsWith('.png')).sort().map((f) => path.join(outDir, f))))
      .run();
  });
}

/** Samples every video of a folder; one bad file fails with its name, earlier frames stay on disk. */
export async function sampleVideoFolder(dir: string, outDir: string, s: FrameSampling): Promise<string[]> {
  const frames: string[] = [];
  for (const v of listVideos(dir)) frames.push(...(await sampleVideo(v, outDir, s)));
  return frames;
}
