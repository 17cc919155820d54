/**
 * Every command through the package's own bin, as a user's shell runs it (`npx i2i ...`): each one
 * loads its modules and answers a bad call with a UserError (exit 2), never a loader failure.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120000 });

describe('cli: every command through bin/i2i.js', function () {
  this.timeout(300000);
  // Each call gets far enough to load the command's own modules, then fails on its input.
  const calls: [string, string[], RegExp][] = [
    ['report', ['report', '/nonexistent/run'], /No checkpoint in \/nonexistent\/run/],
    ['demo', ['demo', '--quick', '--out', '/dev/null/demo'], /Cannot create the demo's folder/],
    ['eval', ['eval', '--checkpoint', '/nonexistent/run'], /checkpoint/i],
    ['convert', ['convert', '--checkpoint', '/nonexistent/run', '--out', '/tmp/never-written'], /checkpoint/i],
    ['translate', ['translate', '--checkpoint', '/nonexistent/run', '--out', '/tmp/never.png'], /checkpoint/i],
    ['serve', ['serve', '--bundle', '/nonexistent/bundle'], /bundle|manifest/i],
    ['segment-video', ['segment-video', '/nonexistent.mp4', '--bundle', '/nonexistent/bundle', '--out', '/tmp/never.mp4'], /nonexistent/],
  ];
  for (const [name, args, message] of calls) {
    it(`${name}: a clear error, exit 2`, () => {
      const r = run(args);
      assert.doesNotMatch(r.stderr, /ERR_MODULE_NOT_FOUND|internal error/, r.stderr);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
    });
  }

  it('--version prints the package version; every command listed in i2i --help has its own --help', () => {
    const v = run(['--version']);
    assert.equal(v.status, 0);
    assert.match(v.stdout, /^i2i \d+\.\d+\.\d+\n$/);
    const help = run(['--help']).stdout;
    const commands = help.split('\nCommands:\n')[1].split('\n\n')[0].split('\n').map((l) => /^ {2}([a-z][\w-]*)\s/.exec(l)?.[1]).filter(Boolean) as string[];
    assert.ok(commands.length >= 10, commands.join());
    for (const c of commands.filter((x) => x !== 'help')) {
      const r = run([c, '--help']);
      assert.equal(r.status, 0, `${c} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^i2i ${c}\\b`), `${c} --help prints its usage first`);
    }
  });

  it('a mistyped command or flag gets a suggestion', () => {
    const cmd = run(['trian']);
    assert.equal(cmd.status, 2);
    assert.match(cmd.stderr, /Unknown command "trian"\. Did you mean "train"\?/);
    const flag = run(['serve', '--bundel', 'x']);
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /Did you mean --bundle\?/);
  });
});
