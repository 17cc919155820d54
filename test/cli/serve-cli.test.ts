/**
 * `i2i serve` started as a user starts it: the package's bin with default flags (only --port 0, so
 * that tests never collide). Valid videos are accepted; hostile bodies get a 4xx and the process
 * stays up.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ffmpegPath } from '../../core/ffmpeg';
import { tmpDir } from '../helpers';
import { makeBundle } from '../serve/fixture';

const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const ff = (args: string[]) => execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);

/** Sends raw bytes on a fresh connection and returns what the server answered (status line parsed). */
function rawRequest(url: string, head: string, body: Buffer, opts: { endEarly?: boolean } = {}): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    let got = '';
    const done = () => { sock.destroy(); resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0), text: got }); };
    sock.on('data', (d) => {
      got += d;
      // A whole answer: a keep-alive connection is not closed by the server, so do not wait for it.
      const end = got.indexOf('\r\n\r\n'), length = /\r\ncontent-length: *(\d+)/i.exec(got.slice(0, end))?.[1];
      if (end >= 0 && length !== undefined && Buffer.byteLength(got.slice(end + 4)) >= Number(length)) done();
    });
    sock.on('error', () => undefined);
    sock.on('close', done);
    sock.setTimeout(20000, () => { sock.destroy(); reject(new Error('no answer in 20 s')); });
    sock.write(head);
    sock.write(body);
    if (opts.endEarly) setTimeout(() => sock.destroy(), 200);
  });
}

describe('cli: i2i serve with default flags (the bin, over real HTTP)', function () {
  this.timeout(180000);
  const root = tmpDir();
  const bundle = path.join(root, 'bundle'), clip = path.join(root, 'drive.mp4');
  let cli: ChildProcess, url = '', err = '';
  before(async () => {
    ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=22050', '-t', '2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', clip]);
    await makeBundle(bundle, { height: 32, width: 64 });
    cli = spawn(process.execPath, [BIN, 'serve', '--bundle', bundle, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    cli.stderr!.on('data', (d) => { err += d; });
    for (const t0 = Date.now(); !/listening on (\S+)/.test(err) && Date.now() - t0 < 90000;) await new Promise((r) => setTimeout(r, 50));
    url = /listening on (\S+)/.exec(err)?.[1] ?? '';
    assert.ok(url, `the server did not start: ${err}`);
  });
  after(() => { cli?.kill('SIGKILL'); });
  const alive = async () => {
    assert.equal(cli.exitCode, null, `the server exited: ${err}`);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  };

  it('POST /videos: a valid MP4 on an idle server is accepted (202) and finishes', async () => {
    const res = await fetch(`${url}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4', 'X-Filename': 'drive.mp4' }, body: fs.readFileSync(clip) });
    assert.equal(res.status, 202, await res.clone().text());
    const { id } = await res.json() as { id: string };
    let job: { state: string; frames: { done: number; total: number } } | undefined;
    for (const t0 = Date.now(); Date.now() - t0 < 120000; await new Promise((r) => setTimeout(r, 200))) {
      job = await (await fetch(`${url}/videos/${id}`)).json() as typeof job;
      if (job!.state !== 'queued' && job!.state !== 'running') break;
    }
    assert.equal(job?.state, 'done', JSON.stringify(job));
    assert.deepEqual(job!.frames, { done: 20, total: 20 });
  });

  it('POST /videos: a multipart body that ends inside a part that is not "video" gets 400, and the server keeps serving', async () => {
    const boundary = 'XyZ123';
    const body = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"; filename="note.txt"\r\nContent-Type: text/plain\r\n\r\nhello, this part never ends`);
    const r = await rawRequest(url, `POST /videos HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n`, body);
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /multipart body is malformed/);
    await alive();
  });

  it('POST /videos: the same cut inside the "video" part, and a client that hangs up mid-body: 400 or a closed socket, never a crash', async () => {
    const boundary = 'XyZ124';
    const body = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\nContent-Type: video/mp4\r\n\r\n`), fs.readFileSync(clip).subarray(0, 2000)]);
    const cut = await rawRequest(url, `POST /videos HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n`, body);
    assert.equal(cut.status, 400, cut.text);
    await rawRequest(url, `POST /videos HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length + 100000}\r\n\r\n`, body, { endEarly: true });
    await rawRequest(url, `POST /segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length + 100000}\r\n\r\n`, body, { endEarly: true });
    await alive();
  });

  it('every route that reads a body answers hostile bodies with a 4xx and the server keeps serving', async () => {
    // Lazily, one at a time: each case is sent when the loop reaches it.
    const post = (route: string, body: Buffer | string, type?: string) => () =>
      fetch(`${url}${route}`, { method: 'POST', body, headers: type ? { 'Content-Type': type } : {} }).then(async (r) => ({ status: r.status, text: await r.text() }));
    const huge = Buffer.alloc(33); huge.write('89504e470d0a1a0a0000000d49484452', 'hex'); huge.writeUInt32BE(100000, 16); huge.writeUInt32BE(100000, 20);
    const cases: [string, () => Promise<{ status: number; text: string }>, number][] = [
      ['/segment empty', post('/segment', Buffer.alloc(0), 'image/png'), 400],
      ['/segment garbage bytes as a PNG', post('/segment', Buffer.from('not a png at all'), 'image/png'), 415],
      ['/segment truncated PNG', post('/segment', huge.subarray(0, 20), 'image/png'), 400],
      ['/segment text/plain', post('/segment', 'hello', 'text/plain'), 415],
      ['/segment header bomb (100000x100000 PNG header)', post('/segment', huge, 'image/png'), 413],
      ['/segment multipart without boundary', post('/segment', 'x', 'multipart/form-data'), 400],
      ['/segment bad format', post('/segment?format=../../x', 'x', 'image/png'), 400],
      // Without --video-dir (the default) JSON paths are refused before the body is read.
      ['/videos malformed JSON', post('/videos', '{"path": ', 'application/json'), 403],
      ['/videos JSON path', post('/videos', JSON.stringify({ path: '../../etc/passwd' }), 'application/json'), 403],
      ['/videos a large JSON body', post('/videos', JSON.stringify({ path: 'x'.repeat(100000) }), 'application/json'), 403],
      ['/videos text/plain', post('/videos', 'x', 'text/plain'), 415],
      ['/videos not a video', post('/videos', Buffer.from('this is not a video'), 'video/mp4'), 400],
      // Admin routes check the token before reading a body: no --admin-token-file, no JSON parsed.
      ['/v1/model/reload malformed JSON', post('/v1/model/reload', '{', 'application/json'), 403],
      ['/v1/model/reload without --admin-token-file', post('/v1/model/reload', '{}', 'application/json'), 403],
      ['/v1/model/rollback without --admin-token-file', post('/v1/model/rollback', ''), 403],
    ];
    for (const [name, send, want] of cases) {
      const r = await send();
      assert.equal(r.status, want, `${name}: ${r.text}`);
      assert.match(r.text, /"error"/, `${name}: a JSON error body`);
    }
    await alive();
  });

  it('--video-store-max-bytes: finished jobs make room for a new video; one that cannot fit gets 503 naming the flag, and the server keeps serving', async () => {
    const size = fs.statSync(clip).size;
    // Room for exactly one video's reservation (3x its size) in an empty store: the second must evict the first.
    const other = spawn(process.execPath, [BIN, 'serve', '--bundle', bundle, '--port', '0', '--workers', '1', '--video-store-max-bytes', String(3 * size + 1)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    other.stderr!.on('data', (d) => { log += d; });
    try {
      for (const t0 = Date.now(); !/listening on (\S+)/.test(log) && Date.now() - t0 < 90000;) await new Promise((r) => setTimeout(r, 50));
      const u = /listening on (\S+)/.exec(log)![1];
      const post = () => fetch(`${u}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(clip) });
      const first = await (await post()).json() as { id: string };
      for (let st = ''; st !== 'done'; await new Promise((r) => setTimeout(r, 100))) {
        st = (await (await fetch(`${u}/videos/${first.id}`)).json() as { state: string }).state;
        assert.ok(st !== 'failed');
      }
      const second = await post();
      assert.equal(second.status, 202, await second.clone().text());
      assert.equal((await fetch(`${u}/videos/${first.id}`)).status, 404, 'the finished job made room');
      // A longer clip needs more than the bound even in an empty store: refused, whatever else is there.
      const long = path.join(root, 'long.mp4');
      ff(['-f', 'lavfi', '-i', 'testsrc=s=160x90:r=10', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=22050', '-t', '8', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', long]);
      assert.ok(fs.statSync(long).size > size + 1);
      const third = await fetch(`${u}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(long) });
      assert.equal(third.status, 503);
      assert.ok(third.headers.get('retry-after'));
      const body = await third.json() as { error: string; hint: string };
      assert.match(body.error, /video store holds .*bound is/);
      assert.match(body.hint, /--video-store-max-bytes/);
      assert.equal((await fetch(`${u}/healthz`)).status, 200);
    } finally { other.kill('SIGKILL'); }
  });

  it('--max-video-pixels refuses a clip whose frames are larger (400 naming the limit), as given on the command line', async () => {
    const other = spawn(process.execPath, [BIN, 'serve', '--bundle', bundle, '--port', '0', '--workers', '1', '--max-video-pixels', '1000'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    other.stderr!.on('data', (d) => { log += d; });
    try {
      for (const t0 = Date.now(); !/listening on (\S+)/.test(log) && Date.now() - t0 < 90000;) await new Promise((r) => setTimeout(r, 50));
      const u = /listening on (\S+)/.exec(log)![1];
      const r = await fetch(`${u}/videos`, { method: 'POST', headers: { 'Content-Type': 'video/mp4' }, body: fs.readFileSync(clip) });
      assert.equal(r.status, 400);
      assert.match((await r.json() as { error: string }).error, /160x90|14400/);
    } finally { other.kill('SIGKILL'); }
  });
});
