/**
 * The video job API over any VideoJobs (core/video-jobs.ts): POST /videos (raw video/* body,
 * multipart field "video", or JSON {"path"} inside the operator's --video-dir) -> 202 {id};
 * GET /videos (paged), GET /videos/:id, GET /videos/:id/result (?stats=1), DELETE /videos/:id.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Express, NextFunction, Request, Response } from 'express';
import * as client from 'prom-client';
import { JOB_ID, JobError, type VideoJobs } from '../core/video-jobs';
import { contentType, jsonRule, readJson, saveBody, within, type BodyRule } from './body';
import { HttpError } from './http-error';

export interface VideoRouteOptions {
  jobs: VideoJobs;
  /** Bytes an uploaded video may have (default 2 GiB). */
  maxVideoBytes?: number;
  /** How long an upload may take (default 10 min). */
  uploadTimeoutMs?: number;
  /** Server paths a client may name instead of uploading (JSON {"path"}); none by default. */
  videoDir?: string;
  /** Uploads read at once (default 4): more are refused before their bodies are read. */
  maxUploads?: number;
}

export function videoRule(maxBytes: number): BodyRule {
  return {
    what: 'video', accepts: (t) => t.startsWith('video/') || t === 'application/octet-stream', field: 'video',
    types: 'video/*, or multipart/form-data with a field "video"',
    example: 'Send the video as the body with its type (curl --data-binary @drive.mp4 -H "Content-Type: video/mp4"), or as the form field "video" (curl -F video=@drive.mp4).',
    maxBytes, smaller: 'Cut it (ffmpeg -ss/-t), or raise --max-video-bytes.', timeoutFlag: '--upload-timeout-ms',
  };
}
const PATH_RULE = jsonRule('{"path": "relative/to/video-dir.mp4"}');

/** `timeoutMs` bounds a JSON body (the server's request timeout); uploads have their own bound. */
export function mountVideoRoutes(app: Express, o: VideoRouteOptions, c: { isDraining(): boolean; timeoutMs: number }): void {
  const { jobs } = o;
  const maxBytes = o.maxVideoBytes ?? 2 * 2 ** 30, uploadMs = o.uploadTimeoutMs ?? 600_000, maxUploads = o.maxUploads ?? 4;
  const rule = videoRule(maxBytes);
  let uploading = 0;
  // Anything but this API's own ids is no job, and never reaches a runner (or a queue's keys).
  app.param('id', (_req: Request, _res: Response, next: NextFunction, id: string) => {
    next(JOB_ID.test(id) ? undefined : new JobError('not-found', `No video job ${JSON.stringify(id).slice(0, 60)}.`, 'GET /videos lists the jobs.'));
  });
  const self = (id: string) => ({ self: `/videos/${id}`, result: `/videos/${id}/result`, stats: `/videos/${id}/result?stats=1` });

  /** Refusals that need no body: checked before a byte of it is read. */
  const admit = (req: Request) => {
    if (c.isDraining()) throw new HttpError(503, 'The server is draining (shutting down).', 'Retry on another instance.', { 'Retry-After': '1' });
    if (!jobs.accepting()) throw new JobError('backlog-full', 'The video backlog is full.', 'Retry after the Retry-After seconds.');
    if (req.query.output !== undefined && req.query.output !== 'overlay' && req.query.output !== 'mask') throw new HttpError(400, `output must be overlay or mask, got ${JSON.stringify(req.query.output)}.`, 'Pass ?output=overlay (the frames with the class colours) or ?output=mask (lossless label colours).');
    // Uploads may take minutes each: their number is bounded, so slow clients cannot pile them up.
    if (uploading >= maxUploads) throw new HttpError(503, `${uploading} video uploads are in progress.`, 'Retry after the Retry-After seconds.', { 'Retry-After': '5' });
  };
  /** The raw body or the multipart field "video", streamed to a file the job then owns. */
  const upload = async (req: Request) => {
    const r = await saveBody(req, rule, within(uploadMs), jobs.uploadDir);
    const name = r.filename !== undefined ? nameOf(r.filename) ?? 'upload.mp4'
      : nameOf(req.get('x-filename')) ?? `upload.${r.type.split('/')[1]?.replace(/^x-|[^\w]/g, '') || 'mp4'}`;
    return { file: r.data, bytes: r.bytes, name, owned: true };
  };

  app.post('/videos', async (req: Request, res: Response) => {
    admit(req);
    uploading++;
    let input;
    try {
      input = contentType(req) === 'application/json' ? await serverPath(req, o.videoDir, within(c.timeoutMs)) : await upload(req);
    } finally {
      uploading--;
    }
    const status = await jobs.submit({ ...input, output: req.query.output === 'mask' ? 'mask' : 'overlay' });
    res.status(202).location(`/videos/${status.id}`).json({ ...status, links: self(status.id) });
  });
  app.get('/videos', async (req: Request, res: Response) => {
    const limit = req.query.limit === undefined ? 20 : Number(req.query.limit);
    if (!(Number.isInteger(limit) && limit >= 1 && limit <= 100)) throw new HttpError(400, `limit must be an integer in [1, 100], got ${JSON.stringify(req.query.limit)}.`, 'Pass e.g. ?limit=20.');
    const after = typeof req.query.after === 'string' ? req.query.after : undefined;
    const page = await jobs.list({ limit, after });
    res.json({ jobs: page.jobs.map((j) => ({ ...j, links: self(j.id) })), next: page.next && `/videos?limit=${limit}&after=${page.next}` });
  });
  app.get('/videos/:id', async (req: Request, res: Response) => {
    const s = await jobs.get(String(req.params.id));
    if (!s) throw new JobError('not-found', `No video job ${req.params.id}.`, 'GET /videos lists the jobs this server knows (jobs do not survive a restart).');
    res.json({ ...s, links: self(s.id) });
  });
  app.get('/videos/:id/result', async (req: Request, res: Response) => {
    const stats = req.query.stats === '1' || req.query.stats === 'true';
    const r = await jobs.result(String(req.params.id), stats ? 'stats' : 'video');
    if (r.partial) res.set('X-Partial', 'true');
    res.type(stats ? 'application/x-ndjson' : 'video/mp4');
    // sendFile answers Range requests, so a browser's <video> can seek.
    await new Promise<void>((resolve, reject) => res.sendFile(r.file, { dotfiles: 'allow', headers: { 'Cache-Control': 'no-store' } }, (e) => {
      if (!e) return resolve();
      // Deleted between the lookup and the read: the job is gone (its path is not the client's business).
      reject((e as NodeJS.ErrnoException).code === 'ENOENT' ? new JobError('not-found', `The result of video job ${req.params.id} is gone.`, 'GET /videos lists the jobs.') : e);
    }));
  });
  app.delete('/videos/:id', async (req: Request, res: Response) => {
    if (!(await jobs.remove(String(req.params.id)))) throw new JobError('not-found', `No video job ${req.params.id}.`, 'GET /videos lists the jobs.');
    res.status(204).end();
  });
}

/** A client's file name, reduced to a safe base name (it is only echoed back, never used as a path). */
function nameOf(v: string | undefined): string | undefined {
  const n = v && path.basename(v).replace(/[^\w.\- ]/g, '_').slice(0, 200);
  return n || undefined;
}

/** JSON {"path": "..."}: only a file inside the operator's --video-dir, read in place (never moved). */
async function serverPath(req: Request, dir: string | undefined, deadline: ReturnType<typeof within>): Promise<{ file: string; name: string; bytes: number; owned: false }> {
  // Refused before the body is read.
  if (!dir) throw new HttpError(403, 'This server takes no paths: upload the video instead.', 'Send the video as the body (Content-Type video/mp4) or as the multipart field "video"; an operator allows paths with --video-dir.');
  const body = await readJson(req, PATH_RULE, deadline);
  const p = body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as { path?: unknown }).path : undefined;
  if (typeof p !== 'string' || !p) throw new HttpError(400, 'The JSON body needs a "path" string.', PATH_RULE.example);
  const root = fs.realpathSync(dir);
  const inside = (f: string) => { const r = path.relative(root, f); return r !== '' && !r.startsWith('..') && !path.isAbsolute(r); };
  const outside = new HttpError(403, `${p} is not a file inside the server's video directory.`, 'Name a file relative to --video-dir.');
  // The path as written first, then with its symlinks resolved: one answer for missing and outside,
  // so the route tells nothing about files elsewhere on the server.
  if (!inside(path.resolve(root, p))) throw outside;
  let file: string;
  try { file = fs.realpathSync(path.resolve(root, p)); } catch { throw outside; }
  if (!inside(file) || !fs.statSync(file).isFile()) throw outside;
  return { file, name: path.basename(file), bytes: fs.statSync(file).size, owned: false };
}

export function videoPaths(security: object[] | undefined, errors: (codes: number[]) => object): Record<string, object> {
  const job = { $ref: '#/components/schemas/VideoJob' };
  const json = (schema: object) => ({ 'application/json': { schema } });
  const bin = { type: 'string', format: 'binary' };
  const id = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  return {
    '/videos': {
      post: {
        summary: 'Queue a video: the overlay MP4 (audio kept) and per-frame stats are made in the background', security,
        parameters: [
          { name: 'X-Filename', in: 'header', schema: { type: 'string' }, description: 'The file name to report (raw uploads).' },
          { name: 'output', in: 'query', schema: { type: 'string', enum: ['overlay', 'mask'], default: 'overlay' }, description: 'overlay: the frames with the class colours (H.264); mask: the palette colours, lossless.' },
        ],
        requestBody: { required: true, content: {
          'video/mp4': { schema: bin }, 'video/quicktime': { schema: bin }, 'video/x-matroska': { schema: bin }, 'video/webm': { schema: bin }, 'video/mp2t': { schema: bin },
          'multipart/form-data': { schema: { type: 'object', required: ['video'], properties: { video: bin } } },
          'application/json': { schema: { type: 'object', required: ['path'], properties: { path: { type: 'string', description: 'Relative to the server\'s --video-dir (403 without one).' } } } },
        } },
        responses: { 202: { description: 'Queued; Location is the job.', content: json(job) }, ...errors([400, 403, 408, 413, 415, 503]) },
      },
      get: {
        summary: 'The jobs, newest first', security,
        parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } }, { name: 'after', in: 'query', schema: { type: 'string' }, description: 'The last id of the previous page.' }],
        responses: { 200: { description: 'A page of jobs; next is the following page\'s URL.', content: json({ type: 'object', properties: { jobs: { type: 'array', items: job }, next: { type: 'string' } } }) }, ...errors([400, 404]) },
      },
    },
    '/videos/{id}': {
      get: { summary: 'A job\'s state, frames done / total, frames/s, error', security, parameters: [id], responses: { 200: { description: 'The job.', content: json(job) }, ...errors([404]) } },
      delete: { summary: 'Cancel a job and delete its files', security, parameters: [id], responses: { 204: { description: 'Deleted.' }, ...errors([404]) } },
    },
    '/videos/{id}/result': {
      get: {
        summary: 'The overlay MP4 (Range requests work), or with ?stats=1 the per-frame JSON lines', security,
        parameters: [id, { name: 'stats', in: 'query', schema: { type: 'string', enum: ['1'] } }],
        responses: { 200: { description: 'The result; X-Partial: true for the frames a failed or cancelled job segmented.', content: { 'video/mp4': { schema: bin }, 'application/x-ndjson': { schema: { type: 'string' } } } }, ...errors([404, 409]) },
      },
    },
  };
}

export const VIDEO_JOB_SCHEMA = {
  type: 'object', required: ['id', 'state', 'frames', 'fps', 'partial', 'createdAt'],
  properties: {
    id: { type: 'string' }, state: { type: 'string', enum: ['queued', 'running', 'done', 'failed', 'cancelled'] }, output: { type: 'string', enum: ['overlay', 'mask'] },
    input: { type: 'object', properties: { name: { type: 'string' }, bytes: { type: 'integer' } } },
    frames: { type: 'object', properties: { done: { type: 'integer' }, total: { type: 'integer' } } }, fps: { type: 'number' },
    error: { type: 'string' }, partial: { type: 'boolean' }, createdAt: { type: 'string', format: 'date-time' }, startedAt: { type: 'string' }, finishedAt: { type: 'string' },
    links: { type: 'object', additionalProperties: { type: 'string' } },
  },
};

/** Video jobs by state; with a distributed queue, its segments by state and the segments completed (and per second over a minute). */
export function registerVideoMetrics(registry: client.Registry, jobs: VideoJobs): void {
  // One read per scrape, shared by the gauges below.
  let snapshot: Promise<Awaited<ReturnType<VideoJobs['metrics']>>> | undefined;
  const read = () => (snapshot ??= jobs.metrics().finally(() => setImmediate(() => { snapshot = undefined; })));
  const r = [registry];
  new client.Gauge({ name: 'i2i_video_jobs', help: 'Video jobs by state.', labelNames: ['state'], registers: r,
    async collect() { for (const [state, n] of Object.entries((await read()).jobs)) this.set({ state }, n); } });
  new client.Gauge({ name: 'i2i_queue_segments', help: 'Segment jobs on the distributed queue by state (waiting, active, delayed, completed, failed); absent in-process.', labelNames: ['state'], registers: r,
    async collect() { for (const [state, n] of Object.entries((await read()).queue ?? {})) this.set({ state }, n); } });
  new client.Gauge({ name: 'i2i_queue_segments_done', help: 'Segments completed since this server started (any worker).', registers: r,
    async collect() { const m = await read(); if (m.segmentsDone !== undefined) this.set(m.segmentsDone); } });
  new client.Gauge({ name: 'i2i_queue_segments_per_second', help: 'Segments completed per second over the last minute (any worker).', registers: r,
    async collect() { const m = await read(); if (m.segmentsPerSecond !== undefined) this.set(m.segmentsPerSecond); } });
}
