/** What `i2i serve` and `i2i segment-stream --serve` run on the server's engine beside POST /segment. */
import type { Attachments } from '../serve/server';
import type { Engine } from '../serve/engine/engine';
import type { Logger } from '../serve/app';
import type { VideoJobs } from '../core/video-jobs';
import { LocalVideoJobs, type LocalJobsOptions } from '../streams/jobs';
import { LiveStream } from '../streams/live';

export interface AttachOptions {
  /** The /videos job API (absent: no /videos routes): on `queue` (a distributed one, opened by the caller) or in this process. */
  videos?: Omit<LocalJobsOptions, 'engine' | 'log'> & { queue?: VideoJobs; maxVideoBytes?: number; uploadTimeoutMs?: number; videoDir?: string };
  streams?: { name: string; source: string }[];
  streamOut?: string;
  segmentSeconds?: number;
  loop?: boolean;
  alpha?: number;
  /** Called when a stream ends on its own (a file without --loop). */
  onStreamEnd?: (name: string) => void;
}

export function attachments(o: AttachOptions, log: Logger): (engine: Engine) => Attachments & { live: LiveStream[] } {
  return (engine) => {
    const jobs = o.videos && (o.videos.queue ?? new LocalVideoJobs({ ...o.videos, engine, alpha: o.alpha, log: (msg, extra) => log.info({ ...extra }, msg) }));
    const live = (o.streams ?? []).map((s) => new LiveStream({
      ...s, engine, out: o.streamOut, segmentSeconds: o.segmentSeconds, loop: o.loop, alpha: o.alpha,
      log: (msg, extra) => log.info({ ...extra }, msg),
    }));
    return {
      live,
      videos: jobs && { jobs, maxVideoBytes: o.videos!.maxVideoBytes, uploadTimeoutMs: o.videos!.uploadTimeoutMs, videoDir: o.videos!.videoDir },
      streams: live.length ? live : undefined,
      start: () => { for (const l of live) void l.start().then(() => o.onStreamEnd?.(l.name), (e: Error) => log.error({ stream: l.name, err: e.stack }, 'stream stopped')); },
      close: async () => { await Promise.all([jobs?.close(), ...live.map((l) => l.stop())]); },
    };
  };
}
