/**
 * Benchmark (not a test): the segmentation server on loopback, `npm run bench:serve`.
 * - Models: the small dilated DenseNet trained with the full method on synthetic driving scenes
 *   (input 256x512), and the full-size DenseNet121 (trained 1 step: speed does not depend on the
 *   weights) at 512x1024; each converted to fp32 + int8 TFLite (and a tfjs fp32 graph).
 * - Engine-only latency (frames already decoded, sequential) vs end to end (POST /segment of a
 *   512x1024 JPEG, png mask back, sequential): the ratio at concurrency 1.
 * - autocannon closed loop at concurrency 1, 4, 16: throughput, p50, p99; pool layouts 1x2 vs 2x1.
 * - Overload: an open-loop generator at 4x the sustainable rate for 60 s: status counts, p99 of
 *   the 200s, server + worker RSS over time.
 * - Drift: AUROC of held-out target vs source frames, and its latency cost (the same model written
 *   with and without the features output, timed alternately).
 * - tfjs micro-batching: engine throughput at concurrency 4 with max-batch 1 vs 4.
 *
 *   npm run bench:serve -- [--out runs/bench-serve] [--reuse] [--quick] [--skip-large]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { initBackend } from '../core/backend';
import { auroc } from '../core/drift';
import { median } from '../core/stats';
import { readManifest, sha256 } from '../core/bundle';
import { listImages, loadFrames } from '../convert/frames';
import { inferenceGraph } from '../convert/graph';
import { quantizeGraph } from '../convert/quantize';
import { writeTflite } from '../convert/tflite';
import { openBundle, openModelFile, type Precision } from '../runtime/bundle';
import { decodeToInput } from '../runtime/image';
import { Engine } from '../serve/engine/engine';
import { residentBytes } from '../serve/metrics';
import { startServer } from '../serve/server';
import { prepareBundles, type ModelCase } from './bundles';
import { openRun } from '../train/run';

const { values } = parseArgs({ options: {
  out: { type: 'string', default: 'runs/bench-serve' }, reuse: { type: 'boolean' }, quick: { type: 'boolean' }, 'skip-large': { type: 'boolean' },
  'small-steps': { type: 'string', default: '200' },
} });
const OUT = path.resolve(values.out!);
const QUICK = Boolean(values.quick);
const log = (l: string) => process.stderr.write(`[bench:serve] ${l}\n`);
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const table: string[] = [];
const emit = (l = '') => { table.push(l); process.stdout.write(l + '\n'); };

async function prepare(): Promise<{ small: ModelCase; large?: ModelCase; data: string }> {
  return prepareBundles({ out: OUT, reuse: values.reuse, quick: QUICK, skipLarge: values['skip-large'], smallSteps: Number(values['small-steps']), log });
}

async function requestBody(data: string): Promise<Buffer> {
  const f = listImages(path.join(data, 'requests', 'leftImg8bit'), 1)[0];
  return sharp(f).jpeg({ quality: 90 }).toBuffer();
}

/** Median ms of sequential frames through the engine alone (decoded once, before). */
async function engineOnly(c: ModelCase, precision: Precision, body: Buffer, n: number, workers = 2, threads = 1): Promise<number> {
  const e = await Engine.start({ bundle: c.bundle, runtime: 'tflite', precision, workers, threads });
  try {
    const { pixels } = await decodeToInput(body, { height: c.input[0], width: c.input[1] }, { maxPixels: 1e8 });
    const times: number[] = [];
    for (let i = 0; i < n; i++) { const t0 = performance.now(); await e.submit(pixels); times.push(performance.now() - t0); }
    return median(times);
  } finally { await e.close(); }
}

/** Median ms of sequential POST /segment (png mask) over keep-alive. */
async function endToEnd(url: string, body: Buffer, n: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await fetch(`${url}/segment`, { method: 'POST', body, headers: { 'Content-Type': 'image/jpeg' } });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`POST /segment answered ${r.status}`);
    times.push(performance.now() - t0);
  }
  return median(times);
}

function cannon(url: string, body: Buffer, connections: number, seconds: number): Promise<autocannon.Result> {
  return autocannon({ url: `${url}/segment`, method: 'POST', body, headers: { 'content-type': 'image/jpeg' }, connections, duration: seconds, timeout: 900 });
}

const rss = (pid: number) => residentBytes(pid) ?? 0;

/** Open loop at `rate` requests/s for `seconds`: every status, the latencies of the 200s, RSS samples. */
async function overload(s: { url: string; pids: () => number[] }, body: Buffer, rate: number, seconds: number): Promise<{ statuses: Record<string, number>; p50: number; p99: number; rssMiB: number[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const u = new URL(`${s.url}/segment`);
  const statuses: Record<string, number> = {};
  const ok: number[] = [];
  const rssMiB: number[] = [];
  const pids = s.pids;
  const sampler = setInterval(() => rssMiB.push(pids().reduce((a, p) => a + rss(p), 0) / 2 ** 20), 1000);
  const inflight: Promise<void>[] = [];
  const one = () => new Promise<void>((resolve) => {
    const t0 = performance.now();
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'Content-Type': 'image/jpeg', 'Content-Length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => { const k = String(res.statusCode); statuses[k] = (statuses[k] ?? 0) + 1; if (res.statusCode === 200) ok.push(performance.now() - t0); resolve(); });
    });
    req.on('error', (e) => { statuses[`error:${(e as NodeJS.ErrnoException).code ?? e.message}`] = (statuses[`error:${(e as NodeJS.ErrnoException).code}`] ?? 0) + 1; resolve(); });
    req.end(body);
  });
  const start = performance.now();
  for (let i = 0; ; i++) {
    const due = start + (i * 1000) / rate;
    if (due - start > seconds * 1000) break;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inflight.push(one());
  }
  await Promise.all(inflight);
  clearInterval(sampler);
  agent.destroy();
  const sorted = [...ok].sort((a, b) => a - b);
  return { statuses, p50: sorted[Math.floor(sorted.length * 0.5)] ?? NaN, p99: sorted[Math.floor(sorted.length * 0.99)] ?? NaN, rssMiB };
}

async function driftFigures(small: ModelCase, data: string): Promise<void> {
  const read = async (dir: string) => Promise.all(listImages(dir, 40).map((f) => sharp(f).removeAlpha().resize(512, 256, { fit: 'fill', kernel: 'linear' }).raw().toBuffer()));
  const target = await read(path.join(data, 'target', 'leftImg8bit', 'val'));
  const source = await read(path.join(data, 'source-test', 'images'));
  emit(`Drift on the synthetic shift: ${target.length} held-out target frames vs ${source.length} source frames (the small model's bundle; 0 = typical target frame, 1 = 95th percentile of its calibration frames):`);
  emit('');
  emit('| precision | AUROC | median drift, target | median drift, source | latency with drift output | without | cost |');
  emit('|---|---|---|---|---|---|---|');
  // The same graph written with and without the features output, timed alternately in one process.
  const { model } = openRun(path.join(OUT, 'small-full'));
  const graph = inferenceGraph(model, small.input, 'model');
  model.dispose();
  const calib = await loadFrames(listImages(path.join(data, 'target', 'leftImg8bit', 'train'), 32), small.input, 3);
  const q = quantizeGraph(graph, calib, 1);
  const variants = { fp32: [writeTflite(graph), writeTflite(graph, { features: false })], int8: [writeTflite(q.graph, { int8: q.params }), writeTflite(q.graph, { int8: q.params, features: false })] };
  const spec = { kind: 'segment' as const, input: { height: small.input[0], width: small.input[1], channels: 3, layout: 'NHWC' as const, normalisation: 'x/127.5-1' as const }, classes: 19 };
  /** A model file in a scratch directory, loaded by the serving runtime itself. */
  const load = async (bytes: Uint8Array, name: string, features: boolean) => {
    const dir = path.join(OUT, 'drift-cost');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, name), bytes);
    return openModelFile(dir, { file: name, format: 'tflite', precision: 'fp32', bytes: bytes.length, sha256: sha256(bytes), output: 'logits', features }, spec, 1);
  };
  for (const precision of ['fp32', 'int8'] as const) {
    const b = await openBundle(small.bundle, { runtime: 'tflite', precision });
    const t = b.segment(target).map((p) => p.drift!), s = b.segment(source).map((p) => p.drift!);
    b.dispose();
    // Timed as the server runs them: segment() on bytes, labels and drift out.
    const withF = await load(variants[precision][0], `${precision}-features.tflite`, true), without = await load(variants[precision][1], `${precision}-plain.tflite`, false);
    const x = target[0], tw: number[] = [], to: number[] = [];
    for (let i = 0; i < (QUICK ? 20 : 100); i++) {
      let t0 = performance.now(); withF.segment([x]); tw.push(performance.now() - t0);
      t0 = performance.now(); without.segment([x]); to.push(performance.now() - t0);
    }
    withF.dispose(); without.dispose();
    emit(`| ${precision} | ${auroc(t, s).toFixed(3)} | ${median(t).toFixed(2)} | ${median(s).toFixed(2)} | ${median(tw).toFixed(1)} ms | ${median(to).toFixed(1)} ms | ${(((median(tw) / median(to)) - 1) * 100).toFixed(1)}% |`);
  }
  emit('');
}

async function tfjsBatching(small: ModelCase, body: Buffer): Promise<void> {
  const { pixels } = await decodeToInput(body, { height: small.input[0], width: small.input[1] }, { maxPixels: 1e8 });
  emit('tfjs fp32 (wasm, 1 worker) engine throughput at concurrency 4, frames of the small model:');
  emit('');
  emit('| max-batch | frames/s | mean batch |');
  emit('|---|---|---|');
  for (const maxBatch of [1, 4]) {
    const e = await Engine.start({ bundle: small.bundle, runtime: 'tfjs', precision: 'fp32', workers: 1, maxBatch, maxWaitMs: 10, maxQueue: 64 });
    const batches: number[] = [];
    e.on('batch', (n: number) => batches.push(n));
    const n = QUICK ? 12 : 40;
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 4 }, async () => { while (next++ < n) await e.submit(pixels); }));
    const fps = n / ((performance.now() - t0) / 1000);
    await e.close();
    emit(`| ${maxBatch} | ${fps.toFixed(2)} | ${(batches.reduce((a, b) => a + b, 0) / batches.length).toFixed(2)} |`);
  }
  emit('');
}

async function main(): Promise<void> {
  fs.mkdirSync(OUT, { recursive: true });
  await initBackend();
  const t0 = Date.now();
  const { small, large, data } = await prepare();
  const body = await requestBody(data);
  const cases = [small, ...(large ? [large] : [])];
  emit(`Request: a ${(body.length / 1024).toFixed(0)} KiB 512x1024 JPEG of a synthetic target scene, POST /segment, palette PNG back; loopback; 2 cores.`);
  emit('');
  emit('| model | precision | pool | concurrency | req/s | p50 | p99 | non-2xx |');
  emit('|---|---|---|---|---|---|---|---|');
  const ratios: string[] = [];
  let sustainable = 0;
  for (const c of cases) {
    for (const precision of ['fp32', 'int8'] as const) {
      const n = c === small ? (QUICK ? 10 : 40) : (QUICK ? 2 : 5);
      const eng = await engineOnly(c, precision, body, n);
      const s = await startServer({ bundle: c.bundle, port: 0, runtime: 'tflite', precision, workers: 2, threads: 1, timeoutMs: c.timeoutMs, maxQueue: 64, log: silent });
      try {
        const e2e = await endToEnd(s.url, body, n);
        ratios.push(`| ${c.name} | ${precision} | 512x1024 JPEG | ${eng.toFixed(1)} ms | ${e2e.toFixed(1)} ms | ${(e2e / eng).toFixed(3)} |`);
        if (c === small) {
          // The same frame at the model's input size: no downscale in the decode.
          const atInput = await sharp(body).resize(c.input[1], c.input[0], { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
          const e2eIn = await endToEnd(s.url, atInput, n);
          ratios.push(`| ${c.name} | ${precision} | ${c.input[0]}x${c.input[1]} JPEG | ${eng.toFixed(1)} ms | ${e2eIn.toFixed(1)} ms | ${(e2eIn / eng).toFixed(3)} |`);
        }
        for (const conns of [1, 4, 16]) {
          const r = await cannon(s.url, body, conns, c.seconds);
          emit(`| ${c.name} | ${precision} | 2x1 | ${conns} | ${r.requests.average.toFixed(2)} | ${r.latency.p50} ms | ${r.latency.p99} ms | ${r.non2xx + r.errors + r.timeouts} |`);
          if (c === small && precision === 'int8' && conns === 16) sustainable = r.requests.average;
        }
      } finally { await s.close(); }
      if (c === small) {
        for (const [workers, threads] of [[1, 2]] as const) {
          const s2 = await startServer({ bundle: c.bundle, port: 0, runtime: 'tflite', precision, workers, threads, timeoutMs: c.timeoutMs, log: silent });
          try {
            for (const conns of [1, 4]) {
              const r = await cannon(s2.url, body, conns, c.seconds);
              emit(`| ${c.name} | ${precision} | ${workers}x${threads} | ${conns} | ${r.requests.average.toFixed(2)} | ${r.latency.p50} ms | ${r.latency.p99} ms | ${r.non2xx + r.errors + r.timeouts} |`);
            }
          } finally { await s2.close(); }
        }
      }
    }
  }
  emit('');
  emit('End to end vs engine only, sequential (concurrency 1), median per frame (goal <= 1.10):');
  emit('');
  emit('| model | precision | request | engine only | end to end | ratio |');
  emit('|---|---|---|---|---|---|');
  ratios.forEach((r) => emit(r));
  emit('');

  const rate = Math.max(1, sustainable * 4), secs = QUICK ? 15 : 60;
  // The server as its own process (i2i serve), so that its memory is its own and its workers'.
  const cli = spawn(process.execPath, [path.join(__dirname, '..', 'bin', 'i2i.js'), 'serve', '--bundle', small.bundle, '--port', '0', '--runtime', 'tflite', '--precision', 'int8', '--workers', '2', '--threads', '1', '--max-queue', '32'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  cli.stderr.on('data', (d) => { err += d; });
  try {
    const t1 = Date.now();
    while (!/listening on (\S+)/.test(err) && Date.now() - t1 < 120_000) await new Promise((r) => setTimeout(r, 100));
    const url = /listening on (\S+)/.exec(err)?.[1];
    if (!url) throw new Error(`i2i serve did not start:\n${err}`);
    const children = () => fs.readFileSync(`/proc/${cli.pid}/task/${cli.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    const o = await overload({ url, pids: () => [cli.pid!, ...children()] }, body, rate, secs);
    emit(`Overload: small int8, 2x1 workers, max-queue 32, open loop at ${rate.toFixed(1)} req/s (4x the sustainable ${sustainable.toFixed(1)}) for ${secs} s:`);
    emit('');
    emit(`statuses ${JSON.stringify(o.statuses)}; 200s: p50 ${o.p50.toFixed(0)} ms, p99 ${o.p99.toFixed(0)} ms; RSS of the server process and its 2 workers ${o.rssMiB[0]?.toFixed(0)} MiB at 1 s, ${Math.max(...o.rssMiB).toFixed(0)} MiB at most, ${o.rssMiB[o.rssMiB.length - 1]?.toFixed(0)} MiB at the end`);
    emit('');
  } finally {
    cli.kill('SIGTERM');
    await new Promise((r) => cli.once('exit', r));
  }

  await driftFigures(small, data);
  await tfjsBatching(small, body);
  const m = readManifest(small.bundle);
  emit(`Small bundle: trained ${m.training.step} steps (full method); mIoU on 40 held-out target frames: ${m.parity.map((p) => `${p.format} ${p.precision} ${((p.score ?? NaN) * 100).toFixed(1)}`).join(', ')}.`);
  emit(`(bench:serve took ${((Date.now() - t0) / 60000).toFixed(1)} min)`);
  fs.writeFileSync(path.join(OUT, 'table.md'), table.join('\n') + '\n');
  log(`wrote ${path.join(OUT, 'table.md')}`);
}

main().then(() => process.exit(0), (e) => { process.stderr.write(`${(e as Error).stack}\n`); process.exit(1); });
