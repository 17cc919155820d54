/** `i2i segment-video`: parses its options, runs the batch over the engine, prints a summary. */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { UserError } from '../core/errors';
import { numberFlag, runtimeFlags } from './args';
import { Engine } from '../serve/engine/engine';
import { checkPaths, segmentVideos } from '../streams/batch';
import { progressPrinter } from '../streams/progress';

export async function cmdSegmentVideo(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, strict: true, allowPositionals: true, options: {
    bundle: { type: 'string' }, out: { type: 'string' }, output: { type: 'string' }, stats: { type: 'string' }, fps: { type: 'string' },
    start: { type: 'string' }, duration: { type: 'string' }, runtime: { type: 'string' }, precision: { type: 'string' }, workers: { type: 'string' },
    threads: { type: 'string' }, alpha: { type: 'string' }, json: { type: 'boolean' },
  } });
  const input = positionals[0];
  if (!input || !values.bundle || !values.out) throw new UserError('segment-video needs <file|dir>, --bundle <dir> and --out <file|dir>.', 'For example: i2i segment-video drive.mp4 --bundle bundles/g2c --out drive.seg.mp4');
  const num = (flag: string, ok: (n: number) => boolean, what: string) => numberFlag(values, flag, ok, what);
  const output = (values.output ?? 'overlay') as 'overlay' | 'mask' | 'both';
  if (!['overlay', 'mask', 'both'].includes(output)) throw new UserError(`--output must be overlay, mask or both, got "${values.output}".`);
  const { runtime, precision } = runtimeFlags(values);
  const pos = (n: number) => Number.isFinite(n) && n > 0, int = (n: number) => Number.isInteger(n) && n > 0;
  // Before the engine starts (seconds) and any frame is segmented: a bad --out fails at once.
  checkPaths(path.resolve(input), path.resolve(values.out));
  const engine = await Engine.start({ bundle: path.resolve(values.bundle), runtime, precision,
    workers: num('workers', int, 'a positive integer'), threads: num('threads', int, 'a positive integer'), maxQueue: 64 });
  const mode = values.json ? 'json' : process.stderr.isTTY ? 'tty' : 'lines';
  const bar = progressPrinter(mode);
  // Ctrl-C: the current file stops with what it has (a playable partial output), no new file starts.
  const ac = new AbortController();
  const stop = () => { process.stderr.write('\n[segment-video] stopping: finishing the frames in flight\n'); ac.abort(); };
  process.once('SIGINT', stop); process.once('SIGTERM', stop);
  try {
    const outcomes = await segmentVideos({
      engine, bundle: path.resolve(values.bundle), input: path.resolve(input), out: path.resolve(values.out), output,
      stats: values.stats ? path.resolve(values.stats) : undefined, fps: num('fps', pos, 'a positive number'), start: num('start', (n) => n >= 0, 'a number of seconds >= 0'),
      duration: num('duration', pos, 'a positive number of seconds'), alpha: num('alpha', (n) => n >= 0 && n <= 1, 'in [0, 1]'), signal: ac.signal,
      onProgress: (p) => bar.update(p),
      onFile: (f) => {
        bar.done();
        const line = f.status === 'done' ? `done ${f.input}: ${f.result.frames} frames at ${f.result.fps.toFixed(1)} frames/s -> ${f.result.outputs.join(', ')}`
          : f.status === 'skipped' ? `skipped ${f.input}: ${f.reason}` : `FAILED ${f.input}: ${f.error}${f.result ? ` (${f.result.frames} frames kept in ${f.result.outputs.join(', ')})` : ''}`;
        if (mode === 'json') process.stdout.write(JSON.stringify({ ...f, result: f.status !== 'skipped' && f.result ? { frames: f.result.frames, fps: f.result.fps, outputs: f.result.outputs, partial: f.result.partial } : undefined }) + '\n');
        else process.stdout.write(line + '\n');
      },
    });
    const failed = outcomes.filter((f) => f.status === 'failed').length;
    if (mode !== 'json') process.stdout.write(`${outcomes.length} file(s): ${outcomes.filter((f) => f.status === 'done').length} done, ${outcomes.filter((f) => f.status === 'skipped').length} skipped, ${failed} failed\n`);
    return ac.signal.aborted ? 130 : failed ? 1 : 0;
  } finally {
    process.off('SIGINT', stop); process.off('SIGTERM', stop);
    await engine.close();
  }
}
