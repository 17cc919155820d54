/**
 * Splitting a video into time segments on keyframes, and joining the segmented parts again.
 * The cut points come from the container's packet index (ffprobe reads no pixels): each segment
 * starts on a keyframe, so a worker seeks there directly and decodes from it. A worker decodes from
 * half a frame before its keyframe (ffmpeg seeks to the keyframe before that point and discards
 * the frames before it, so the first frame is the keyframe's whatever the rounding) and takes
 * exactly the segment's frame count (ffmpeg's -t keeps only frames that end within it, which cut
 * one frame at a boundary here): no frame is dropped or doubled at a cut.
 */
import * as fs from 'node:fs';
import { UserError } from '../core/errors';
import { UNTRUSTED_FILE_INPUT } from '../core/ffmpeg';
import { mp4AudioArgs, runFfmpeg, runProbe } from '../streams/ffmpeg';

export interface Segment {
  index: number;
  /** Seconds from the start of the file to seek to (-ss: half a frame before its keyframe). */
  seek: number;
  /** The last segment decodes to the end of the file (however many frames an edit list leaves). */
  last: boolean;
  /** The segment's frames, and the index of its first frame in the whole video. */
  frames: number;
  firstFrame: number;
}

export interface Plan { segments: Segment[]; frames: number; fps: number }

export async function planSegments(file: string, seconds: number): Promise<Plan> {
  // Local files and video containers only (the same whitelists as every probe of an upload).
  const r = await runProbe([...UNTRUSTED_FILE_INPUT, '-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,flags:format=start_time', '-of', 'csv=p=0', file], 120_000);
  if (r.code !== 0) throw new UserError(`${file} has no readable video packets: ${r.stderr.trim().split('\n').pop()}.`, 'Send an MP4, MOV, MKV, WebM or MPEG-TS file.');
  const out = r.stdout;
  const packets: { pts: number; key: boolean }[] = [];
  let start = 0, untimed = 0;
  for (const line of out.trim().split('\n')) {
    const [a, b] = line.split(',');
    if (b === undefined) { if (Number.isFinite(Number(a))) start = Number(a); continue; }  // the format line: start_time
    // Packets flagged D (before an edit list's start, e.g. after a stream-copy trim) are decoded
    // only as references and never shown: they are not frames of the video.
    if (b.includes('D')) continue;
    const pts = Number(a);
    if (Number.isFinite(pts)) packets.push({ pts, key: b.includes('K') }); else untimed++;
  }
  // Frames without timestamps cannot be placed on either side of a cut.
  if (untimed) throw new UserError(`${file} has ${untimed} video packets without timestamps.`, 'Remux it first (ffmpeg -i in -c copy out.mp4), or segment it in-process (serve without --redis).');
  if (packets.length === 0) throw new UserError(`${file} has no video frames.`, 'Send a video with at least one frame.');
  packets.sort((x, y) => x.pts - y.pts);
  const first = packets[0].pts;
  // A loop, not Math.min(...): an hour of video has more packets than a call has arguments.
  let minGap = Infinity, positive = 0;
  for (let i = 1; i < packets.length; i++) { const g = packets[i].pts - packets[i - 1].pts; if (g > 0) { positive++; if (g < minGap) minGap = g; } }
  if (!positive) minGap = 1 / 25;
  const fps = positive ? positive / (packets[packets.length - 1].pts - first) : 25;
  // Cut at the first keyframe at or after each multiple of `seconds`.
  const cuts = [0];
  for (let i = 1; i < packets.length; i++) {
    if (packets[i].key && packets[i].pts - packets[cuts[cuts.length - 1]].pts >= seconds - minGap / 2) cuts.push(i);
  }
  const half = minGap / 2;
  const segments = cuts.map((c, k) => {
    const next = cuts[k + 1];
    const pts = packets[c].pts;
    return {
      index: k, seek: Math.max(0, pts - start - half), last: next === undefined,
      frames: (next ?? packets.length) - c, firstFrame: c,
    };
  });
  return { segments, frames: packets.length, fps };
}

/**
 * Joins segment MP4s (same codec and parameters, in order) into one file, copying the streams, with
 * the audio of `audioFrom` over the whole range; the per-frame stats lines are renumbered and
 * re-timed to the whole video. Written to temporary names and renamed, so a join done twice
 * writes the same files.
 */
export async function joinSegments(parts: { video: string; stats: string; segment: Segment }[], out: { video: string; stats: string }, audioFrom?: { file: string; codecs: string[] }): Promise<void> {
  const list = `${out.video}.parts.txt`;
  fs.writeFileSync(list, parts.map((p) => `file '${p.video.replace(/'/g, "'\\''")}'\n`).join(''));
  const tmp = `${out.video}.joining.mp4`;
  // The parts are ours (the concat list may open MP4s only); the source's audio is not.
  const ff = runFfmpeg(['-loglevel', 'error', '-protocol_whitelist', 'file,pipe', '-format_whitelist', 'concat,mov', '-f', 'concat', '-safe', '0', '-i', list, ...(audioFrom ? [...UNTRUSTED_FILE_INPUT, '-i', audioFrom.file] : []),
    // The source's audio as long as it is (-shortest would cut the video where a shorter audio track
    // ends), copied, or made AAC where MP4 cannot hold it (PCM, Opus, FLAC, ...).
    '-map', '0:v', ...(audioFrom ? ['-map', '1:a?'] : []), ...mp4AudioArgs(audioFrom?.codecs ?? []), '-movflags', '+faststart', '-y', tmp]);
  const r = await ff.done;
  fs.rmSync(list, { force: true });
  if (r.code !== 0) { fs.rmSync(tmp, { force: true }); throw new Error(`joining ${parts.length} segments into ${out.video} failed: ${r.stderr}`); }
  const lines: string[] = [];
  for (const p of parts) {
    for (const l of fs.readFileSync(p.stats, 'utf8').split('\n')) {
      if (!l) continue;
      const o = JSON.parse(l) as { index: number; pts: number };
      // A part's times count from its seek point (ffmpeg starts the output clock there).
      lines.push(JSON.stringify({ ...o, index: o.index + p.segment.firstFrame, pts: Number((o.pts + p.segment.seek).toFixed(6)) }));
    }
  }
  fs.writeFileSync(`${out.stats}.tmp`, lines.join('\n') + (lines.length ? '\n' : ''));
  fs.renameSync(`${out.stats}.tmp`, out.stats);
  fs.renameSync(tmp, out.video);
}
