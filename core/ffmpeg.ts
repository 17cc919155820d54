/**
 * ffmpeg/ffprobe binaries: `I2I_FFMPEG` / `I2I_FFPROBE` (a system install) when set, else the static
 * builds that @ffmpeg-installer/ffmpeg and @ffprobe-installer/ffprobe ship inside npm packages.
 */
import * as fs from 'node:fs';
import { UserError } from './errors';

/** File names read as videos (training's target videos, segment-video's directories). */
export const VIDEO_FILE = /\.(mp4|mov|mkv|avi|webm|m4v|ts|mts)$/i;

function packaged(pkg: string): string {
  const p = (require(pkg) as { path: string }).path;
  // Their postinstall only sets the execute bit; make sure of it if install scripts were skipped.
  try { fs.accessSync(p, fs.constants.X_OK); } catch { fs.chmodSync(p, 0o755); }
  return p;
}

export function ffmpegPath(): string {
  const p = process.env.I2I_FFMPEG || packaged('@ffmpeg-installer/ffmpeg');
  if (!fs.existsSync(p)) throw new UserError(`ffmpeg not found at ${p}.`, 'Unset I2I_FFMPEG to use the bundled build, or point it at an ffmpeg binary.');
  return p;
}

export function ffprobePath(): string {
  const p = process.env.I2I_FFPROBE || packaged('@ffprobe-installer/ffprobe');
  if (!fs.existsSync(p)) throw new UserError(`ffprobe not found at ${p}.`, 'Unset I2I_FFPROBE to use the bundled build, or point it at an ffprobe binary.');
  return p;
}

/**
 * The demuxers an untrusted video may be opened with (ffmpeg's names; `-format_whitelist` matches
 * any name of a demuxer's list, so 'mov' is mov/mp4/m4a/3gp/3g2/mj2 and 'matroska' is MKV/WebM):
 * the containers cameras, phones and encoders write. Everything else is refused before its header
 * is read, above all playlists (hls, concat, ffconcat: they make ffmpeg open other files) and
 * still images (image2, *_pipe).
 */
export const VIDEO_DEMUXERS = ['mov', 'matroska', 'avi', 'mpegts', 'flv'] as const;

/**
 * Input options for a local file from outside (an upload, a server path, a folder of videos): the
 * file protocol only (no http, no concat:, no data:), and only the demuxers above. ffmpeg 4.1 reads
 * an HLS playlist by its content whatever the file is called, and would open every file it names.
 */
export const UNTRUSTED_FILE_INPUT = ['-protocol_whitelist', 'file,pipe', '-format_whitelist', VIDEO_DEMUXERS.join(',')];

/** A video refused before decoding (not a video container, a still image, too many pixels): the server answers 400. */
export class VideoRefused extends UserError {
  constructor(readonly problem: string, fix: string) {
    super(problem, fix);
    this.name = 'VideoRefused';
  }
}
