/** `i2i serve`: parses its options, starts the server, and drains it on SIGTERM / SIGINT. */
import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { UserError } from '../core/errors';
import { PRECISIONS, RUNTIMES, type Precision, type RuntimeName } from '../runtime/bundle';
import { jsonLogger, startServer } from '../serve/server';


export async function cmdServe(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, strict: true, options: {
    bundle: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, runtime: { type: 'string' }, precision: { type: 'string' },
    workers: { type: 'string' }, threads: { type: 'string' }, 'max-queue': { type: 'string' }, 'max-batch': { type: 'string' }, 'max-wait-ms': { type: 'string' },
    'timeout-ms': { type: 'string' }, 'max-bytes': { type: 'string' }, 'max-pixels': { type: 'string' }, 'token-file': { type: 'string' }, 'drain-timeout-ms': { type: 'string' }, 'drain-delay-ms': { type: 'string' },
  } });
  if (!values.bundle) throw new UserError('serve needs --bundle <dir with manifest.json>.', 'Make one with i2i convert.');
  const int = (flag: keyof typeof values, min = 1) => {
    const v = values[flag] as string | undefined;
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UserError(`--${flag} must be an integer >= ${min}, got "${v}".`);
    return n;
  };
  if (values.runtime && !(RUNTIMES as readonly string[]).includes(values.runtime)) throw new UserError(`--runtime must be ${RUNTIMES.join(' or ')}, got "${values.runtime}".`);
  if (values.precision && !(PRECISIONS as readonly string[]).includes(values.precision)) throw new UserError(`--precision must be one of ${PRECISIONS.join(', ')}, got "${values.precision}".`);
  const log = jsonLogger();
  const s = await startServer({
    bundle: path.resolve(values.bundle), port: int('port', 0) ?? 8080, host: values.host, runtime: values.runtime as RuntimeName | undefined, precision: values.precision as Precision | undefined,
    workers: int('workers'), threads: int('threads'), maxQueue: int('max-queue', 0), maxBatch: int('max-batch'), maxWaitMs: int('max-wait-ms', 0),
    timeoutMs: int('timeout-ms'), maxBytes: int('max-bytes'), maxPixels: int('max-pixels'), tokenFile: values['token-file'], drainTimeoutMs: int('drain-timeout-ms'), drainDelayMs: int('drain-delay-ms', 0), log,
  });
  process.stderr.write(`i2i serve: listening on ${s.url} (POST /segment)\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => { process.once('SIGTERM', resolve); process.once('SIGINT', resolve); });
  log.info({ signal }, 'signal received');
  // A second signal during the drain stops at once (the workers exit with their parent's channel).
  const now = () => { log.warn({}, 'second signal: exiting without finishing the drain'); process.exit(1); };
  process.once('SIGTERM', now); process.once('SIGINT', now);
  return (await s.close()) ? 0 : 1;
}
