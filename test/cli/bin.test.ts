/**
 * Every command through the package's own bin, as a user's shell runs it (`npx i2i ...`): each one
 * loads its modules and answers a bad call with a UserError (exit 2), never a loader failure.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120000 });
/** A port nothing listens on (bound, then closed). */
const closedPort = () => new Promise<number>((resolve) => { const srv = net.createServer().listen(0, '127.0.0.1', () => { const p = (srv.address() as net.AddressInfo).port; srv.close(() => resolve(p)); }); });

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

  describe('commands that used to fail late or silently', () => {
    const root = tmpDir();
    const bundle = path.join(root, 'bundle'), clip = path.join(root, 'drive.mp4');
    before(async () => {
      await makeBundle(bundle, { height: 32, width: 64 });
      // 4 s with audio: segmenting every frame, then the audio mux, is what a late refusal used to cost.
      execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc=s=160x90:r=25', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=22050',
        '-t', '4', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clip]);
    });

    it('segment-video --out without an extension, or with one it does not write, fails at once naming the accepted ones (no engine, no frame, no file)', () => {
      for (const name of ['drive-seg', 'drive-seg.avi']) {
        const out = path.join(root, name);
        const t0 = Date.now();
        const r = run(['segment-video', clip, '--bundle', bundle, '--out', out, '--workers', '1']);
        const ms = Date.now() - t0;
        assert.equal(r.status, 2, `${name}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, name.endsWith('.avi') ? /ends in \.avi, which segment-video does not write/ : /has no extension/);
        assert.match(r.stderr, /\.mp4, \.m4v, \.mov/, 'names the accepted extensions');
        assert.doesNotMatch(r.stdout + r.stderr, /\d+\/\d+ frames|FAILED/, 'refused before any frame was segmented');
        assert.deepEqual(fs.readdirSync(root).filter((f) => f.startsWith('drive-seg')), [], 'nothing written');
        assert.ok(ms < 15000, `answered in ${ms} ms`);
      }
      // The same file into an existing directory: a file is needed there too.
      const r = run(['segment-video', clip, '--bundle', bundle, '--out', root]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /is a directory; a single video is written to a file/);
    });

    it('i2i worker with no Redis answering says so on stderr within 2 s (URL without its password) and keeps retrying', async () => {
      const port = await closedPort();
      const w = spawn(process.execPath, [BIN, 'worker', '--bundle', bundle, '--redis', `redis://:hunter2@127.0.0.1:${port}`, '--queue', 'never-used', '--store', path.join(root, 'store')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      w.stderr!.on('data', (d) => { err += d; });
      w.stdout!.resume();
      const exited = new Promise<number | null>((r) => w.once('exit', (c) => r(c)));
      try {
        const t0 = Date.now();
        // Bounded: the node process itself takes up to a second or two to load its modules.
        for (; !/cannot reach Redis/.test(err) && w.exitCode === null && Date.now() - t0 < 8000;) await new Promise((r) => setTimeout(r, 50));
        const ms = Date.now() - t0;
        assert.match(err, new RegExp(`i2i worker: cannot reach Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\).*retrying, giving up after 60 s`), err);
        assert.ok(ms < 2000 + 3000, `said so ${ms} ms after start (module loading included)`);
        assert.doesNotMatch(err, /hunter2/, 'no password in the output');
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(w.exitCode, null, 'still retrying');
      } finally {
        w.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
        if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
      }
    });

    it('i2i worker --redis-wait N gives up after N seconds with a clear error, exit 2', async () => {
      const port = await closedPort();
      const t0 = Date.now();
      const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
        const w = spawn(process.execPath, [BIN, 'worker', '--bundle', bundle, '--redis', `redis://127.0.0.1:${port}`, '--queue', 'never-used', '--store', path.join(root, 'store'), '--redis-wait', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        w.stderr!.on('data', (d) => { err += d; });
        const kill = setTimeout(() => w.kill('SIGKILL'), 30000);
        w.once('exit', (code) => { clearTimeout(kill); resolve({ code, err }); });
      });
      const secs = (Date.now() - t0) / 1000;
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, new RegExp(`i2i: Cannot reach Redis at redis://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED.* \\(waited 2 s\\)\\. Start Redis`), r.err);
      assert.ok(secs >= 2 && secs < 12, `gave up after ${secs} s`);
    });
  });
});
