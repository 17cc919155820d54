/** `i2i segment-stream`: a live source through the engine; stats lines, rolling segments, and optionally the server. */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { UserError } from '../core/errors';
import { numberFlag, runtimeFlags } from './args';
import { Engine } from '../serve/engine/engine';
import { jsonLogger, startServer } from '../serve/server';
import { LiveStream, redact } from '../streams/live';
import { attachments } from './attach';

export async function cmdSegmentStream(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, strict: true, allowPositionals: true, options: {
    bundle: { type: 'string' }, out: { type: 'string' }, 'segment-seconds': { type: 'string' }, name: { type: 'string' }, serve: { type: 'boolean' },
    port: { type: 'string' }, host: { type: 'string' }, loop: { type: 'boolean' }, runtime: { type: 'string' }, precision: { type: 'string' },
    workers: { type: 'string' }, threads: { type: 'string' }, alpha: { type: 'string' }, json: { type: 'boolean' },
  } });
  const given = positionals[0];
  if (!given || !values.bundle) throw new UserError('segment-stream needs <url|file> and --bundle <dir>.', 'For example: i2i segment-stream rtsp://camera.local/stream1 --bundle bundles/g2c --serve');
  const source = /^[a-z][a-z0-9+.-]*:\/\//i.test(given) ? given : path.resolve(given);
  const num = (flag: string, ok: (n: number) => boolean, what: string) => numberFlag(values, flag, ok, what);
  const { runtime, precision } = runtimeFlags(values);
  const int = (n: number) => Number.isInteger(n) && n > 0;
  const name = values.name ?? (/^[a-z][a-z0-9+.-]*:\/\//i.test(given) ? 'live' : path.basename(given).replace(/\.[^.]+$/, '').replace(/[^\w.-]/g, '_'));
  const engineOptions = { bundle: path.resolve(values.bundle), runtime, precision,
    workers: num('workers', int, 'a positive integer'), threads: num('threads', int, 'a positive integer') };
  const common = { out: values.out && path.resolve(values.out), segmentSeconds: num('segment-seconds', (n) => n > 0, 'a positive number'), loop: values.loop, alpha: num('alpha', (n) => n >= 0 && n <= 1, 'in [0, 1]') };
  const print = (s: ReturnType<LiveStream['stats']>) => process.stdout.write(values.json ? JSON.stringify(s) + '\n'
    : `[segment-stream] ${s.name} ${s.state}: ${s.frames.segmented} segmented, ${s.frames.dropped} dropped of ${s.frames.read} read, ${s.fps.toFixed(1)} fps (source ${s.sourceFps || '?'}), latency ${s.latency === null ? '-' : `${(s.latency * 1000).toFixed(0)} ms`}, drift ${s.drift?.toFixed(2) ?? '-'}${s.reconnects ? `, ${s.reconnects} reconnects` : ''}${s.lastError ? ` (last error: ${s.lastError})` : ''}\n`);

  let stream: LiveStream;
  let stopAll: () => Promise<unknown>;
  let ended: Promise<void>;
  if (values.serve) {
    const log = jsonLogger();
    const attach = attachments({ streams: [{ name, source }], streamOut: common.out, segmentSeconds: common.segmentSeconds, loop: common.loop, alpha: common.alpha }, log);
    let live: LiveStream[] = [];
    const s = await startServer({ ...engineOptions, port: num('port', (n) => Number.isInteger(n) && n >= 0, 'a port number') ?? 8080, host: values.host, log, attach: (e) => { const a = attach(e); live = a.live; return a; } });
    stream = live[0];
    process.stderr.write(`i2i segment-stream: ${redact(source)} -> ${s.url}/streams/${name}.mjpeg (stats: ${s.url}/streams/${name})\n`);
    stopAll = () => s.close();
    // Served, the command stays up after a file ends (the last overlay stays on view) until Ctrl-C.
    ended = new Promise<void>(() => undefined);
  } else {
    const engine = await Engine.start(engineOptions);
    stream = new LiveStream({ name, source, engine, ...common, log: values.json ? undefined : (msg, extra) => process.stderr.write(`[segment-stream] ${msg} ${JSON.stringify(extra)}\n`) });
    ended = stream.start();
    stopAll = async () => { await stream.stop(); await engine.close(); };
  }
  const timer = setInterval(() => print(stream.stats()), 5000);
  const signalled = await new Promise<boolean>((resolve) => {
    const stop = () => resolve(true);
    process.once('SIGINT', stop); process.once('SIGTERM', stop);
    void ended.then(() => resolve(false));
  });
  clearInterval(timer);
  if (signalled) process.stderr.write('\n[segment-stream] stopping: closing the current segment\n');
  await stopAll();
  print(stream.stats());
  return signalled ? 130 : 0;
}
