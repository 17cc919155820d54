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
});
