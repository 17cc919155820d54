/**
 * The video job API's contract, between the HTTP routes (serve/videos.ts) and whatever runs the
 * jobs: in-process by default (streams/jobs.ts), a distributed queue when scaled out. Both sides
 * import this file only, so a queue can replace the other without the routes knowing.
 */

import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { VideoRefused } from './ffmpeg';

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** 'overlay': the frames blended with the class colours (H.264); 'mask': the palette colours, lossless, so every pixel decodes back to its label. */
export type VideoOutput = 'overlay' | 'mask';

export interface JobStatus {
  id: string;
  state: JobState;
  output: VideoOutput;
  /** The uploaded file's name (as the client gave it) and size. */
  input: { name: string; bytes: number };
  frames: { done: number; total: number };
  /** Frames per second while running (or over the whole job once finished). */
  fps: number;
  /** Why the job failed (with the frame it failed at); absent otherwise. */
  error?: string;
  /** A failed or cancelled job whose output holds the frames done before it stopped. */
  partial: boolean;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
}

export type JobErrorCode = 'backlog-full' | 'store-full' | 'bad-video' | 'not-found' | 'not-ready' | 'closed';

/** A refusal the routes turn into a status: backlog-full 503, store-full 503, bad-video 400, not-found 404, not-ready 409, closed 503. */
export class JobError extends Error {
  constructor(readonly code: JobErrorCode, message: string, readonly hint: string) {
    super(message);
    this.name = 'JobError';
  }
}

export interface VideoJobs {
  /** Where the routes write an upload before handing it over (same filesystem, so it is moved, not copied). */
  readonly uploadDir: string;
  /** False when the backlog is full: the routes refuse before reading an upload. */
  accepting(): boolean;
  /**
   * Probes the file (bad-video) and queues it (backlog-full). An owned file (an upload) is moved
   * into the job or deleted; `owned: false` (a path inside the operator's --video-dir) is only read.
   */
  submit(upload: { file: string; name: string; bytes: number; owned?: boolean; output?: VideoOutput }): Promise<JobStatus>;
  get(id: string): Promise<JobStatus | undefined>;
  /** Newest first; `after` is the id the previous page ended with. */
  list(o: { limit: number; after?: string }): Promise<{ jobs: JobStatus[]; next?: string }>;
  /** The result file: the MP4 ('video') or the per-frame JSON lines ('stats'); not-found / not-ready. */
  result(id: string, kind: 'video' | 'stats'): Promise<{ file: string; partial: boolean }>;
  /** Cancels a queued or running job and deletes its files; false when there is no such job. */
  remove(id: string): Promise<boolean>;
  /** For /metrics: jobs by state; a queue adds its segments' depth by state and its throughput. */
  metrics(): Promise<VideoJobsMetrics>;
  /** Seconds a client should wait before retrying a refused submit. */
  retryAfterSeconds(): number;
  close(): Promise<void>;
}

export interface VideoJobsMetrics {
  jobs: Record<JobState, number>;
  /** Segment jobs of a distributed queue by BullMQ state (waiting, active, delayed, completed, failed). */
  queue?: Record<string, number>;
  segmentsDone?: number;
  /** Over the last minute. */
  segmentsPerSecond?: number;
}

/** Ids: base-36 time then random hex, so they sort by creation; the routes refuse anything else before it reaches a runner. */
export const JOB_ID = /^[0-9a-z]{8,40}$/;
export function newJobId(): string { return `${Date.now().toString(36)}${randomBytes(5).toString('hex')}`; }

/** A job's files, by the same names in every runner. */
export const JOB_FILES = { result: 'result.mp4', stats: 'frames.jsonl', input: (clientName: string) => `input${path.extname(clientName).toLowerCase().replace(/[^.\w]/g, '') || '.video'}` };

/** The refusal of a file ffmpeg cannot read, named as the client named it. */
export function badVideo(name: string, file: string, e: unknown): JobError {
  if (e instanceof VideoRefused) return new JobError('bad-video', e.problem.split(file).join(name), e.fix ?? 'Send a video file.');
  return new JobError('bad-video', `${name} is not a video ffmpeg can read: ${(e as Error).message.replace(file, name)}`, 'Send an MP4, MOV, MKV, WebM or MPEG-TS file.');
}
