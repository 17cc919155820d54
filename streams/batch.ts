/**
 * `segment-video` over a file or a directory: every video under a directory, file by file, the
 * outputs mirrored under --out. A file is complete when its sidecar `<out>.done.json` exists: it is
 * written last (atomically), after the encoders closed, and records the input's size and mtime and
 * the bundle's identity, so a rerun skips exactly the files whose outputs are complete and current.
 * One failing file (truncated, corrupt) keeps its partial, playable output, gets no sidecar, and
 * the others are still done.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bundleId } from '../core/bundle';
import { UserError } from '../core/errors';
import { VIDEO_FILE } from '../core/ffmpeg';
import { segmentVideo, type OutputKind, type SegmentVideoOptions, type VideoResult } from './segment-video';


/** segment-video's options, where `input` may be a directory and `out` then mirrors it. */
export interface BatchOptions extends Omit<SegmentVideoOptions, 'inFlight'> {
  /** The bundle directory (its identity goes into each completion sidecar). */
  bundle: string;
  /** Per-frame JSON lines: for a file, this file; for a directory, a directory mirrored like the outputs (`<rel>.jsonl`). */
  stats?: string;
  onFile?: (r: FileOutcome) => void;
}

export type FileOutcome = { input: string; status: 'done'; result: VideoResult } | { input: string; status: 'skipped'; reason: string } | { input: string; status: 'failed'; error: string; result?: VideoResult };

interface Sidecar { input: string; size: number; mtimeMs: number; bundle: string; output: OutputKind; fps?: number; start?: number; duration?: number; frames: number; outputs: string[]; finishedAt: string }

function listVideos(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p); else if (VIDEO_FILE.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/**
 * Each input's output path relative to --out: its name with .mp4 for its extension, unless another
 * video of the same folder has the same stem (x.mp4 and x.mkv): then the one already named .mp4
 * keeps x.mp4 and the others are named in full (x.mkv.mp4), whatever order they are listed in.
 * Stats lines and completion sidecars follow the output's name.
 */
export function outputNames(rels: string[]): Map<string, string> {
  const stem = (r: string) => r.replace(VIDEO_FILE, '');
  const byStem = new Map<string, string[]>();
  for (const r of rels) byStem.set(stem(r), [...(byStem.get(stem(r)) ?? []), r]);
  const names = new Map<string, string>();
  for (const r of rels) names.set(r, byStem.get(stem(r))!.length === 1 || /\.mp4$/.test(r) ? `${stem(r)}.mp4` : `${r}.mp4`);
  const taken = new Map<string, string>();
  for (const [r, n] of names) {
    const other = taken.get(n);
    if (other) throw new UserError(`${other} and ${r} would both be segmented into ${n}.`, 'Rename one of them.');
    taken.set(n, r);
  }
  return names;
}

/** What segment-video writes: H.264 in an ISO BMFF container (the index moved to the front), by --out's extension. */
export const OUTPUT_EXTENSIONS = ['.mp4', '.m4v', '.mov'] as const;

/**
 * The input exists and --out can be written as asked, checked before any engine starts or frame is
 * decoded: a file input needs an --out file named with one of OUTPUT_EXTENSIONS (ffmpeg picks the
 * container by it, and would only refuse it after every frame was segmented); a directory input
 * needs an --out directory.
 */
export function checkPaths(input: string, out: string): { isDir: boolean } {
  if (!fs.existsSync(input)) throw new UserError(`${input} does not exist.`, 'Pass a video file or a directory of videos.');
  const isDir = fs.statSync(input).isDirectory();
  const outIsDir = fs.existsSync(out) && fs.statSync(out).isDirectory();
  if (isDir) {
    if (fs.existsSync(out) && !outIsDir) throw new UserError(`--out ${out} is a file; a directory input needs an output directory.`, 'Pass --out <dir>.');
    return { isDir };
  }
  const accepted = OUTPUT_EXTENSIONS.join(', ');
  if (outIsDir) throw new UserError(`--out ${out} is a directory; a single video is written to a file.`, `Pass --out <dir>/${path.basename(input).replace(VIDEO_FILE, '')}.mp4 (${accepted}).`);
  const ext = path.extname(out).toLowerCase();
  if (!(OUTPUT_EXTENSIONS as readonly string[]).includes(ext)) {
    throw new UserError(`--out ${out} ${ext ? `ends in ${ext}, which segment-video does not write` : 'has no extension'}: the output is H.264 video in ${accepted}.`, `Name it e.g. ${out.slice(0, out.length - ext.length) || 'out'}.mp4.`);
  }
  return { isDir };
}

export async function segmentVideos(o: BatchOptions): Promise<FileOutcome[]> {
  const { isDir } = checkPaths(o.input, o.out);
  const files = isDir ? listVideos(o.input) : [o.input];
  if (isDir && files.length === 0) throw new UserError(`${o.input} holds no video files (${VIDEO_FILE.source}).`, 'Point segment-video at a folder of dashcam videos.');
  const names = outputNames(files.map((f) => path.relative(o.input, f)));
  const id = bundleId(o.bundle);
  const kind = o.output ?? 'overlay';
  const outcomes: FileOutcome[] = [];
  for (const input of files) {
    if (o.signal?.aborted) break;
    const name = names.get(path.relative(o.input, input))!;
    const out = isDir ? path.join(o.out, name) : o.out;
    const sidecarFile = `${out}.done.json`;
    const st = fs.statSync(input);
    const want = { input: path.resolve(input), size: st.size, mtimeMs: st.mtimeMs, bundle: id, output: kind, fps: o.fps, start: o.start, duration: o.duration };
    const done = readSidecar(sidecarFile);
    if (done && (Object.keys(want) as (keyof typeof want)[]).every((k) => done[k] === want[k]) && done.outputs.every((f) => fs.existsSync(f))) {
      const r: FileOutcome = { input, status: 'skipped', reason: `complete (${sidecarFile})` };
      outcomes.push(r); o.onFile?.(r);
      continue;
    }
    fs.rmSync(sidecarFile, { force: true });
    const stats = o.stats && isDir ? path.join(o.stats, name.replace(/\.mp4$/, '.jsonl')) : o.stats;
    let outcome: FileOutcome;
    try {
      const result = await segmentVideo({ engine: o.engine, input, out, output: kind, stats, fps: o.fps, start: o.start, duration: o.duration, alpha: o.alpha, signal: o.signal, onProgress: o.onProgress });
      if (result.error || result.partial) outcome = { input, status: 'failed', error: result.error ?? 'stopped (interrupted)', result };
      else {
        const side: Sidecar = { ...want, frames: result.frames, outputs: result.outputs.map((f) => path.resolve(f)), finishedAt: new Date().toISOString() };
        fs.writeFileSync(`${sidecarFile}.tmp`, JSON.stringify(side, null, 2) + '\n');
        fs.renameSync(`${sidecarFile}.tmp`, sidecarFile);
        outcome = { input, status: 'done', result };
      }
    } catch (e) {
      outcome = { input, status: 'failed', error: (e as Error).message };
    }
    outcomes.push(outcome); o.onFile?.(outcome);
  }
  return outcomes;
}

function readSidecar(file: string): Sidecar | undefined {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')) as Sidecar; } catch { return undefined; }
}
