/**
 * The `i2i` command line. It only parses arguments and calls the stages' libraries; each command's
 * modules load when it runs (the server needs nothing of train/ or convert/, nor TensorFlow.js
 * unless it serves a tfjs bundle).
 */
import { isUserError, UserError } from '../core/errors';

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve': return await (require('./serve') as typeof import('./serve')).cmdServe(rest);
      case 'segment-video': return await (require('./video') as typeof import('./video')).cmdSegmentVideo(rest);
      case 'worker': return await (require('./fleet') as typeof import('./fleet')).cmdWorker(rest);
      case 'segment-stream': return await (require('./stream') as typeof import('./stream')).cmdSegmentStream(rest);
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write((require('./stages') as typeof import('./stages')).HELP); return 0;
      default:
        if (await (require('./stages') as typeof import('./stages')).runStage(cmd, rest)) return 0;
        throw new UserError(`Unknown command "${cmd}".`, 'Run i2i --help for the list.');
    }
  } catch (e) {
    if (isUserError(e) || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`i2i: ${(e as Error).message}\n`);
      return 2;
    }
    process.stderr.write(`i2i: internal error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

if (require.main === module) {
  // Exit explicitly: the wasm runtime installs handlers that would dump its source on a throw.
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
