/**
 * Benchmark (not a test): model reloads under load, `npm run bench:reload`.
 * `i2i serve --bundle <symlink>` (the package's bin, default flags but a free port and what the
 * reloads need) serves bundle a; an open-loop generator POSTs /segment at the sustainable rate (70%
 * of what a short closed-loop probe measured) while the model is reloaded twice: at 1/3 of the run
 * the symlink is switched to bundle b and the server gets SIGHUP; at 2/3 an admin POSTs
 * /v1/model/reload {"bundle": "c"} (--admin-token-file, --bundle-root). Every response's status,
 * X-Model-Version and latency is recorded; it prints the status counts, whether each response came
 * from the old or the new model of its reload window, each reload's switch time, and p50/p99/max
 * latency in 5 s windows around each reload against the rest of the run, as markdown.
 * Exit code 1 if a response was not 200 or named a version outside its window.
 *
 * The bundles: the small dilated DenseNet of i2i synth (source-only) after 10, 20 and 30 training
 * steps, each converted to int8 TFLite at 256x512 (bench:serve's small size): the same graph, so
 * any latency change is the reload's, and three sha256s, so every version is told apart.
 *
 *   npm run bench:reload -- [--seconds 60] [--rate R] [--probe-seconds 5] [--out DIR]
 *   --out DIR keeps the data and bundles there (reused by the next run); by default they are built
 *   in a temporary folder that is removed at exit, as are the symlink and token file always.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { ROOT, runI2i } from './run-i2i';

const { values } = parseArgs({ options: {
  seconds: { type: 'string', default: '60' }, rate: { type: 'string' }, 'probe-seconds': { type: 'string', default: '5' }, out: { type: 'string' },
} });
const SECONDS = Number(values.seconds), PROBE = Number(values['probe-seconds']);
if (!(SECONDS >= 3) || !(PROBE > 0) || (values.rate !== undefined && !(Number(values.rate) > 0))) throw new Error('--seconds must be >= 3, --probe-seconds and --rate positive numbers');
const BIN = path.join(ROOT, 'bin', 'i2i.js');
const log = (l: string) => process.stderr.write(`[bench:reload] ${l}\n`);
const WINDOW = 5000;

// ---- cleanup: the server and the temporary folder go whatever happens (error, Ctrl-C, exit).
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'i2i-bench-reload-'));
let server: ChildProcess | undefined;
const cleanupSync = () => {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');  // its workers exit with its IPC channel
  fs.rmSync(scratch, { recursive: true, force: true });
};
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { log(`${sig}: stopping`); process.exit(130); });

/** Stops the server as an operator would (SIGTERM: drain), SIGKILL if it does not exit in 20 s. */
async function stopServer(): Promise<void> {
  const s = server;
  if (!s || s.exitCode !== null || s.signalCode !== null) return;
  const exited = new Promise((r) => s.once('exit', r));
  s.kill('SIGTERM');
  const t = setTimeout(() => s.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(t);
}

interface Bundles { dir: string; names: string[]; versions: string[]; body: Buffer }

/** Data, a run at 10/20/30 steps and its three int8 bundles a, b, c (built through the bin, reused under --out). */
async function buildBundles(work: string): Promise<Bundles> {
  const data = path.join(work, 'data'), run = path.join(work, 'run'), dir = path.join(work, 'bundles');
  const src = path.join(data, 'source'), tgt = path.join(data, 'target'), req = path.join(data, 'requests');
  const names = ['a', 'b', 'c'];
  if (!names.every((n) => fs.existsSync(path.join(dir, n, 'manifest.json')))) {
    log(`building three bundles in ${work} (synthetic scenes, 30 training steps, 3 converts: about two minutes)`);
    if (!fs.existsSync(req)) {
      await runI2i(['synth', '--out', src, '--domain', 'source', '--count', '16', '--size', '256x512', '--seed', '1']);
      await runI2i(['synth', '--out', tgt, '--domain', 'target', '--count', '16', '--size', '256x512', '--seed', '2']);
      await runI2i(['synth', '--out', req, '--domain', 'target', '--count', '1', '--size', '512x1024', '--seed', '5']);
    }
    fs.rmSync(run, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
    for (const [i, name] of names.entries()) {
      const steps = String(10 * (i + 1));
      await runI2i(i === 0 ? ['train', '--task', 'synth-drive', '--method', 'source-only', '--out', run, '--steps', steps, '--source-root', src, '--target-root', tgt]
        : ['train', '--out', run, '--resume', '--steps', steps]);
      // int8 only: the server's default choice is then the same kind of file in every version.
      await runI2i(['convert', '--checkpoint', run, '--out', path.join(dir, name), '--input', '256x512', '--precision', 'int8',
        '--calibrate', path.join(tgt, 'leftImg8bit', 'train'), '--calibration-frames', '8', '--check-frames', '2']);
      log(`bundle ${name}: ${steps} steps`);
    }
  }
  // The version the server names: the served file's sha256, first 12 hex digits (serve/engine).
  const versions = names.map((n) => {
    const m = JSON.parse(fs.readFileSync(path.join(dir, n, 'manifest.json'), 'utf8')) as { models: { format: string; sha256: string }[] };
    return m.models.find((f) => f.format === 'tflite')!.sha256.slice(0, 12);
  });
  if (new Set(versions).size !== 3) throw new Error(`the three bundles share a version (${versions.join(', ')}); delete ${work} and run again`);
  const frame = fs.readdirSync(path.join(req, 'leftImg8bit'), { recursive: true, encoding: 'utf8' }).find((f) => f.endsWith('.png'))!;
  const body = await sharp(path.join(req, 'leftImg8bit', frame)).jpeg({ quality: 90 }).toBuffer();
  return { dir, names, versions, body };
}

/** `i2i serve` as a user starts it; resolves with its URL once it listens with the model loaded. */
async function startServe(bundleLink: string, bundleRoot: string, adminTokenFile: string): Promise<{ url: string; lines: string[]; onLine: (f: (l: string) => void) => void }> {
  const s = spawn(process.execPath, [BIN, 'serve', '--bundle', bundleLink, '--port', '0', '--admin-token-file', adminTokenFile, '--bundle-root', bundleRoot],
    { cwd: scratch, stdio: ['ignore', 'ignore', 'pipe'] });  // stdout is its JSON request log: not read, so not piped
  server = s;
  const lines: string[] = [];
  const listeners: ((l: string) => void)[] = [];
  let buf = '';
  s.stderr!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i); buf = buf.slice(i + 1);
      lines.push(l);
      listeners.forEach((f) => f(l));
    }
  });
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`i2i serve did not start in 120 s:\n${lines.join('\n')}`)), 120_000);
    s.once('exit', (code) => { clearTimeout(t); reject(new Error(`i2i serve exited (${code}):\n${lines.join('\n')}`)); });
    listeners.push((l) => { const m = /listening on (\S+)/.exec(l); if (m) { clearTimeout(t); resolve(m[1]); } });
  });
  return { url, lines, onLine: (f) => listeners.push(f) };
}

interface Sample { sent: number; done: number; status: string; version?: string }

/** POST /segment over keep-alive: status (or error code), X-Model-Version, times relative to t0. */
function segment(agent: http.Agent, url: URL, body: Buffer, t0: number): Promise<Sample> {
  const sent = performance.now() - t0;
  return new Promise((resolve) => {
    const req = http.request({ host: url.hostname, port: url.port, path: '/segment', method: 'POST', agent, headers: { 'Content-Type': 'image/jpeg', 'Content-Length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ sent, done: performance.now() - t0, status: String(res.statusCode), version: res.headers['x-model-version'] as string | undefined }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ sent, done: performance.now() - t0, status: `error:${e.code ?? e.message}` }));
    req.end(body);
  });
}

const pct = (sorted: number[], q: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : NaN;
const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(0)} ms` : '-');

async function main(): Promise<void> {
  const t00 = Date.now();
  const work = values.out ? path.resolve(values.out) : path.join(scratch, 'work');
  fs.mkdirSync(work, { recursive: true });
  const b = await buildBundles(work);
  // The rollout's moving parts: the symlink the server is started with, and the admin token.
  const link = path.join(scratch, 'current');
  fs.symlinkSync(path.join(b.dir, 'a'), link);
  const tokenFile = path.join(scratch, 'admin-token');
  const token = randomBytes(24).toString('hex');
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });

  const srv = await startServe(link, b.dir, tokenFile);
  const url = new URL(srv.url);
  const card = async () => (await (await fetch(`${srv.url}/v1/model`)).json()) as { version: string; model?: { file?: string; why?: string }; previous?: { version?: string } | null };
  const model = await card();
  if (model.version !== b.versions[0]) throw new Error(`the server serves ${model.version}, expected bundle a's ${b.versions[0]}`);
  const workers = ((await (await fetch(`${srv.url}/readyz`)).json()) as { workers: number }).workers;
  log(`i2i serve on ${srv.url}: ${workers} workers, ${model.model?.file} (${model.model?.why}), version ${model.version}`);

  // Warm-up, then the probe: closed loop at 8 connections; the open loop runs at 70% of it.
  for (let i = 0; i < 5; i++) await fetch(`${srv.url}/segment`, { method: 'POST', body: b.body, headers: { 'Content-Type': 'image/jpeg' } }).then((r) => r.arrayBuffer());
  let probe: number | undefined;
  if (values.rate === undefined) {
    const r = await autocannon({ url: `${srv.url}/segment`, method: 'POST', body: b.body, headers: { 'content-type': 'image/jpeg' }, connections: 8, duration: PROBE, timeout: 30 });
    if (r.non2xx + r.errors + r.timeouts > 0) log(`probe: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
    probe = r.requests.total / PROBE;
    log(`probe: ${probe.toFixed(2)} req/s at 8 connections for ${PROBE} s`);
  }
  const rate = values.rate !== undefined ? Number(values.rate) : 0.7 * probe!;
  log(`open loop at ${rate.toFixed(2)} req/s for ${SECONDS} s; reload 1 (symlink + SIGHUP) at ${(SECONDS / 3).toFixed(1)} s, reload 2 (POST /v1/model/reload) at ${(2 * SECONDS / 3).toFixed(1)} s`);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const t0 = performance.now();
  const samples: Promise<Sample>[] = [];
  // The load outlasts the last reload by a window, so that the new model is seen answering even
  // when the reloads take longer than planned (a short --seconds).
  let endMs = SECONDS * 1000, reloadsDone = false;
  const load = (async () => {
    for (let i = 0; ; i++) {
      const due = (i * 1000) / rate;
      if (due > endMs && reloadsDone) break;
      const wait = due - (performance.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      samples.push(segment(agent, url, b.body, t0));
    }
  })();

  interface Reload { how: string; from: string; to: string; signal: number; done: number; answer: string }
  const reloads: Reload[] = [];
  const at = (s: number) => new Promise((r) => setTimeout(r, Math.max(0, s * 1000 - (performance.now() - t0))));
  // Reload 1: a rollout tool switches the symlink atomically (rename over it), then signals.
  await at(SECONDS / 3);
  const next = path.join(scratch, 'current.next');
  fs.symlinkSync(path.join(b.dir, 'b'), next);
  fs.renameSync(next, link);
  const reloaded = new Promise<string>((resolve) => srv.onLine((l) => { if (/i2i serve: reload/.test(l)) resolve(l); }));
  const s1 = performance.now() - t0;
  server!.kill('SIGHUP');
  const line = await Promise.race([reloaded, new Promise<string>((r) => setTimeout(() => r('no answer in 120 s'), 120_000))]);
  reloads.push({ how: 'symlink switch + SIGHUP', from: b.versions[0], to: b.versions[1], signal: s1, done: performance.now() - t0, answer: line });
  // Reload 2: the admin API names a bundle under --bundle-root (after reload 1 is done: one at a time).
  await at((2 * SECONDS) / 3);
  const s2 = performance.now() - t0;
  const r2 = await fetch(`${srv.url}/v1/model/reload`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ bundle: 'c' }) });
  const a2 = `${r2.status} ${r2.headers.get('x-model-version') ?? ''} ${(await r2.text()).slice(0, 200)}`;
  reloads.push({ how: 'POST /v1/model/reload {"bundle":"c"}', from: b.versions[1], to: b.versions[2], signal: s2, done: performance.now() - t0, answer: a2 });
  endMs = Math.max(endMs, reloads[1].done + WINDOW);
  reloadsDone = true;
  await load;
  const loadMs = performance.now() - t0;
  const all = await Promise.all(samples);
  agent.destroy();
  const after = await card();
  await stopServer();

  // ---- analysis
  let failed = false;
  const statuses: Record<string, number> = {};
  for (const s of all) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  const all200 = all.every((s) => s.status === '200');
  if (!all200) failed = true;
  // Which versions a request may get, by when it was sent: before a reload's signal the old one,
  // between the signal and the reload's answer either, after the answer the new one.
  const allowed = (t: number): string[] => {
    let v = [b.versions[0]];
    for (const r of reloads) {
      if (t >= r.done) v = [r.to];
      else if (t >= r.signal) v = [r.from, r.to];
    }
    return v;
  };
  const ok200 = all.filter((s) => s.status === '200');
  const outside = ok200.filter((s) => !s.version || !allowed(s.sent).includes(s.version));
  if (outside.length) failed = true;
  // The model card agrees: c active, b the previous one (what a rollback would go back to).
  const cardOk = after.version === b.versions[2] && after.previous?.version === b.versions[1];
  if (!cardOk) failed = true;
  const byVersion = b.versions.map((v, i) => {
    const mine = ok200.filter((s) => s.version === v);
    return { name: b.names[i], v, n: mine.length, firstSent: Math.min(...mine.map((s) => s.sent)), lastSent: Math.max(...mine.map((s) => s.sent)) };
  });
  const latency = (xs: Sample[]) => { const l = xs.map((s) => s.done - s.sent).sort((x, y) => x - y); return { n: l.length, p50: pct(l, 0.5), p99: pct(l, 0.99), max: l[l.length - 1] ?? NaN }; };
  const inWindow = (s: Sample, from: number, to: number) => s.sent >= from && s.sent < to;
  const nearReload = (s: Sample) => reloads.some((r) => inWindow(s, r.signal - WINDOW, Math.max(r.signal + 2 * WINDOW, r.done)));
  const out: string[] = [];
  const emit = (l = '') => { out.push(l); process.stdout.write(l + '\n'); };

  emit(`Reloads under load: \`i2i serve --bundle <symlink>\` (default flags: ${workers} workers on this ${os.availableParallelism()}-core machine) serving the small DenseNet, int8 TFLite at 256x512,`
    + ` POST /segment of a ${(b.body.length / 1024).toFixed(0)} KiB 512x1024 JPEG, open loop at ${rate.toFixed(1)} req/s`
    + (probe !== undefined ? ` (70% of the ${probe.toFixed(1)} req/s a ${PROBE} s closed-loop probe at 8 connections sustained)` : ' (--rate)')
    + ` for ${(loadMs / 1000).toFixed(1)} s; reload 1 at ${(reloads[0].signal / 1000).toFixed(1)} s, reload 2 at ${(reloads[1].signal / 1000).toFixed(1)} s.`);
  emit();
  emit(`Responses: ${all.length}, by status ${Object.entries(statuses).map(([k, n]) => `${k}: ${n}`).join(', ')}${all200 ? ' (all 200)' : ''};`
    + ` ${outside.length === 0 ? 'every response named the old or the new model of its reload window' : `${outside.length} named a version outside their window (first: sent at ${outside[0].sent.toFixed(0)} ms, ${outside[0].version})`}.`);
  emit(`GET /v1/model afterwards: version ${after.version}, previous ${after.previous?.version ?? 'none'}${cardOk ? ' (c, and b to roll back to)' : ` (expected ${b.versions[2]}, previous ${b.versions[1]})`}.`);
  emit();
  emit('| version | bundle | responses | sent from | to |');
  emit('|---|---|---|---|---|');
  for (const v of byVersion) emit(`| ${v.v} | ${v.name} | ${v.n} | ${v.n ? (v.firstSent / 1000).toFixed(2) + ' s' : '-'} | ${v.n ? (v.lastSent / 1000).toFixed(2) + ' s' : '-'} |`);
  emit();
  emit('| reload | how | reload took | first response from the new model | first request answered by it, sent | last answered by the old, sent |');
  emit('|---|---|---|---|---|---|');
  for (const [i, r] of reloads.entries()) {
    const fresh = ok200.filter((s) => s.version === r.to);
    const firstDone = Math.min(...fresh.map((s) => s.done)), firstSent = Math.min(...fresh.map((s) => s.sent));
    const lastOld = Math.max(...ok200.filter((s) => s.version === r.from).map((s) => s.sent));
    const rel = (t: number) => (Number.isFinite(t) ? `${t - r.signal >= 0 ? '+' : ''}${(t - r.signal).toFixed(0)} ms` : '-');
    emit(`| ${i + 1} | ${r.how} | ${(r.done - r.signal).toFixed(0)} ms | ${rel(firstDone)} | ${rel(firstSent)} | ${rel(lastOld)} |`);
    if (!/reloaded|^200 /.test(r.answer)) { failed = true; emit(`reload ${i + 1} answered: ${r.answer}`); }
  }
  emit();
  emit('Latency of POST /segment by when the request was sent (times from the reload\'s signal or request):');
  emit();
  emit('| window | requests | p50 | p99 | max |');
  emit('|---|---|---|---|---|');
  const row = (name: string, xs: Sample[]) => { const l = latency(xs); emit(`| ${name} | ${l.n} | ${ms(l.p50)} | ${ms(l.p99)} | ${ms(l.max)} |`); };
  row('baseline (more than 5 s before / 10 s after any reload)', ok200.filter((s) => !nearReload(s)));
  for (const [i, r] of reloads.entries()) {
    row(`reload ${i + 1}: -5 to 0 s`, ok200.filter((s) => inWindow(s, r.signal - WINDOW, r.signal)));
    row(`reload ${i + 1}: 0 to +5 s`, ok200.filter((s) => inWindow(s, r.signal, r.signal + WINDOW)));
    row(`reload ${i + 1}: +5 to +10 s`, ok200.filter((s) => inWindow(s, r.signal + WINDOW, r.signal + 2 * WINDOW)));
  }
  row('whole run', ok200);
  emit();
  if (SECONDS < 30) emit(`(a ${SECONDS} s dry run: the windows overlap; the README's figures come from the 60 s default)`);
  emit(`(bench:reload took ${((Date.now() - t00) / 60000).toFixed(1)} min)`);
  if (values.out) fs.writeFileSync(path.join(work, 'table.md'), out.join('\n') + '\n');
  if (failed) { log('FAILED: a response was not 200, named a version outside its window, or a reload failed'); process.exitCode = 1; }
}

main().catch(async (e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
}).finally(async () => {
  await stopServer().catch(() => undefined);
  cleanupSync();
  process.exit();
});
