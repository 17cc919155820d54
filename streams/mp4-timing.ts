/**
 * Restores variable frame timing on an MP4 that ffmpeg wrote at a constant rate. The encoder is fed raw
 * frames on a pipe at a fixed `-framerate`, and ffmpeg 4.1 has no `setts` bitstream filter, so the
 * source's presentation timestamps are put back afterwards by rewriting the video track's stts box
 * (ISO/IEC 14496-12 §8.6.1.2) and the durations derived from it.
 */
import * as fs from 'node:fs';

/** A box: `kids` for the containers on the path to stts (rebuilt), `body` (after the size/type header) otherwise. */
interface Box { type: string; body: Buffer; kids?: Box[] }

/** Only the boxes we descend into; everything else is carried over byte for byte. */
const CONTAINERS = new Set(['moov', 'trak', 'edts', 'mdia', 'minf', 'stbl']);
const U32 = 0xffffffff;

/**
 * Rewrites the sample durations of the (single) video track of `file`, an MP4 written by ffmpeg with
 * its moov box AFTER mdat (no +faststart) and no B-frames (encoded with -bf 0, so decode order is
 * presentation order and there is no ctts), so that sample i is presented at pts[i] - pts[0] seconds.
 * `pts` has one entry per sample, non-decreasing; the last sample keeps the duration of the one before
 * it (or `lastDuration` seconds if given). Throws a clear Error if the file does not have that shape
 * (moov before mdat, ctts present, sample count != pts.length, more than one video trak or any other
 * track, an edit list other than ffmpeg's single plain entry). stco or co64 are both fine: the new moov
 * replaces the old one at the end of the file, so mdat and every chunk offset stay where they are.
 *
 * Times are in the track's own timescale (mdhd), used as found. ffmpeg picks one from the frame rate
 * (10 fps gives 10240), too coarse for arbitrary pts, so the encoder must be run with
 * `-video_track_timescale 90000`; then every pts lands within half a tick (1/180000 s).
 */
export function retimeMp4(file: string, pts: number[], lastDuration?: number): void {
  const fail = (why: string): never => { throw new Error(`retimeMp4: ${file}: ${why}`); };
  const fd = fs.openSync(file, 'r+');
  try {
    const at = lastMoov(fd, fail);
    const raw = Buffer.alloc(at.size);
    readAll(fd, raw, at.offset);
    const moov: Box = { type: 'moov', body: Buffer.alloc(0), kids: parse(raw.subarray(at.hdr), fail) };
    retime(moov, pts, lastDuration, fail);
    // Whole moov built in memory first, so the file is only touched once it is known to be good.
    const out = serialize(moov);
    fs.ftruncateSync(fd, at.offset);
    writeAll(fd, out, at.offset);
  } finally {
    fs.closeSync(fd);
  }
}

function retime(moov: Box, pts: number[], lastDuration: number | undefined, fail: (why: string) => never): void {
  const traks = moov.kids!.filter((b) => b.type === 'trak');
  if (traks.length !== 1) fail(`expected exactly one track (the video; audio is muxed later), found ${traks.length}`);
  const trak = traks[0];
  const mdia = child(trak, 'mdia', fail);
  const hdlr = leaf(mdia, 'hdlr', 12, fail);
  if (hdlr.body.toString('latin1', 8, 12) !== 'vide') fail(`the only track is '${hdlr.body.toString('latin1', 8, 12)}', not video`);
  const stbl = child(child(mdia, 'minf', fail), 'stbl', fail);
  if (stbl.kids!.some((b) => b.type === 'ctts')) fail('it has a ctts box (composition offsets, i.e. B-frames): encode with -bf 0');
  const stsz = stbl.kids!.find((b) => b.type === 'stsz' || b.type === 'stz2') ?? fail('no stsz box');
  if (stsz.body.length < 12) fail('truncated stsz box');
  const count = stsz.body.readUInt32BE(8); // same offset in stsz and stz2
  const stts = leaf(stbl, 'stts', 8, fail);
  const old = sttsEntries(stts, fail);
  if (old.reduce((s, [n]) => s + n, 0) !== count) fail(`stts covers ${old.reduce((s, [n]) => s + n, 0)} samples, stsz ${count}`);
  if (pts.length !== count) fail(`${pts.length} timestamps for ${count} video samples`);
  if (count === 0) fail('the video track has no samples');
  pts.forEach((t, i) => {
    if (!Number.isFinite(t)) fail(`pts[${i}] is ${t}`);
    if (i && t < pts[i - 1]) fail(`pts decrease at ${i} (${pts[i - 1]} -> ${t})`);
  });
  if (lastDuration !== undefined && !(Number.isFinite(lastDuration) && lastDuration >= 0)) fail(`lastDuration is ${lastDuration}`);

  const mdhd = timed(mdia, 'mdhd', fail);
  const ts = timescale(mdhd);
  if (!ts) fail('mdhd timescale is 0');
  const d = durations(pts, ts, lastDuration, old[0][1]);
  if (d.some((x) => x > U32)) fail(`a sample lasts more than 2^32 ticks of timescale ${ts}`);
  stts.body = sttsBody(d);
  const media = d.reduce((s, x) => s + x, 0);
  setDuration(mdhd, media);

  // Movie-timescale durations: the edit list's one segment spans the media from media_time on, tkhd
  // is the edit list's total, mvhd the longest track's (the only one here).
  const mvhd = timed(moov, 'mvhd', fail);
  const movieTs = timescale(mvhd);
  const toMovie = (t: number) => Math.round((t * movieTs) / ts);
  let trackDuration = toMovie(media);
  const edts = trak.kids!.find((b) => b.type === 'edts');
  const elst = edts?.kids!.find((b) => b.type === 'elst');
  if (elst) {
    const b = elst.body, v1 = b[0] === 1, n = b.length >= 8 ? b.readUInt32BE(4) : 0;
    if (n !== 1 || b.length < 8 + (v1 ? 20 : 12)) fail(`edit list has ${n} entries; only ffmpeg's single entry is supported`);
    const mediaTime = v1 ? Number(b.readBigInt64BE(16)) : b.readInt32BE(12);
    if (mediaTime < 0) fail('edit list is an empty edit; only ffmpeg\'s single plain entry is supported');
    trackDuration = toMovie(Math.max(0, media - mediaTime));
    if (v1) b.writeBigUInt64BE(BigInt(trackDuration), 8);
    else if (trackDuration > U32) fail('edit duration does not fit a version-0 elst');
    else b.writeUInt32BE(trackDuration, 8);
  }
  setDuration(timed(trak, 'tkhd', fail), trackDuration);
  setDuration(mvhd, trackDuration);
}

/**
 * Ticks per sample. Cumulative times are rounded (not each delta), so rounding never drifts; a time that
 * rounds onto its predecessor is pushed one tick later (no zero durations) and the following samples
 * catch up as soon as they can. The last sample repeats the previous duration unless told otherwise.
 */
function durations(pts: number[], ts: number, lastDuration: number | undefined, single: number): number[] {
  const c: number[] = [];
  for (let i = 0; i < pts.length; i++) c.push(Math.max(Math.round((pts[i] - pts[0]) * ts), i ? c[i - 1] + 1 : 0));
  const d = c.slice(1).map((x, i) => x - c[i]);
  const end = pts[pts.length - 1] - pts[0] + (lastDuration ?? 0);
  d.push(lastDuration !== undefined ? Math.max(1, Math.round(end * ts) - c[c.length - 1]) : d.length ? d[d.length - 1] : single);
  return d;
}

function sttsEntries(stts: Box, fail: (why: string) => never): [number, number][] {
  const n = stts.body.readUInt32BE(4);
  if (stts.body.length < 8 + 8 * n) fail('truncated stts box');
  return Array.from({ length: n }, (_, i) => [stts.body.readUInt32BE(8 + 8 * i), stts.body.readUInt32BE(12 + 8 * i)]);
}

/** Version 0, run-length encoded: one entry per run of equal durations. */
function sttsBody(d: number[]): Buffer {
  const runs: [number, number][] = [];
  for (const x of d) {
    const r = runs[runs.length - 1];
    if (r && r[1] === x) r[0]++;
    else runs.push([1, x]);
  }
  const b = Buffer.alloc(8 + 8 * runs.length);
  b.writeUInt32BE(runs.length, 4);
  runs.forEach(([n, x], i) => { b.writeUInt32BE(n, 8 + 8 * i); b.writeUInt32BE(x, 12 + 8 * i); });
  return b;
}

/**
 * mvhd, tkhd, mdhd share a layout: version/flags, creation and modification times (32 or 64 bits by
 * version), a 32-bit field (timescale; tkhd: track_ID + reserved, 64 bits), then the duration.
 */
const middle = (b: Box) => (b.type === 'tkhd' ? 8 : 4);
const durationAt = (b: Box) => (b.body[0] === 1 ? 20 : 12) + middle(b);
const timescale = (b: Box) => b.body.readUInt32BE(b.body[0] === 1 ? 20 : 12);

function setDuration(box: Box, d: number): void {
  if (box.body[0] === 0 && d > U32) {
    // Too long for version 0: widen to version 1 rather than wrap.
    const b = box.body, m = middle(box), w = Buffer.alloc(b.length + 12);
    w[0] = 1;
    b.copy(w, 1, 1, 4);
    w.writeBigUInt64BE(BigInt(b.readUInt32BE(4)), 4);
    w.writeBigUInt64BE(BigInt(b.readUInt32BE(8)), 12);
    b.copy(w, 20, 12, 12 + m);
    b.copy(w, 28 + m, 16 + m);
    box.body = w;
  }
  if (box.body[0] === 1) box.body.writeBigUInt64BE(BigInt(d), durationAt(box));
  else box.body.writeUInt32BE(d, durationAt(box));
}

/** An mvhd/tkhd/mdhd long enough for its version's duration field. */
function timed(parent: Box, type: string, fail: (why: string) => never): Box {
  const b = leaf(parent, type, 4, fail);
  if (b.body.length < durationAt(b) + (b.body[0] === 1 ? 8 : 4)) fail(`truncated '${type}' box`);
  return b;
}

function child(parent: Box, type: string, fail: (why: string) => never): Box {
  const found = parent.kids!.filter((b) => b.type === type);
  if (found.length !== 1) fail(`expected one '${type}' in '${parent.type}', found ${found.length}`);
  return found[0];
}

function leaf(parent: Box, type: string, minBody: number, fail: (why: string) => never): Box {
  const b = child(parent, type, fail);
  if (b.body.length < minBody) fail(`truncated '${type}' box`);
  return b;
}

/** A box header at the start of `b`; `left` is what remains of the parent (size 0 = to its end). */
function header(b: Buffer, left: number, fail: (why: string) => never): { type: string; size: number; hdr: number } {
  if (b.length < 8) fail('truncated box header');
  const type = b.toString('latin1', 4, 8);
  let size = b.readUInt32BE(0), hdr = 8;
  if (size === 1) {
    if (b.length < 16) fail(`truncated '${type}' header`);
    size = Number(b.readBigUInt64BE(8));
    hdr = 16;
  } else if (size === 0) size = left;
  if (size < hdr || size > left) fail(`box '${type}' has size ${size} with ${left} bytes left`);
  return { type, size, hdr };
}

function parse(buf: Buffer, fail: (why: string) => never): Box[] {
  const out: Box[] = [];
  for (let p = 0; p < buf.length; ) {
    const { type, size, hdr } = header(buf.subarray(p), buf.length - p, fail);
    const body = buf.subarray(p + hdr, p + size);
    out.push(CONTAINERS.has(type) ? { type, body: Buffer.alloc(0), kids: parse(body, fail) } : { type, body });
    p += size;
  }
  return out;
}

/** Sizes recomputed from the content, so every container on the path absorbs stts's change. */
function serialize(box: Box): Buffer {
  const body = box.kids ? Buffer.concat(box.kids.map(serialize)) : box.body;
  const large = body.length + 8 > U32;
  const h = Buffer.alloc(large ? 16 : 8);
  h.writeUInt32BE(large ? 1 : body.length + 8, 0);
  h.write(box.type, 4, 'latin1');
  if (large) h.writeBigUInt64BE(BigInt(body.length + 16), 8);
  return Buffer.concat([h, body]);
}

/** Walks the top-level boxes by their headers alone (mdat can be gigabytes) to the moov, which must come last, after mdat. */
function lastMoov(fd: number, fail: (why: string) => never): { offset: number; size: number; hdr: number } {
  const end = fs.fstatSync(fd).size, h = Buffer.alloc(16);
  let mdat = false;
  for (let p = 0; p < end; ) {
    const n = fs.readSync(fd, h, 0, 16, p);
    const { type, size, hdr } = header(h.subarray(0, n), end - p, fail);
    if (type === 'moof') fail('it is fragmented (moof); write it without frag_* movflags');
    if (type === 'mdat') mdat = true;
    if (type === 'moov') {
      if (!mdat) fail('moov comes before mdat (written with -movflags +faststart?); retime before moving moov to the front');
      if (p + size !== end) fail('moov is not the last box of the file');
      return { offset: p, size, hdr };
    }
    p += size;
  }
  return fail(mdat ? 'no moov box' : 'no mdat or moov box: not an MP4?');
}

function readAll(fd: number, b: Buffer, pos: number): void {
  for (let o = 0; o < b.length; ) {
    const n = fs.readSync(fd, b, o, b.length - o, pos + o);
    if (!n) throw new Error('unexpected end of file');
    o += n;
  }
}

function writeAll(fd: number, b: Buffer, pos: number): void {
  for (let o = 0; o < b.length; ) o += fs.writeSync(fd, b, o, b.length - o, pos + o);
}
