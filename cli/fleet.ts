/** Scale-out on the command line: the queue side of `i2i serve --redis`, and `i2i worker`. */
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { bundleId } from '../core/bundle';
import { UserError } from '../core/errors';
import { QueueVideoJobs } from '../fleet/jobs';
import { DirStore } from '../fleet/store';
import { startFleetWorker } from '../fleet/worker';
import { intFlag, runtimeFlags } from './args';
import { CAPTURE_FLAGS, captureFlags } from '../serve/capture';

const storeDir = (given: string | undefined, queue: string) => path.resolve(given ?? path.join(os.tmpdir(), 'i2i-store', queue));
const QUEUE_NAME = /^[\w.-]{1,64}$/;

export async function openQueueJobs(o: { redis: string; queue?: string; store?: string; segmentSeconds?: number; bundle: string; maxPixels?: number; retireAfterMs?: number }): Promise<QueueVideoJobs> {
  const queue = o.queue ?? 'i2i-videos';
  if (!QUEUE_NAME.test(queue)) throw new UserError(`--queue ${queue} is not a usable queue name.`, 'Use letters, digits, dot, dash or underscore.');
  const store = storeDir(o.store, queue);
  if (!o.store) process.stderr.write(`i2i serve: results in ${store} (pass --store with a directory every worker shares)\n`);
  return QueueVideoJobs.open({ redis: o.redis, queue, store: new DirStore(store), bundle: bundleId(o.bundle), segmentSeconds: o.segmentSeconds, maxPixels: o.maxPixels, retireAfterMs: o.retireAfterMs });
}


export async function cmdWorker(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, strict: true, options: {
    bundle: { type: 'string' }, redis: { type: 'string' }, queue: { type: 'string' }, store: { type: 'string' }, concurrency: { type: 'string' },
    workers: { type: 'string' }, threads: { type: 'string' }, runtime: { type: 'string' }, precision: { type: 'string' }, 'lock-ms': { type: 'string' },
    'segment-timeout-ms': { type: 'string' }, 'segment-ms-per-frame': { type: 'string' }, 'redis-wait': { type: 'string' }, ...CAPTURE_FLAGS,
  } });
  if (!values.bundle || !values.redis) throw new UserError('worker needs --bundle <dir> and --redis redis://HOST:PORT.', 'For example: i2i worker --bundle bundles/g2c --redis redis://queue.local:6379 --store /mnt/fleet');
  const int = (flag: string, min = 1) => intFlag(values, flag, min);
  const { runtime, precision } = runtimeFlags(values);
  const queue = values.queue ?? 'i2i-videos';
  if (!QUEUE_NAME.test(queue)) throw new UserError(`--queue ${queue} is not a usable queue name.`, 'Use letters, digits, dot, dash or underscore.');
  const log = (msg: string, extra?: object) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), msg, ...extra }) + '\n');
  const w = await startFleetWorker({
    bundle: path.resolve(values.bundle), redis: values.redis, queue, store: new DirStore(storeDir(values.store, queue)), concurrency: int('concurrency'),
    workers: int('workers'), threads: int('threads'), runtime, precision, lockMs: int('lock-ms', 1000),
    segmentTimeoutMs: int('segment-timeout-ms', 1000), segmentMsPerFrame: int('segment-ms-per-frame', 0), log,
    capture: captureFlags(values), redisWaitMs: (int('redis-wait', 0) ?? 60) * 1000, onRedisWait: (line) => process.stderr.write(`i2i worker: ${line}\n`),
  });
  log('worker ready', { queue, bundle: w.bundle.slice(0, 12), pid: process.pid });
  const stop = await Promise.race([
    new Promise<NodeJS.Signals>((resolve) => { process.once('SIGTERM', resolve); process.once('SIGINT', resolve); }),
    w.refused,
  ]);
  const now = () => process.exit(1);
  process.once('SIGTERM', now); process.once('SIGINT', now);
  if (stop instanceof UserError) {
    process.stderr.write(`i2i: ${stop.message}\n`);
    await w.close();
    return 2;
  }
  log('stopping: finishing the segments in hand', { signal: stop });
  await w.close();
  return 0;
}
