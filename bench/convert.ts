/**
 * Benchmark (not a test): deployment speed of the full-size dilated DenseNet121 segmenter (random
 * weights) at 512x1024: float32 TFLite vs int8 TFLite vs the tfjs graph model, median latency per
 * frame and achieved GFLOP/s against this machine's peak; then int8 vs float32 mIoU of an adapted
 * synthetic segmenter on held-out synthetic target frames.
 *
 *   npm run bench:convert -- [--input 512x1024] [--runs 5] [--threads 1,2] [--run runs/bench-seg/full-s0]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { median } from '../core/stats';
import { convert } from '../convert/convert';
import { listImages, loadFrames } from '../convert/frames';
import { graphFlops, inferenceGraph } from '../convert/graph';
import { quantizeGraph } from '../convert/quantize';
import { loadTflite } from '../runtime/tflite';
import { loadGraphModel } from '../runtime/tfjs';
import { writeTfjsGraph } from '../convert/tfjs-graph';
import { writeTflite } from '../convert/tflite';
import { buildConfig } from '../train/config';
import { writeSynth } from '../train/data/synth';
import { I2IModel } from '../train/i2i';

const { values } = parseArgs({ options: {
  input: { type: 'string', default: '512x1024' }, runs: { type: 'string', default: '5' }, threads: { type: 'string', default: '1,2' },
  'calibration-frames': { type: 'string', default: '4' }, 'tfjs-runs': { type: 'string', default: '2' },
  run: { type: 'string' }, out: { type: 'string', default: 'runs/bench-convert' },
} });

/** This machine's practical peak (DESIGN.md: one 3x3 conv 128->128 in TFLite fp32 + XNNPACK) and the AVX2 paper peak, both 2 cores. */
const PEAK = { practical: 38, paper: 157 };
const log = (l: string) => process.stderr.write(`[bench] ${l}\n`);

async function speed(out: string): Promise<string[]> {
  const [h, w] = values.input!.split('x').map(Number) as [number, number];
  const config = buildConfig('gta5-cityscapes', 'full', { model: { encoder: 'densenet121' } });
  const model = new I2IModel(config, 19);
  const graph = inferenceGraph(model, [h, w], 'model');
  model.dispose();
  const gflop = graphFlops(graph) / 1e9;
  log(`DenseNet121 segmenter at ${h}x${w}: ${graph.nodes.length} IR nodes, ${gflop.toFixed(1)} GFLOP per frame`);
  const frameDir = path.join(out, `frames-${h}x${w}`);
  if (!fs.existsSync(path.join(frameDir, 'leftImg8bit'))) await writeSynth({ out: frameDir, domain: 'target', count: Number(values['calibration-frames']), height: h, width: w, seed: 5 });
  const frames = await loadFrames(listImages(path.join(frameDir, 'leftImg8bit'), Number(values['calibration-frames'])), [h, w], 3);
  let t0 = Date.now();
  const q = quantizeGraph(graph, frames, 2);
  log(`int8 calibration (2 passes over ${frames.length} frames): ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const files = { fp32: writeTflite(graph), int8: writeTflite(q.graph, { int8: q.params }) };
  const rows: string[] = [];
  const row = (name: string, threads: number, bytes: number, times: number[]) => {
    const ms = median(times);
    const gfs = gflop / (ms / 1000);
    rows.push(`| ${name} | ${threads} | ${(bytes / 2 ** 20).toFixed(1)} MiB | ${ms.toFixed(0)} ms | ${gfs.toFixed(1)} | ${((gfs / PEAK.practical) * 100).toFixed(0)}% | ${((gfs / PEAK.paper) * 100).toFixed(0)}% |`);
    log(rows[rows.length - 1]);
    return ms;
  };
  const x = frames[0];
  const latency: Record<string, number> = {};
  for (const threads of values.threads!.split(',').map(Number)) {
    for (const [p, bytes] of Object.entries(files)) {
      const m = loadTflite(bytes, { threads });
      m.run(x);  // warm-up: XNNPACK packs weights on the first run
      const times: number[] = [];
      for (let i = 0; i < Number(values.runs); i++) { t0 = performance.now(); m.run(x); times.push(performance.now() - t0); }
      m.dispose();
      latency[`${p}/${threads}`] = row(`TFLite ${p}`, threads, bytes.length, times);
    }
  }
  // tfjs: the same graph as a tfjs graph model on this machine's tfjs backend (one thread on wasm).
  const { modelJson, weights } = writeTfjsGraph(graph, 'fp32');
  const dir = path.join(out, 'tfjs-fp32');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson));
  fs.writeFileSync(path.join(dir, 'weights.bin'), weights);
  const gm = await loadGraphModel(path.join(dir, 'model.json'));
  const times: number[] = [];
  for (let i = 0; i <= Number(values['tfjs-runs']); i++) {
    const input = tf.tensor4d(x, [1, h, w, 3]);
    t0 = performance.now();
    // The graph has two outputs since drift (labels' logits and pooled features): ask for the logits.
    const y = gm.execute(input, 'output') as tf.Tensor;
    y.dataSync();
    if (i > 0) times.push(performance.now() - t0);  // the first run compiles and allocates
    tf.dispose([input, y]);
  }
  gm.dispose();
  row(`tfjs graph fp32 (${tf.getBackend()})`, 1, weights.length, times);
  const ratios = values.threads!.split(',').map((t) => `int8 vs fp32 TFLite with ${t} thread(s): ${(latency[`fp32/${t}`] / latency[`int8/${t}`]).toFixed(2)}x faster`);
  return [
    `Dilated DenseNet121 segmenter (f + h, random weights), ${h}x${w}, ${gflop.toFixed(1)} GFLOP per frame; median of ${values.runs} runs after a warm-up (tfjs: ${values['tfjs-runs']})`,
    '| model | threads | size | latency | GFLOP/s | of practical peak (38) | of AVX2 paper peak (157) |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    ...ratios,
  ];
}

/** int8 vs float32 mIoU of an adapted synthetic segmenter (the benchmark's or the demo's run). */
async function accuracy(out: string): Promise<string[]> {
  const candidates = values.run ? [values.run] : ['runs/bench-seg/full-s0', 'runs/demo/full'];
  const run = candidates.find((r) => fs.existsSync(path.join(r, 'checkpoint')));
  if (!run) return [`No adapted synthetic run found (${candidates.join(', ')}): run npm run bench:seg or npm run demo first, or pass --run DIR.`];
  const meta = JSON.parse(fs.readFileSync(path.join(run, 'checkpoint', 'checkpoint.json'), 'utf8'));
  const target = meta.config.data.targetRoot as string;
  // Whole frames at the training scale, as i2i eval measures them (sides rounded to the stride, 8).
  const sharp = (await import('sharp')).default;
  const frame = await sharp(listImages(path.join(target, 'leftImg8bit', 'val'), 1)[0]).metadata();
  const size = [frame.height!, frame.width!].map((s) => Math.round((s * meta.config.data.scale) / 8) * 8) as [number, number];
  const t0 = Date.now();
  // force: a rerun replaces the previous run's bundle (only once the new one is complete).
  const m = await convert({ checkpoint: run, out: path.join(out, 'synthetic-bundle'), precisions: ['fp32', 'int8'], input: size, calibrate: path.join(target, 'leftImg8bit', 'train'), eval: target, progress: log, force: true });
  const [f32, i8] = m.parity;
  return [
    `i2i convert of that run (fp32, int8, --eval): ${((Date.now() - t0) / 1000).toFixed(0)} s; this process's peak RSS so far ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB`,
    `${run} (step ${meta.step}) on ${m.evaluation!.frames} held-out synthetic target frames at ${m.input.height}x${m.input.width}, int8 calibrated on ${m.calibration!.frames} target training frames:`,
    `mIoU fp32 TFLite ${(f32.score! * 100).toFixed(1)}, int8 TFLite ${(i8.score! * 100).toFixed(1)} (drop ${(i8.scoreDropVsFp32! * 100).toFixed(1)} points; goal: within 1); int8 labels agree with tfjs on ${(i8.labelAgreement * 100).toFixed(2)}% of pixels`,
  ];
}

async function main() {
  await initBackend();
  const out = path.resolve(values.out!);
  fs.mkdirSync(out, { recursive: true });
  const t0 = Date.now();
  const lines = [...(await speed(out)), '', ...(await accuracy(out)), `wall time ${((Date.now() - t0) / 60000).toFixed(1)} min`];
  fs.writeFileSync(path.join(out, 'table.md'), lines.join('\n') + '\n');
  process.stdout.write(lines.join('\n') + '\n');
}

main().then(() => process.exit(0), (e) => { process.stderr.write(String(e.stack ?? e) + '\n'); process.exit(1); });
