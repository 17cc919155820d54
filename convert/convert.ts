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
import { listImages, loadFrames } from './frames';
import { loadTflite } from './runtime';
import { writeTfjsGraph, type WeightPrecision } from './tfjs-graph';
import { writeTflite } from './tflite';

export interface ConvertOptions {
  checkpoint: string;
  out: string;
  precisions?: string[];
  /** Segmenters: the input size of the exported model (default: the training crop). */
  input?: [number, number];
  /** Target-domain frames for the parity check (a folder or dataset root); random frames if absent. */
  calibrate?: string;
  /** How many frames the parity check runs (default 8). */
  checkFrames?: number;
  threads?: number;
  progress?: (l: string) => void;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/* Precisions: fp32 -> model.tflite and tfjs-fp32/; fp16, uint8 -> tfjs-<p>/ (weights quantised in the tfjs manifest). */

export async function convert(o: ConvertOptions): Promise<Manifest> {
  const progress = o.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const precisions = o.precisions ?? ['fp32', 'fp16', 'uint8'];
  const unknown = precisions.filter((p) => !['fp32', 'fp16', 'uint8', 'int8'].includes(p));
  if (unknown.length) throw new UserError(`Unknown precision ${unknown.join(',')}.`, 'Use fp32, fp16 or uint8 (comma-separated).');
  if (precisions.includes('int8')) throw new UserError('--precision int8 (full-integer TFLite with calibration) is not built yet.', 'Use fp32 (TFLite and tfjs), fp16 or uint8 (tfjs weights).');
  const ckpt = readCheckpoint(o.checkpoint);
  const config = ckpt.meta.config;
  const weights: Weights = new Map([...ckpt.tensors].map(([k, t]) => [k, { shape: t.shape, values: t.dataSync() as Float32Array }]));
  const seg = config.kind === 'segment';
  const hw: [number, number] = o.input ?? [config.data.imageSize, config.data.imageSize];
  let graph: ReturnType<typeof inferenceGraph>;
  try {
    for (const need of ['f', 'h']) {
      if (!ckpt.meta.networks.includes(need)) throw new UserError(`The checkpoint in ${o.checkpoint} has no network ${need} (it has ${ckpt.meta.networks.join(', ')}).`, 'Convert a run written by i2i train.');
    }
    graph = inferenceGraph(config, weights, hw);
  } catch (e) {
    disposeCheckpoint(ckpt);
    throw e;
  }
  fs.mkdirSync(o.out, { recursive: true });
  const files: Manifest['models'] = [];
  const runners: { file: Manifest['models'][number]; run: (x: Float32Array) => Float32Array; dispose: () => void; threads: number }[] = [];
  const threads = o.threads ?? 1;
  if (precisions.includes('fp32')) {
    const bytes = writeTflite(graph);
    fs.writeFileSync(path.join(o.out, 'model.tflite'), bytes);
    const entry = { file: 'model.tflite', format: 'tflite' as const, precision: 'fp32' as const, bytes: bytes.length, sha256: sha256(bytes), output: 'logits' as const };
    files.push(entry);
    const t = loadTflite(bytes, { threads });
    runners.push({ file: entry, run: (x) => t.run(x) as Float32Array, dispose: () => t.dispose(), threads });
  }
  for (const p of precisions.filter((q): q is WeightPrecision => q === 'fp32' || q === 'fp16' || q === 'uint8')) {
    const { modelJson, weights: wbytes } = writeTfjsGraph(graph, p);
    const dir = path.join(o.out, `tfjs-${p}`);
    fs.mkdirSync(dir, { recursive: true });
    const json = Buffer.from(JSON.stringify(modelJson));
    fs.writeFileSync(path.join(dir, 'model.json'), json);
    fs.writeFileSync(path.join(dir, 'weights.bin'), wbytes);
    const entry = { file: `tfjs-${p}/model.json`, format: 'tfjs-graph' as const, precision: p, bytes: json.length + wbytes.length, sha256: sha256(json), weights: { file: `tfjs-${p}/weights.bin`, bytes: wbytes.length, sha256: sha256(wbytes) }, output: 'logits' as const };
    files.push(entry);
    const gm = await loadGraphModelFile(path.join(dir, 'model.json'));
    // Not inside tf.tidy: there the graph executor cannot release intermediates as it goes, and a
    // 128x256 DenseNet frame took ~1 s instead of ~20 ms (measured).
    runners.push({ file: entry, run: (x) => {
      const input = tf.tensor4d(x, [1, hw[0], hw[1], config.data.channels]);
      const y = gm.predict(input) as tf.Tensor;
      try { return y.dataSync() as Float32Array; } finally { tf.dispose([input, y]); }
    }, dispose: () => gm.dispose(), threads: 1 });
  }
  for (const f of files) progress(`[convert] wrote ${path.join(o.out, f.file)} (${f.format} ${f.precision}, ${(f.bytes / 2 ** 20).toFixed(2)} MiB)`);

  // Parity: the same frames through the tfjs training model (running statistics) and every exported file.
  const model = new I2IModel(config, ckpt.meta.classes.length);
  restoreModel(model, ckpt, { optimizer: false });
  disposeCheckpoint(ckpt);
  const frames = o.checkFrames ?? 8;
  const r = mulberry32(deriveSeed(config.seed, 'convert-check'));
  const inputs = o.calibrate ? await loadFrames(listImages(o.calibrate, frames), hw, config.data.channels)
    : Array.from({ length: frames }, () => Float32Array.from({ length: hw[0] * hw[1] * config.data.channels }, () => r() * 2 - 1));
  const stats = runners.map(() => ({ maxDiff: 0, range: 0, agree: 0, total: 0, times: [] as number[] }));
  const argmax = (v: ArrayLike<number>, p: number, k: number) => { let a = 0; for (let c = 1; c < k; c++) if (v[p + c] > v[p + a]) a = c; return a; };
  try {
    for (const x of inputs) {
      const ref = tf.tidy(() => model.predict(tf.tensor4d(x, [1, hw[0], hw[1], config.data.channels]), 'target', seg ? hw : undefined).dataSync());
      const k = ref.length / (seg ? hw[0] * hw[1] : 1);
      runners.forEach((rn, j) => {
        const t0 = process.hrtime.bigint();
        const got = rn.run(x);
        const s = stats[j];
        s.times.push(Number(process.hrtime.bigint() - t0) / 1e6);
        for (let p = 0; p < ref.length; p += k) { s.agree += argmax(ref, p, k) === argmax(got, p, k) ? 1 : 0; s.total++; }
        for (let q = 0; q < ref.length; q++) { s.maxDiff = Math.max(s.maxDiff, Math.abs(ref[q] - got[q])); s.range = Math.max(s.range, Math.abs(ref[q])); }
      });
    }
  } finally { runners.forEach((rn) => rn.dispose()); model.dispose(); }
  const median = (v: number[]) => { const t = [...v].sort((a, b) => a - b); return t.length % 2 ? t[(t.length - 1) / 2] : (t[t.length / 2 - 1] + t[t.length / 2]) / 2; };
  const manifest: Manifest = {
    format: BUNDLE_FORMAT,
    task: config.task,
    kind: config.kind,
    classes: seg ? CITYSCAPES_CLASSES.map((name, id) => ({ id, name, color: CITYSCAPES_PALETTE[id] })) : ckpt.meta.classes.map((name, id) => ({ id, name })),
    input: { height: hw[0], width: hw[1], channels: config.data.channels, layout: 'NHWC', normalisation: 'x/127.5-1' },
    models: files,
    training: { checkpoint: path.resolve(o.checkpoint), step: ckpt.meta.step, config, metrics: lastMetrics(o.checkpoint) },
    calibration: { source: o.calibrate ? path.resolve(o.calibrate) : 'random uniform frames in [-1, 1]', frames: inputs.length },
    parity: runners.map((rn, j) => ({
      precision: rn.file.precision, format: rn.file.format, bytes: rn.file.bytes, latencyMs: median(stats[j].times), threads: rn.threads,
      maxRelDiffVsTfjs: stats[j].maxDiff / Math.max(stats[j].range, 1e-12), labelAgreement: stats[j].agree / stats[j].total, frames: inputs.length,
    })),
    createdAt: new Date().toISOString(),
  };
  ManifestSchema.parse(manifest);
  fs.writeFileSync(path.join(o.out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** A graph model from its model.json and the weights file beside it (pure tfjs has no file:// loader). */
export async function loadGraphModelFile(file: string): Promise<tf.GraphModel> {
  const m = JSON.parse(fs.readFileSync(file, 'utf8')) as { modelTopology: object; weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] };
  // Every group's shards, in manifest order: the order the weight specs are laid out in.
  const data = Buffer.concat(m.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(path.dirname(file), p)))));
  return tf.loadGraphModel(tf.io.fromMemory({ modelTopology: m.modelTopology, weightSpecs: m.weightsManifest.flatMap((g) => g.weights), weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) }));
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
