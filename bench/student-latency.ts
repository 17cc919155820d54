/**
 * Benchmark (not a test): engine-only TFLite latency of candidate real-time students at 512x1024,
 * measured before training any (issue 27): random weights, batch norm with random statistics, int8
 * calibrated on synthetic target frames, one thread (one worker per core), beside the dilated
 * DenseNets they replace. Same process, same frames, side by side: the ratios are what counts.
 *
 *   npm run bench:student-latency -- [--input 512x1024] [--runs 5] [--teachers] [--stride8 | --stride8-only] [--match REGEX]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../core/backend';
import { median } from '../core/stats';
import { listImages, loadFrames } from '../convert/frames';
import { foldGraph } from '../convert/fold';
import { graphFlops } from '../convert/graph';
import { quantizeGraph } from '../convert/quantize';
import { writeTflite } from '../convert/tflite';
import { loadTflite } from '../runtime/tflite';
import { writeSynth } from '../train/data/synth';
import { DENSENET121, DENSENET_SMALL, dilatedDenseNet } from '../train/models/densenet';
import { fastSeg, FASTSEG, type FastSegOptions } from '../train/models/fastseg';
import { GraphBuilder } from '../train/models/ir';
import { mobileNetV2, MOBILENETV2 } from '../train/models/mobilenetv2';
import type { Encoder } from '../train/models/net';
import { pixelClassifier } from '../train/models/nets';
import * as tf from '../core/tf';

const { values } = parseArgs({ options: {
  input: { type: 'string', default: '512x1024' }, runs: { type: 'string', default: '5' },
  teachers: { type: 'boolean', default: false },
  /** Also time each network without the final upsampling of its logits to the input (logits at stride 8). */
  'stride8': { type: 'boolean', default: false },
  /**
   * Only the form without the final upsampling (logits at the encoder's output stride: 8 for the
   * default student, what `i2i convert` writes by default), and only candidates matching --match.
   */
  'stride8-only': { type: 'boolean', default: false }, match: { type: 'string' }, out: { type: 'string', default: 'runs/bench-student-latency' },
} });

const log = (l: string) => process.stderr.write(`[bench] ${l}\n`);

const CANDIDATES: [string, () => Encoder][] = [
  ['fastseg (default)', () => fastSeg('f', 1, 3, FASTSEG)],
  ['fastseg narrow 16/24/32, 48/64, out 32', () => fastSeg('f', 1, 3, { stem: [16, 24, 32], global: [48, 64], blocks: [1, 1], out: 32 })],
  ['fastseg wide 24/48/64, 96/128 x2, out 96', () => fastSeg('f', 1, 3, { stem: [24, 48, 64], global: [96, 128], blocks: [2, 2], out: 96 } satisfies FastSegOptions)],
  // Depthwise-separable (MobileNetV2 inverted residuals, dilated to output stride 8 as DeepLabV3 does).
  ['mobilenetv2 (1.0, OS8)', () => mobileNetV2('f', 1, 3, MOBILENETV2)],
  ['mobilenetv2 0.5 (OS8)', () => mobileNetV2('f', 1, 3, { ...MOBILENETV2, width: 0.5 })],
  ['mobilenetv2 0.5 to 96 ch (OS8)', () => mobileNetV2('f', 1, 3, { ...MOBILENETV2, width: 0.5, stages: 5 })],
  // Undilated, as ImageNet trained it (output stride 32) and as LR-ASPP-style heads use it (16): no dilated depthwise convs.
  ['mobilenetv2 (1.0, OS32)', () => mobileNetV2('f', 1, 3, { ...MOBILENETV2, outputStride: 32 })],
  ['mobilenetv2 0.5 (OS16)', () => mobileNetV2('f', 1, 3, { ...MOBILENETV2, width: 0.5, outputStride: 16 })],
  ['densenet-small (today\'s small model)', () => dilatedDenseNet('f', 1, 3, { ...DENSENET_SMALL, recompute: false, stemPadding: 'keras' })],
];

async function main() {
  await initBackend();
  const [h, w] = values.input!.split('x').map(Number) as [number, number];
  const out = path.resolve(values.out!);
  const frameDir = path.join(out, `frames-${h}x${w}`);
  if (!fs.existsSync(path.join(frameDir, 'leftImg8bit'))) await writeSynth({ out: frameDir, domain: 'target', count: 4, height: h, width: w, seed: 5 });
  const frames = await loadFrames(listImages(path.join(frameDir, 'leftImg8bit'), 4), [h, w], 3);
  const all = values.teachers ? [...CANDIDATES, ['densenet121 (the paper\'s)', () => dilatedDenseNet('f', 1, 3, { ...DENSENET121, recompute: false, stemPadding: 'keras' })] as [string, () => Encoder]] : CANDIDATES;
  const candidates = values.match ? all.filter(([n]) => new RegExp(values.match!).test(n)) : all;
  if (!candidates.length) throw new Error(`--match ${values.match} matches no candidate: ${all.map(([n]) => n).join('; ')}`);
  const rows: string[] = [];
  const heads = values['stride8-only'] ? [false] : values.stride8 ? [true, false] : [true];
  for (const [name0, build] of candidates) for (const upsample of heads) {
    const f = build();
    const name = upsample ? name0 : `${name0}, logits at stride ${(f as { outStride?: number }).outStride ?? 8}`;
    const hNet = pixelClassifier('h', 2, f.outShape[2], 19);
    // Running statistics away from (0, 1), so the folded convs are not trivially scaled.
    for (const [k, v] of f.store.buffers) tf.tidy(() => v.assign(k.endsWith('/var') ? tf.randomUniform(v.shape, 0.5, 1.5, 'float32', 1) : tf.randomUniform(v.shape, -0.1, 0.1, 'float32', 2)));
    const g = new GraphBuilder();
    const x = g.input([1, h, w, 3]);
    const z = f.emit(g, x);
    const logits = hNet.emit(g, z);
    const graph = foldGraph(g.graph(x, upsample ? g.resize(logits, [h, w]) : logits, name, z));
    f.store.dispose(); hNet.store.dispose();
    const gflop = graphFlops(graph) / 1e9;
    const q = quantizeGraph(graph, frames, 2);
    const files = { fp32: writeTflite(graph), int8: writeTflite(q.graph, { int8: q.params }) };
    const ms: Record<string, number> = {};
    for (const [p, bytes] of Object.entries(files)) {
      const m = loadTflite(bytes, { threads: 1 });
      m.run(frames[0]);
      const times: number[] = [];
      for (let i = 0; i < Number(values.runs); i++) { const t0 = performance.now(); m.run(frames[i % frames.length]); times.push(performance.now() - t0); }
      m.dispose();
      ms[p] = median(times);
    }
    rows.push(`| ${name} | ${gflop.toFixed(2)} | ${(files.int8.length / 2 ** 20).toFixed(2)} MiB | ${ms.fp32.toFixed(0)} ms | ${ms.int8.toFixed(0)} ms | ${(1000 / ms.int8).toFixed(1)} |`);
    log(rows[rows.length - 1]);
  }
  const lines = [
    `Candidate students, engine only (TFLite, 1 thread, random weights), ${h}x${w} input, ${values['stride8-only'] ? 'logits at the encoder\'s output stride' : 'logits upsampled to the input (and at the output stride where the row says so)'}; median of ${values.runs} runs after a warm-up`,
    '| encoder (+ 1x1 classifier, 19 classes) | GFLOP/frame | int8 size | fp32 | int8 | int8 frames/s per core |',
    '|---|---|---|---|---|---|',
    ...rows,
  ];
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'table.md'), lines.join('\n') + '\n');
  process.stdout.write(lines.join('\n') + '\n');
}

main().then(() => process.exit(0), (e) => { process.stderr.write(String(e.stack ?? e) + '\n'); process.exit(1); });
