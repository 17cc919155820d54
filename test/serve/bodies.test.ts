/**
 * Hostile bodies on every route that reads one (/segment raw and multipart, /videos raw, multipart
 * and JSON, /v1/model/reload JSON), sent over raw sockets to `i2i serve` started as a user starts it:
 * the package's bin. Server A has default flags (only --port 0). Server B turns on what defaults
 * keep off (admin tokens, --video-dir, --bundle-root) so that the JSON bodies are read at all, and
 * passes short timeouts so stalls are answered quickly. Every answer is a JSON {error, hint} with a
 * 4xx (or a closed socket when the client itself went away); the servers stay up, log no unexpected
 * error and still segment a frame.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { ffmpegPath } from '../../core/ffmpeg';
import { tmpDir } from '../helpers';
import { makeBundle } from './fixture';

const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const ADMIN = 'admin-secret-token';

interface Served { cli: ChildProcess; url: string; out: () => string; err: () => string }

async function serve(bundle: string, args: string[]): Promise<Served> {
  const cli = spawn(process.execPath, [BIN, 'serve', '--bundle', bundle, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  cli.stdout!.on('data', (d) => { out += d; });
  cli.stderr!.on('data', (d) => { err += d; });
  for (const t0 = Date.now(); !/listening on (\S+)/.test(err) && cli.exitCode === null && Date.now() - t0 < 90000;) await new Promise((r) => setTimeout(r, 50));
  const url = /listening on (\S+)/.exec(err)?.[1];
  assert.ok(url, `the server did not start: ${err}`);
  return { cli, url, out: () => out, err: () => err };
}

interface Answer { status: number; head: string; body: string; ms: number }
type Ending = 'wait' | 'half-close' | 'destroy';

/**
 * One request on a fresh connection: the head, then `body` (or chunks from `stream` until the server
 * answers), then the connection is left open ('wait'), half-closed, or destroyed. Resolves with the
 * answer (status 0 when the server closed without one).
 */
function request(url: string, o: { method?: string; path: string; headers?: Record<string, string | number>; body?: Buffer | string; then?: Ending; stream?: Buffer; maxMs?: number }): Promise<Answer> {
  const u = new URL(url);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    let got = Buffer.alloc(0), done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = got.toString('latin1'), end = text.indexOf('\r\n\r\n');
      const head = end < 0 ? text : text.slice(0, end);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), head, body: end < 0 ? '' : got.subarray(end + 4).toString('utf8'), ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => { if (!done) { done = true; sock.destroy(); reject(new Error(`no answer from ${o.path} within ${o.maxMs ?? 15000} ms`)); } }, o.maxMs ?? 15000);
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const text = got.toString('latin1'), end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1];
      // A whole answer: no need to wait for the server to close (a keep-alive answer never would).
      if (length !== undefined && got.length >= end + 4 + Number(length)) finish();
    });
    sock.on('error', () => undefined);
    sock.on('close', finish);
    const headers = { Host: 'x', ...o.headers };
    sock.write(`${o.method ?? 'POST'} ${o.path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
    if (o.body !== undefined) sock.write(o.body);
    if (o.stream) {
      // Chunked, until the server answers or closes (each chunk written only once the last drained).
      const chunk = Buffer.concat([Buffer.from(`${o.stream.length.toString(16)}\r\n`), o.stream, Buffer.from('\r\n')]);
      const pump = () => { while (!done && !sock.destroyed && got.length === 0) if (!sock.write(chunk)) return void sock.once('drain', pump); };
      pump();
    }
    if (o.then === 'half-close') sock.end();
    if (o.then === 'destroy') setTimeout(() => { if (!done) { done = true; clearTimeout(timer); sock.destroy(); resolve({ status: 0, head: '', body: '', ms: performance.now() - t0 }); } }, 150);
  });
}

/** A 4xx JSON {error, hint} whose error matches `msg`. */
function refused(a: Answer, status: number, msg: RegExp, what: string): void {
  assert.equal(a.status, status, `${what}: ${a.head}\n${a.body}`);
  const j = JSON.parse(a.body) as { error?: unknown; hint?: unknown };
  assert.ok(typeof j.error === 'string' && typeof j.hint === 'string' && j.hint.length > 0, `${what}: {error, hint}: ${a.body}`);
  assert.match(j.error, msg, what);
}

/** The client went away (or Node's own parser refused the broken request): no answer, or a 400. */
function goneOr400(a: Answer, what: string): void {
  assert.ok(a.status === 0 || a.status === 400, `${what}: ${a.status} ${a.head}`);
}

function closes(a: Answer, what: string): void {
  assert.match(a.head, /\r\nconnection: close/i, `${what}: a refused body is not read, its connection closes: ${a.head}`);
}

/** A PNG with the given IHDR size (and one row of real pixel data), CRCs correct. */
function pngWithSize(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 2;  // 8-bit RGB
  const rows = Buffer.alloc(Math.max(1, height) * (1 + 3 * Math.max(1, width)));
  return Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

const multipart = (boundary: string, parts: { name: string; filename?: string; type?: string; data: Buffer | string }[], close = true) => Buffer.concat([
  ...parts.map((p) => Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`), Buffer.from(p.data), Buffer.from('\r\n')])),
  Buffer.from(close ? `--${boundary}--\r\n` : ''),
]);

describe('serve: hostile bodies on every route that reads one, through the bin (i2i serve)', function () {
  this.timeout(240000);
  const root = tmpDir();
  const bundle = path.join(root, 'bundle'), videoDir = path.join(root, 'videos'), store = path.join(root, 'store');
  const adminFile = path.join(root, 'admin-tokens');
  let A: Served, B: Served, png: Buffer, clip: Buffer;
  before(async () => {
    fs.mkdirSync(videoDir);
    fs.writeFileSync(adminFile, `${ADMIN}\n`);
    execFileSync(ffmpegPath(), ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc=s=64x32:r=5', '-t', '1', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', path.join(videoDir, 'clip.mp4')]);
    clip = fs.readFileSync(path.join(videoDir, 'clip.mp4'));
    await makeBundle(bundle, { height: 32, width: 64 });
    const p = Buffer.alloc(64 * 32 * 3);
    for (let i = 0; i < 64 * 32; i++) p[i * 3 + (i % 64 < 32 ? 0 : 2)] = 255;
    png = await sharp(p, { raw: { width: 64, height: 32, channels: 3 } }).png().toBuffer();
    [A, B] = await Promise.all([
      serve(bundle, []),
      serve(bundle, ['--workers', '1', '--timeout-ms', '400', '--upload-timeout-ms', '600', '--admin-token-file', adminFile, '--video-dir', videoDir, '--bundle-root', root, '--video-store', store]),
    ]);
  });
  after(() => { A?.cli.kill('SIGKILL'); B?.cli.kill('SIGKILL'); });

  /** Still up: /healthz 200 and a valid frame segmented. */
  const serving = async (s: Served) => {
    assert.equal(s.cli.exitCode, null, `the server exited: ${s.err()}`);
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    const r = await fetch(`${s.url}/segment`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' } });
    assert.equal(r.status, 200, await r.text());
  };

  it('POST /segment, raw bodies: wrong or missing types, empty, over --max-bytes (declared or streamed), cut short', async () => {
    const seg = (headers: Record<string, string | number>, body?: Buffer | string, then?: Ending) => request(A.url, { path: '/segment', headers, body, then });
    refused(await seg({ 'Content-Length': 5 }, 'hello'), 415, /no Content-Type/, 'no type');
    refused(await seg({ 'Content-Type': 'text/plain', 'Content-Length': 5 }, 'hello'), 415, /text\/plain/, 'text/plain');
    refused(await seg({ 'Content-Type': 'application/json', 'Content-Length': 2 }, '{}'), 415, /application\/json/, 'JSON to /segment');
    refused(await seg({ 'Content-Type': 'image/png', 'Content-Length': 0 }), 400, /empty/, 'empty');
    const declared = await seg({ 'Content-Type': 'image/png', 'Content-Length': 50 * 2 ** 20 });
    refused(declared, 413, /limit of 10485760 bytes/, 'Content-Length over the limit, answered before any byte is sent');
    closes(declared, 'Content-Length over the limit');
    const streamed = await request(A.url, { path: '/segment', headers: { 'Content-Type': 'image/png', 'Transfer-Encoding': 'chunked' }, stream: Buffer.alloc(256 * 1024, 7) });
    refused(streamed, 413, /limit of 10485760 bytes/, 'a chunked body that grows past the limit');
    closes(streamed, 'a chunked body that grows past the limit');
    // Content-Length larger than what is sent, then the client ends its side / drops the connection.
    goneOr400(await seg({ 'Content-Type': 'image/png', 'Content-Length': png.length + 5000 }, png, 'half-close'), 'Content-Length larger than sent, half-closed');
    goneOr400(await seg({ 'Content-Type': 'image/png', 'Content-Length': png.length + 5000 }, png, 'destroy'), 'Content-Length larger than sent, socket closed');
    await serving(A);
  });

  it('POST /segment: a PNG whose IHDR says width 0 or height 0 is refused with 400', async () => {
    for (const [w, h] of [[0, 32], [64, 0], [0, 0]]) {
      const r = await request(A.url, { path: '/segment', headers: { 'Content-Type': 'image/png', 'Content-Length': pngWithSize(w, h).length }, body: pngWithSize(w, h) });
      refused(r, 400, /truncated or corrupt|size/, `PNG ${w}x${h}`);
    }
    // The same bytes through multipart, and the check is not a fluke of the builder: 64x32 passes.
    const form = multipart('b0', [{ name: 'image', filename: 'f.png', type: 'image/png', data: pngWithSize(0, 32) }]);
    refused(await request(A.url, { path: '/segment', headers: { 'Content-Type': 'multipart/form-data; boundary=b0', 'Content-Length': form.length }, body: form }), 400, /truncated or corrupt|size/, 'multipart PNG 0x32');
    const ok = pngWithSize(64, 32);
    assert.equal((await request(A.url, { path: '/segment', headers: { 'Content-Type': 'image/png', 'Content-Length': ok.length }, body: ok })).status, 200);
  });

  it('POST /segment, multipart: no boundary, no "image" field, cut inside the image part or another part, too large, cut short', async () => {
    const mp = (body: Buffer | string, boundary = 'bnd', then?: Ending, extra = 0) =>
      request(A.url, { path: '/segment', headers: { 'Content-Type': `multipart/form-data${boundary ? `; boundary=${boundary}` : ''}`, 'Content-Length': Buffer.byteLength(body) + extra }, body, then });
    refused(await mp('x', ''), 400, /multipart/, 'no boundary');
    refused(await mp(multipart('bnd', [{ name: 'frame', data: 'x' }])), 400, /"image"/, 'no image field');
    const inImage = multipart('bnd', [{ name: 'image', filename: 'f.png', type: 'image/png', data: png.subarray(0, 100) }], false).subarray(0, -2);
    refused(await mp(inImage), 400, /multipart body is malformed/, 'cut inside the image part');
    const inNote = Buffer.from('--bnd\r\nContent-Disposition: form-data; name="note"; filename="n.txt"\r\nContent-Type: text/plain\r\n\r\nthis part never ends');
    refused(await mp(inNote), 400, /multipart body is malformed/, 'cut inside another part');
    const head = '--bnd\r\nContent-Disposition: form-data; name="image"; filename="f.png"\r\nContent-Type: image/png\r\n\r\n';
    const big = await request(A.url, { path: '/segment', headers: { 'Content-Type': 'multipart/form-data; boundary=bnd', 'Transfer-Encoding': 'chunked' }, body: `${head.length.toString(16)}\r\n${head}\r\n`, stream: Buffer.alloc(256 * 1024, 97) });
    refused(big, 413, /limit/, 'a multipart body past the limit');
    goneOr400(await mp(inImage, 'bnd', 'half-close', 5000), 'multipart, Content-Length larger than sent, half-closed');
    goneOr400(await mp(inImage, 'bnd', 'destroy', 5000), 'multipart, Content-Length larger than sent, socket closed');
    await serving(A);
  });

  it('POST /videos, raw and multipart: wrong types, empty, over --max-video-bytes, no "video" field, cut inside the video part or another part, cut short', async () => {
    for (const s of [A, B]) await hostileVideos(s);
  });
  const hostileVideos = async (S: Served) => {
    const vid = (headers: Record<string, string | number>, body?: Buffer | string, then?: Ending) => request(S.url, { path: '/videos', headers, body, then });
    refused(await vid({ 'Content-Length': 5 }, 'hello'), 415, /no Content-Type/, 'no type');
    refused(await vid({ 'Content-Type': 'text/plain', 'Content-Length': 5 }, 'hello'), 415, /text\/plain/, 'text/plain');
    refused(await vid({ 'Content-Type': 'image/png', 'Content-Length': png.length }, png), 415, /image\/png/, 'an image to /videos');
    refused(await vid({ 'Content-Type': 'video/mp4', 'Content-Length': 0 }), 400, /empty/, 'empty');
    const declared = await vid({ 'Content-Type': 'video/mp4', 'Content-Length': 3 * 2 ** 30 });
    refused(declared, 413, /limit/, 'Content-Length over --max-video-bytes');
    closes(declared, 'Content-Length over --max-video-bytes');
    goneOr400(await vid({ 'Content-Type': 'video/mp4', 'Content-Length': clip.length + 5000 }, clip, 'half-close'), 'raw, Content-Length larger than sent, half-closed');
    goneOr400(await vid({ 'Content-Type': 'video/mp4', 'Content-Length': clip.length + 5000 }, clip, 'destroy'), 'raw, Content-Length larger than sent, socket closed');

    const mp = (body: Buffer | string, boundary = 'vb', then?: Ending, extra = 0) =>
      request(S.url, { path: '/videos', headers: { 'Content-Type': `multipart/form-data${boundary ? `; boundary=${boundary}` : ''}`, 'Content-Length': Buffer.byteLength(body) + extra }, body, then });
    refused(await mp('x', ''), 400, /multipart/, 'no boundary');
    refused(await mp(multipart('vb', [{ name: 'note', data: 'hello' }])), 400, /"video"/, 'no video field');
    const inVideo = multipart('vb', [{ name: 'video', filename: 'a.mp4', type: 'video/mp4', data: clip.subarray(0, 2000) }], false).subarray(0, -2);
    refused(await mp(inVideo), 400, /multipart body is malformed/, 'cut inside the video part');
    const inNote = multipart('vb', [{ name: 'note', filename: 'n.txt', type: 'text/plain', data: 'this part never ends' }], false).subarray(0, -2);
    refused(await mp(inNote), 400, /multipart body is malformed/, 'cut inside a part that is not "video"');
    // The video part complete, then the form cut inside a later part.
    const after = Buffer.concat([multipart('vb', [{ name: 'video', filename: 'a.mp4', type: 'video/mp4', data: clip }], false), Buffer.from('--vb\r\nContent-Disposition: form-data; name="note"\r\n\r\nnever ends')]);
    refused(await mp(after), 400, /multipart body is malformed/, 'cut inside a part after the video');
    goneOr400(await mp(inVideo, 'vb', 'half-close', 5000), 'multipart, Content-Length larger than sent, half-closed');
    goneOr400(await mp(inVideo, 'vb', 'destroy', 5000), 'multipart, Content-Length larger than sent, socket closed');
    await serving(S);
  };

  it('JSON routes with default flags: /videos {"path"} and /v1/model/reload refuse (403) before reading any body, and close its connection', async () => {
    const deep = `{"path": ${'['.repeat(1000)}${']'.repeat(1000)}}`;
    for (const route of ['/videos', '/v1/model/reload']) {
      for (const [what, body, length] of [['malformed', '{"path": ', undefined], ['deep', deep, undefined], ['huge (declared)', '{', 2 ** 30], ['empty', '', undefined]] as const) {
        const r = await request(A.url, { path: route, headers: { 'Content-Type': 'application/json', 'Content-Length': length ?? Buffer.byteLength(body) }, body });
        refused(r, 403, /paths|off on this server/, `${route} ${what}`);
        if (body.length) closes(r, `${route} ${what}`);
      }
    }
    refused(await request(A.url, { path: '/v1/model/rollback', headers: { 'Content-Type': 'application/json', 'Content-Length': 2 }, body: '{}' }), 403, /off on this server/, 'rollback with a body');
    await serving(A);
  });

  it('JSON routes turned on (--video-dir, --admin-token-file): malformed, deep, huge, empty, wrong type, wrong shape, cut short; valid ones work', async () => {
    const auth = { Authorization: `Bearer ${ADMIN}` };
    const json = (route: string, body: string | Buffer, headers: Record<string, string | number> = {}, then?: Ending) =>
      request(B.url, { path: route, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...(route === '/videos' ? {} : auth), ...headers }, body, then });
    const deep = (key: string) => `{"${key}": ${'['.repeat(1000)}"x"${']'.repeat(1000)}}`;
    for (const [route, key, valid] of [['/videos', 'path', 'clip.mp4'], ['/v1/model/reload', 'bundle', 'bundle']] as const) {
      refused(await json(route, `{"${key}": `), 400, /JSON body is malformed/, `${route} malformed`);
      refused(await json(route, Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), 400, /UTF-8|malformed/, `${route} not UTF-8`);
      refused(await json(route, deep(key)), 400, /nested/, `${route} deep`);
      refused(await json(route, '[1, 2]'), 400, new RegExp(`"${key}"`), `${route} not an object`);
      refused(await json(route, JSON.stringify({ [key]: 5 })), 400, new RegExp(`"${key}"`), `${route} wrong shape`);
      const huge = await json(route, '{', { 'Content-Length': 2 ** 30 });
      refused(huge, 413, /JSON body is over/, `${route} huge (declared)`);
      closes(huge, `${route} huge`);
      refused(await request(B.url, { path: route, headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', ...(route === '/videos' ? {} : auth) }, stream: Buffer.alloc(8192, 32) }), 413, /JSON body is over/, `${route} huge (streamed)`);
      refused(await json(route, JSON.stringify({ [key]: valid }), { 'Content-Type': 'text/plain' }), 415, /text\/plain/, `${route} JSON sent as text/plain`);
      refused(await json(route, JSON.stringify({ [key]: valid }), { 'Content-Type': 'application/x-www-form-urlencoded' }), 415, /x-www-form-urlencoded/, `${route} curl -d's default type`);
      goneOr400(await json(route, `{"${key}": "`, { 'Content-Length': 500 }, 'half-close'), `${route} Content-Length larger than sent, half-closed`);
      goneOr400(await json(route, `{"${key}": "`, { 'Content-Length': 500 }, 'destroy'), `${route} Content-Length larger than sent, socket closed`);
    }
    refused(await json('/videos', ''), 400, /empty/, '/videos empty JSON');
    // Refused before the body is read: no admin token, or a wrong one.
    const noToken = await request(B.url, { path: '/v1/model/reload', headers: { 'Content-Type': 'application/json', 'Content-Length': 2 ** 30 }, body: '{' });
    refused(noToken, 401, /admin token/, 'reload without a token');
    closes(noToken, 'reload without a token');
    // Valid bodies still work: a path in --video-dir, and a reload (no body, and a named bundle).
    const v = await json('/videos', JSON.stringify({ path: 'clip.mp4' }));
    assert.equal(v.status, 202, v.body);
    const r0 = await request(B.url, { path: '/v1/model/reload', headers: { ...auth, 'Content-Length': 0 } });
    assert.equal(r0.status, 200, r0.body);
    const r1 = await json('/v1/model/reload', JSON.stringify({ bundle: 'bundle' }));
    assert.equal(r1.status, 200, r1.body);
    await serving(B);
  });

  it('stalled bodies (slow loris) on every body route get 408 {error, hint} by the timeout (--timeout-ms 400, --upload-timeout-ms 600), connection closed', async () => {
    const auth = { Authorization: `Bearer ${ADMIN}` };
    const part = (field: string) => `--s\r\nContent-Disposition: form-data; name="${field}"; filename="f"\r\nContent-Type: application/octet-stream\r\n\r\nabc`;
    const cases: [string, string, Record<string, string | number>, string][] = [
      ['/segment raw', '/segment', { 'Content-Type': 'image/png', 'Content-Length': 5000 }, 'abc'],
      ['/segment multipart', '/segment', { 'Content-Type': 'multipart/form-data; boundary=s', 'Content-Length': 5000 }, part('image')],
      ['/videos raw', '/videos', { 'Content-Type': 'video/mp4', 'Content-Length': 5000 }, 'abc'],
      ['/videos multipart', '/videos', { 'Content-Type': 'multipart/form-data; boundary=s', 'Content-Length': 5000 }, part('video')],
      ['/videos JSON', '/videos', { 'Content-Type': 'application/json', 'Content-Length': 500 }, '{"path": '],
      ['/v1/model/reload JSON', '/v1/model/reload', { 'Content-Type': 'application/json', 'Content-Length': 500, ...auth }, '{"bundle": '],
    ];
    const answers = await Promise.all(cases.map(([, p, headers, body]) => request(B.url, { path: p, headers, body, then: 'wait', maxMs: 8000 })));
    answers.forEach((a, i) => {
      refused(a, 408, /did not arrive within \d+ ms/, cases[i][0]);
      closes(a, cases[i][0]);
      assert.ok(a.ms < 3000, `${cases[i][0]}: answered after ${a.ms.toFixed(0)} ms`);
    });
    await serving(B);
  });

  it('afterwards: both servers serve, logged no unexpected (5xx) error, and left no upload behind', async () => {
    await serving(A);
    await serving(B);
    for (const s of [A, B]) {
      const lines = s.out().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; status?: number });
      assert.deepEqual(lines.filter((l) => l.msg === 'unexpected error'), [], 'no unexpected error');
      const bad = lines.filter((l) => l.msg === 'request' && l.status! >= 500 && l.status !== 503 && l.status !== 504);
      assert.deepEqual(bad, [], 'no 5xx but 503/504');
    }
    const uploads = path.join(store, 'uploads');
    assert.deepEqual(fs.existsSync(uploads) ? fs.readdirSync(uploads) : [], [], 'no upload file left behind');
  });
});
