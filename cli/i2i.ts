/**
 * The `i2i` command line. It only parses arguments and calls the stages' libraries; each command's
 * modules load when it runs (the server needs nothing of train/ or convert/, nor TensorFlow.js
 * unless it serves a tfjs bundle).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isUserError, UserError } from '../core/errors';
import { commandHelp, commandNames, flagsOf, suggest } from './help';

const helpText = (): string => (require('./stages') as typeof import('./stages')).HELP;

function version(): string {
  return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === '--version' || cmd === '-V' || cmd === 'version') { process.stdout.write(`i2i ${version()}\n`); return 0; }
    if (cmd && (rest.includes('--help') || rest.includes('-h'))) {
      const section = commandHelp(helpText(), cmd);
      if (!section) throw unknownCommand(cmd);
      process.stdout.write(section);
      return 0;
    }
    switch (cmd) {
      case 'serve': return await (require('./serve') as typeof import('./serve')).cmdServe(rest);
      case 'segment-video': return await (require('./video') as typeof import('./video')).cmdSegmentVideo(rest);
      case 'worker': return await (require('./fleet') as typeof import('./fleet')).cmdWorker(rest);
      case 'segment-stream': return await (require('./stream') as typeof import('./stream')).cmdSegmentStream(rest);
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write(helpText()); return 0;
      default:
        if (await (require('./stages') as typeof import('./stages')).runStage(cmd, rest)) return 0;
        throw unknownCommand(cmd);
    }
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (isUserError(e) || code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`i2i: ${(e as Error).message}${code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? flagHint(cmd, (e as Error).message) : ''}\n`);
      return 2;
    }
    process.stderr.write(`i2i: internal error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

function unknownCommand(cmd: string): UserError {
  const near = suggest(cmd, commandNames(helpText()));
  return new UserError(`Unknown command "${cmd}".${near ? ` Did you mean "${near}"?` : ''}`, 'Run i2i --help for the list.');
}

/** " Did you mean --x?" for parseArgs' "Unknown option '--y'", from the flags the command's help names. */
function flagHint(cmd: string, message: string): string {
  const given = /'--([^'=]+)/.exec(message)?.[1];
  const section = given && commandHelp(helpText(), cmd);
  const near = section ? suggest(given, flagsOf(section)) : undefined;
  const sep = message.trimEnd().endsWith('.') ? ' ' : '. ';
  return near ? `${sep}Did you mean --${near}? (i2i ${cmd} --help lists its options)` : `${sep}i2i ${cmd} --help lists its options.`;
}

if (require.main === module) {
  // Exit explicitly: the wasm runtime installs handlers that would dump its source on a throw.
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
