/**
 * Signals as a terminal and a container send them: Ctrl-C reaches the whole foreground process
 * group, so ffmpeg children must not stop with it (they live in groups of their own and are
 * stopped by the command, in order); a SIGKILLed command leaves no ffmpeg behind.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg';
import { alive, tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const frames = (file: string) => Number(JSON.parse(execFileSync(require('@ffprobe-installer/ffprobe').path, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_streams', '-of', 'json', file]).toString()).streams[0].nb_read_frames);
/** ffmpeg processes among a process's children. */
const ffmpegKids = (pid: number) => {
  let kids: number[] = [];
  try { kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; }
  return kids.filter((k) => { try { return fs.readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'ffmpeg'; } catch { return false; } });
};
/** Not running: gone, or a zombie waiting for init to reap it. */
const running = (pid: number) => { try { return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; } };

describe('streams: signals to the whole process group (Ctrl-C) and SIGKILL', function () {
  this.timeout(180000);
  const root = tmpDir();
  const bundle = path.join(root, 'bundle');
  const src = path.join(root, 'long.mp4');
  before(async () => {
    await makeBundle(bundle, { height: 32, width: 64 });
    ff(['-f', 'lavfi', '-i', 'testsrc=s=64x32:r=25', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=22050', '-t', '40', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', src]);
  });

  /** segment-video in a process group of its own (as a shell runs a foreground job), once it has segmented some frames. */
  async function started(out: string): Promise<{ cli: ChildProcess; output: () => string; exited: Promise<number | null>; ffmpeg: number[] }> {
    const cli = spawn(process.execPath, [BIN, 'segment-video', src, '--bundle', bundle, '--out', out, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let text = '';
    cli.stdout!.on('data', (d) => { text += d; });
    cli.stderr!.on('data', (d) => { text += d; });
    const exited = new Promise<number | null>((r) => cli.on('exit', (c) => r(c)));
    for (const t0 = Date.now(); !/\b[1-9]\d*\/1000 frames/.test(text);) {
      if (Date.now() - t0 > 60000 || cli.exitCode !== null) throw new Error(`no progress: ${text}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const ffmpeg = ffmpegKids(cli.pid!);
    assert.ok(ffmpeg.length >= 2, `a decoder and an encoder run: ${ffmpeg}`);
    return { cli, output: () => text, exited, ffmpeg };
  }

  it('Ctrl-C (SIGINT to the group): exit 130, no "corrupt" report, the partial output plays with every frame the command reports, no ffmpeg left', async () => {
    const out = path.join(root, 'int.mp4');
    const { cli, output, exited, ffmpeg } = await started(out);
    process.kill(-cli.pid!, 'SIGINT');
    assert.equal(await exited, 130, output());
    assert.doesNotMatch(output(), /corrupt|truncated|damaged|could not|stopped decoding/i);
    const kept = Number(/\((\d+) frames kept in/.exec(output())?.[1]);
    assert.ok(kept > 0 && kept < 1000, output());
    assert.equal(frames(out), kept, 'every frame the command kept is in the file');
    assert.deepEqual(ffmpeg.filter(running), [], 'no ffmpeg outlives the command');
    // The frames in flight were finished, not lost: nothing but the interruption is reported.
    // (Until the engine's inference workers ignore the terminal's SIGINT, as ffmpeg now does, they
    // die with it and this reports "The inference worker stopped (SIGINT)": serve/engine/worker.ts.)
    assert.match(output(), /FAILED .*: stopped \(interrupted\) \(\d+ frames kept/, output());
  });

  it('SIGKILL of the command: its ffmpeg children (own process groups) end on their own within seconds', async () => {
    const { cli, exited, ffmpeg } = await started(path.join(root, 'kill.mp4'));
    process.kill(cli.pid!, 'SIGKILL');
    await exited;
    for (const t0 = Date.now(); ffmpeg.some(running) && Date.now() - t0 < 15000;) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(ffmpeg.filter(running), [], 'no ffmpeg outlives a killed command');
    // Its inference workers go too (the IPC channel closes); clean up whatever is left in the group.
    try { process.kill(-cli.pid!, 'SIGKILL'); } catch { /* the group is empty */ }
    void alive;
  });
});
