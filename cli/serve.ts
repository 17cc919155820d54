/** `i2i serve`: parses its options, starts the server, and drains it on SIGTERM / SIGINT. */
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../core/errors';
import { intFlag, runtimeFlags } from './args';
import { jsonLogger, startServer } from '../serve/server';
import { CAPTURE_FLAGS, captureFlags } from '../serve/capture';
import { attachments } from './attach';


export async function cmdServe(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, strict: true, options: {
    bundle: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, runtime: { type: 'string' }, precision: { type: 'string' },
    workers: { type: 'string' }, threads: { type: 'string' }, 'max-queue': { type: 'string' }, 'max-batch': { type: 'string' }, 'max-wait-ms': { type: 'string' },
    'timeout-ms': { type: 'string' }, 'max-bytes': { type: 'string' }, 'max-pixels': { type: 'string' }, 'token-file': { type: 'string' }, 'admin-token-file': { type: 'string' }, 'bundle-root': { type: 'string' },
    ...CAPTURE_FLAGS, 'drain-timeout-ms': { type: 'string' }, 'drain-delay-ms': { type: 'string' },
    stream: { type: 'string', multiple: true }, 'stream-out': { type: 'string' }, 'stream-segment-seconds': { type: 'string' }, loop: { type: 'boolean' }, alpha: { type: 'string' },
    redis: { type: 'string' }, queue: { type: 'string' }, store: { type: 'string' }, 'segment-seconds': { type: 'string' }, 'retire-after': { type: 'string' },
    'no-videos': { type: 'boolean' }, 'video-store': { type: 'string' }, 'video-dir': { type: 'string' }, 'video-concurrency': { type: 'string' }, 'video-backlog': { type: 'string' },
    'max-video-bytes': { type: 'string' }, 'video-store-max-bytes': { type: 'string' }, 'max-video-pixels': { type: 'string' }, 'upload-timeout-ms': { type: 'string' },
  } });
  if (!values.bundle) throw new UserError('serve needs --bundle <dir with manifest.json>.', 'Make one with i2i convert.');
  const int = (flag: string, min = 1) => intFlag(values, flag, min);
  const { runtime, precision } = runtimeFlags(values);
  const streams = (values.stream ?? []).map((v) => {
    const m = /^([\w.-]+)=(.+)$/.exec(v);
    if (!m) throw new UserError(`--stream must be NAME=URL, got "${v}".`, 'For example: --stream front=rtsp://camera.local/stream1');
    return { name: m[1], source: /^[a-z][a-z0-9+.-]*:\/\//i.test(m[2]) ? m[2] : path.resolve(m[2]) };
  });
  if (new Set(streams.map((s) => s.name)).size !== streams.length) throw new UserError('Two --stream options have the same name.', 'Give each stream its own NAME.');
  const alpha = values.alpha === undefined ? undefined : Number(values.alpha);
  if (alpha !== undefined && !(alpha >= 0 && alpha <= 1)) throw new UserError(`--alpha must be in [0, 1], got "${values.alpha}".`);
  const seconds = (flag: 'segment-seconds' | 'stream-segment-seconds') => {
    const v = values[flag];
    if (v === undefined) return undefined;
    if (!(Number(v) > 0)) throw new UserError(`--${flag} must be a positive number of seconds, got "${v}".`);
    return Number(v);
  };
  if (values['no-videos'] && values.redis) throw new UserError('--redis puts /videos jobs on a queue; --no-videos turns /videos off.', 'Pass one of them.');
  for (const f of ['queue', 'store', 'segment-seconds', 'retire-after'] as const) if (values[f] !== undefined && !values.redis) throw new UserError(`--${f} belongs to the distributed queue.`, 'Pass --redis redis://HOST:PORT with it.');
  for (const f of ['video-store', 'video-concurrency', 'video-backlog', 'video-store-max-bytes'] as const) if (values[f] !== undefined && values.redis) throw new UserError(`--${f} sets the in-process video jobs; with --redis the workers run them.`, 'Use --store (shared with the workers) and i2i worker --concurrency instead.');
  // Scale-out: /videos on BullMQ; loaded only then (the embedded default needs no Redis client).
  const queue = values.redis ? await (require('./fleet') as typeof import('./fleet')).openQueueJobs({
    redis: values.redis, queue: values.queue, store: values.store, segmentSeconds: seconds('segment-seconds'), bundle: path.resolve(values.bundle), maxPixels: int('max-video-pixels'),
    retireAfterMs: values['retire-after'] === undefined ? undefined : (int('retire-after') ?? 0) * 1000,
  }) : undefined;
  const log = jsonLogger();
  if (values['bundle-root'] && !fs.existsSync(values['bundle-root'])) throw new UserError(`--bundle-root ${values['bundle-root']} does not exist.`, 'Pass the folder that holds the bundles a reload may name.');
  // Registered before the model loads (which may take minutes): Node's default for SIGHUP is to exit.
  // A SIGHUP during start-up reloads once the server is up.
  let hup: (() => void) | undefined, hupEarly = false;
  process.on('SIGHUP', () => { if (hup) hup(); else hupEarly = true; });
  const s = await startServer({
    bundle: path.resolve(values.bundle), port: int('port', 0) ?? 8080, host: values.host, runtime, precision,
    workers: int('workers'), threads: int('threads'), maxQueue: int('max-queue', 0), maxBatch: int('max-batch'), maxWaitMs: int('max-wait-ms', 0),
    timeoutMs: int('timeout-ms'), maxBytes: int('max-bytes'), maxPixels: int('max-pixels'), tokenFile: values['token-file'], adminTokenFile: values['admin-token-file'], bundleRoot: values['bundle-root'] && path.resolve(values['bundle-root']),
    capture: captureFlags(values), drainTimeoutMs: int('drain-timeout-ms'), drainDelayMs: int('drain-delay-ms', 0), log,
    attach: attachments({
      videos: values['no-videos'] ? undefined : {
        store: values['video-store'] && path.resolve(values['video-store']), videoDir: values['video-dir'] && path.resolve(values['video-dir']),
        concurrency: int('video-concurrency'), backlog: int('video-backlog', 0), maxStoreBytes: int('video-store-max-bytes'), maxVideoBytes: int('max-video-bytes'), uploadTimeoutMs: int('upload-timeout-ms'), maxPixels: int('max-video-pixels'), queue,
      },
      streams, streamOut: values['stream-out'] && path.resolve(values['stream-out']), segmentSeconds: seconds('stream-segment-seconds'), loop: values.loop, alpha,
    }, log),
  });
  // Anyone who can reach a non-loopback address can use the model and the video store.
  if (!values['token-file'] && !/^http:\/\/(127\.|\[::1\]|localhost)/.test(s.url)) {
    log.warn({ url: s.url }, 'serving on a non-loopback address without --token-file: anyone who reaches it can segment frames and submit videos');
    process.stderr.write(`i2i serve: warning: ${s.url} is reachable beyond this machine and no --token-file is set: anyone who reaches it can use it.\n`);
  }
  // Rollout: a tool switches the --bundle symlink (or rewrites it), then sends SIGHUP.
  hup = () => {
    s.reload().then((r) => process.stderr.write(`i2i serve: reloaded ${values.bundle}: version ${r.active.version} (was ${r.previous.version})\n`),
      (e: Error) => process.stderr.write(`i2i serve: reload failed, still serving version ${s.engine.model.version}: ${e.message}\n`));
  };
  if (hupEarly) { hupEarly = false; hup(); }
  process.stderr.write(`i2i serve: listening on ${s.url} (POST /segment${values['no-videos'] ? '' : ', /videos'}${streams.map((x) => `, /streams/${x.name}.mjpeg`).join('')})\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => { process.once('SIGTERM', resolve); process.once('SIGINT', resolve); });
  log.info({ signal }, 'signal received');
  // A second signal during the drain stops at once (the workers exit with their parent's channel).
  const now = () => { log.warn({}, 'second signal: exiting without finishing the drain'); process.exit(1); };
  process.once('SIGTERM', now); process.once('SIGINT', now);
  return (await s.close()) ? 0 : 1;
}
