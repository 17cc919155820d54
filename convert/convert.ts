/**
 * `i2i convert`: a training checkpoint -> a deployable bundle (core/bundle.ts). This stage writes
 * the float32 TFLite model of the inference path (f then h), runs it in the real TFLite runtime on
 * check frames next to the tfjs model, and records size, latency and agreement in the manifest.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../core/tf';
import { BUNDLE_FORMAT, ManifestSchema, type Manifest } from '../core/bundle';
import { UserError } from '../core/errors';
import { CITYSCAPES_CLASSES, CITYSCAPES_PALETTE } from '../core/labels';
import { deriveSeed, mulberry32 } from '../core/rng';
import { disposeCheckpoint, readCheckpoint } from '../train/checkpoint';
import { I2IModel } from '../train/i2i';
import { restoreModel } from '../train/state';
import { inferenceGraph, type Weights } from './graph';
import { loadTflite } from './runtime';
import { writeTflite } from './tflite';

export interface ConvertOptions {
  checkpoint: string;
  out: string;
  precisions?: string[];
  /** Segmenters: the input size of the exported model (default: the training crop). */
  input?: [number, number];
  /** Frames for the parity check (default 8 random frames; calibration data comes with int8). */
  checkFrames?: number;
  threads?: number;
  progress?: (l: string) => void;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export async function convert(o: ConvertOptions): Promise<Manifest> {
  const progress = o.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const precisions = o.precisions ?? ['fp32'];
  const unsupported = precisions.filter((p) => p !== 'fp32');
  if (unsupported.length) throw new UserError(`--precision ${unsupported.join(',')} is not built yet.`, 'Use --precision fp32 (int8 TFLite and fp16/uint8 tfjs weights are planned).');
  const ckpt = readCheckpoint(o.checkpoint);
  const config = ckpt.meta.config;
  const weights: Weights = new Map([...ckpt.tensors].map(([k, t]) => [k, { shape: t.shape, values: t.dataSync() as Float32Array }]));
  for (const need of ['f', 'h']) {
    if (!ckpt.meta.networks.includes(need)) throw new UserError(`The checkpoint in ${o.checkpoint} has no network ${need} (it has ${ckpt.meta.networks.join(', ')}).`, 'Convert a run written by i2i train.');
  }
  const seg = config.kind === 'segment';
  const hw: [number, number] = o.input ?? [config.data.imageSize, config.data.imageSize];
  const graph = inferenceGraph(config, weights, hw);
  const bytes = writeTflite(graph);
  fs.mkdirSync(o.out, { recursive: true });
  const file = 'model.tflite';
  fs.writeFileSync(path.join(o.out, file), bytes);
  progress(`[convert] wrote ${path.join(o.out, file)} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, ${graph.nodes.length} ops)`);

  // Parity: the same frames through the tfjs model (running statistics) and the TFLite runtime.
  const model = new I2IModel(config, ckpt.meta.classes.length);
  restoreModel(model, ckpt, { optimizer: false });
  disposeCheckpoint(ckpt);
  const threads = o.threads ?? 1;
  const tfl = loadTflite(bytes, { threads });
  const frames = o.checkFrames ?? 8;
  const r = mulberry32(deriveSeed(config.seed, 'convert-check'));
  let maxDiff = 0, range = 0, agree = 0, total = 0;
  const times: number[] = [];
  try {
    for (let i = 0; i < frames; i++) {
      const x = Float32Array.from({ length: hw[0] * hw[1] * config.data.channels }, () => r() * 2 - 1);
      const ref = tf.tidy(() => model.predict(tf.tensor4d(x, [1, hw[0], hw[1], config.data.channels]), 'target', seg ? hw : undefined).dataSync());
      const t0 = process.hrtime.bigint();
      const got = tfl.run(x) as Float32Array;
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const k = ref.length / (seg ? hw[0] * hw[1] : 1);
      for (let p = 0; p < ref.length; p += k) {
        let a = 0, b = 0;
        for (let c = 1; c < k; c++) { if (ref[p + c] > ref[p + a]) a = c; if (got[p + c] > got[p + b]) b = c; }
        agree += a === b ? 1 : 0; total++;
      }
      for (let j = 0; j < ref.length; j++) { maxDiff = Math.max(maxDiff, Math.abs(ref[j] - got[j])); range = Math.max(range, Math.abs(ref[j])); }
    }
  } finally { tfl.dispose(); model.dispose(); }
  times.sort((a, b) => a - b);
  const manifest: Manifest = {
    format: BUNDLE_FORMAT,
    task: config.task,
    kind: config.kind,
    classes: seg ? CITYSCAPES_CLASSES.map((name, id) => ({ id, name, color: CITYSCAPES_PALETTE[id] })) : ckpt.meta.classes.map((name, id) => ({ id, name })),
    input: { height: hw[0], width: hw[1], channels: config.data.channels, layout: 'NHWC', normalisation: 'x/127.5-1' },
    models: [{ file, format: 'tflite', precision: 'fp32', bytes: bytes.length, sha256: sha256(bytes), output: 'logits' }],
    training: { checkpoint: path.resolve(o.checkpoint), step: ckpt.meta.step, config, metrics: lastMetrics(o.checkpoint) },
    parity: [{ precision: 'fp32', format: 'tflite', bytes: bytes.length, latencyMs: times[Math.floor(times.length / 2)], threads, maxRelDiffVsTfjs: maxDiff / Math.max(range, 1e-12), labelAgreement: agree / total, frames }],
    createdAt: new Date().toISOString(),
  };
  ManifestSchema.parse(manifest);
  fs.writeFileSync(path.join(o.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

function lastMetrics(run: string): unknown {
  const f = path.join(run, 'metrics.jsonl');
  if (!fs.existsSync(f)) return undefined;
  const lines = fs.readFileSync(f, 'utf8').trim().split('\n');
  try { return JSON.parse(lines[lines.length - 1]); } catch { return undefined; }
}

export function parityTable(m: Manifest): string {
  return [
    '| precision | format | size | latency / frame | threads | max rel. diff vs tfjs | label agreement |',
    '|---|---|---|---|---|---|---|',
    ...m.parity.map((p) => `| ${p.precision} | ${p.format} | ${(p.bytes / 2 ** 20).toFixed(2)} MiB | ${p.latencyMs.toFixed(1)} ms | ${p.threads} | ${p.maxRelDiffVsTfjs?.toExponential(1) ?? '-'} | ${(p.labelAgreement * 100).toFixed(2)}% |`),
  ].join('\n');
}
