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
