/**
 * `i2i convert`: a training checkpoint -> a deployable bundle (core/bundle.ts). This stage writes
 * the float32 TFLite model of the inference path (f then h), runs it in the real TFLite runtime on
 * check frames next to the tfjs model, and records size, latency and agreement in the manifest.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '../core/tf';
import { BUNDLE_FILES, BUNDLE_FORMAT, parityRows, sha256, writeManifest, type Manifest, type ModelFile } from '../core/bundle';
import { UserError } from '../core/errors';
import { median } from '../core/stats';
import { CITYSCAPES_CLASSES, CITYSCAPES_PALETTE } from '../core/labels';
import { openRun } from '../train/run';
import { accumulateConfusion, iouFromConfusion } from '../train/eval-seg';
import { inferenceGraph } from './graph';
import { conversionFrames } from './frames';
import { quantizeGraph } from './quantize';
import { calibrateModelDrift, openModelFile, type LoadedModel, type ModelSpec } from '../runtime/bundle';
import { argmaxLabels } from '../runtime/image';
import { writeTfjsGraph, type WeightPrecision } from './tfjs-graph';
import { writeTflite } from './tflite';

export interface ConvertOptions {
  checkpoint: string;
  out: string;
  /** fp32 (TFLite + tfjs), fp16 and uint8 (tfjs weights), int8 (full-integer TFLite). */
  precisions?: string[];
  /** Segmenters: the input size of the exported model (default: the training crop). */
  input?: [number, number];
  /**
   * Target-domain frames: for segmenters a folder, a dataset root or a video file; for classifiers
   * the target dataset's root (read by its reader, train split). int8 calibrates on them; without
   * --eval the parity check runs on them.
   */
  calibrate?: string;
  /** How many frames calibrate int8 (default 32). */
  calibrationFrames?: number;
  /** How many frames the parity check runs when there is no --eval (default 8). */
  checkFrames?: number;
  /**
   * A labelled target root to score every file on: segmenters, mIoU on a Cityscapes-layout root
   * (split val); classifiers, accuracy on the run's target domain read from this root (its default split).
   */
  eval?: string;
  evalSplit?: string;
  /** At most this many labelled frames (default 100 scenes, 2000 digits). */
  evalFrames?: number;
  /** Put the arg-max inside the models: label maps out (uint8 in TFLite, int32 in tfjs). */
  argmax?: boolean;
  threads?: number;
  progress?: (l: string) => void;
}

const PRECISIONS = ['fp32', 'fp16', 'uint8', 'int8'];
/** A written file, loaded by the deployment runtime itself: parity measures the code that serves. */
type Runner = { file: ModelFile; model: LoadedModel; threads: number };

export async function convert(o: ConvertOptions): Promise<Manifest> {
  const progress = o.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const precisions = o.precisions ?? ['fp32', 'fp16', 'uint8'];
  const unknown = precisions.filter((p) => !PRECISIONS.includes(p));
  if (unknown.length) throw new UserError(`Unknown precision ${unknown.join(',')}.`, `Use ${PRECISIONS.join(', ')} (comma-separated).`);
  const int8 = precisions.includes('int8');
  if (int8 && !o.calibrate) throw new UserError('--precision int8 needs --calibrate: int8 activation ranges are measured on target-domain frames.', 'Pass --calibrate <folder of target frames, dataset root or video file>.');
  // The training model itself: the export graph is read from its weights, and the parity check
  // runs it next to every exported file.
  const { model, meta } = openRun(o.checkpoint);
  const config = meta.config;
  const seg = config.kind === 'segment';
  const hw: [number, number] = o.input ?? [config.data.imageSize, config.data.imageSize];
  let graph: ReturnType<typeof inferenceGraph>;
  let tmp: string;
  try {
    graph = inferenceGraph(model, hw);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'i2i-convert-'));
  } catch (e) {
    model.dispose();
    throw e;
  }
  const channels = config.data.channels;
  // Released whatever fails (unreadable frames, a runtime error): the training model and every loaded model.
  const runners: Runner[] = [];
  let modelLive = true;
  try {
    const { calib: calibFrames, checks, evalSplit } = await conversionFrames(config, o, hw, tmp);

    fs.mkdirSync(o.out, { recursive: true });
    const files: Manifest['models'] = [];
    const threads = o.threads ?? 1;
    const output = o.argmax ? 'labels' as const : 'logits' as const;
    const k = seg ? CITYSCAPES_CLASSES.length : meta.classes.length;
    const spec: ModelSpec = { kind: config.kind, input: { height: hw[0], width: hw[1], channels, layout: 'NHWC', normalisation: 'x/127.5-1' }, classes: k };
    const features = graph.features !== undefined;
    const addTflite = async (precision: 'fp32' | 'int8', bytes: Uint8Array) => {
      const file = BUNDLE_FILES.tflite(precision);
      fs.writeFileSync(path.join(o.out, file), bytes);
      const entry: ModelFile = { file, format: 'tflite', precision, bytes: bytes.length, sha256: sha256(bytes), output, features };
      files.push(entry);
      runners.push({ file: entry, model: await openModelFile(o.out, entry, spec, threads), threads });
    };
    if (precisions.includes('fp32')) await addTflite('fp32', writeTflite(graph, { argmax: o.argmax }));
    let calibration: Manifest['calibration'];
    if (int8) {
      progress(`[convert] calibrating int8 on ${calibFrames.length} frames of ${o.calibrate}`);
      const q = quantizeGraph(graph, calibFrames, threads);
      await addTflite('int8', writeTflite(q.graph, { int8: q.params, argmax: o.argmax }));
    }
    if (calibFrames.length) calibration = { source: path.resolve(o.calibrate!), frames: calibFrames.length };
    for (const p of precisions.filter((q): q is WeightPrecision => q === 'fp32' || q === 'fp16' || q === 'uint8')) {
      const { modelJson, weights: wbytes } = writeTfjsGraph(graph, p, o.argmax);
      const dir = path.join(o.out, BUNDLE_FILES.tfjsDir(p));
      fs.mkdirSync(dir, { recursive: true });
      const json = Buffer.from(JSON.stringify(modelJson));
      fs.writeFileSync(path.join(dir, 'model.json'), json);
      fs.writeFileSync(path.join(dir, 'weights.bin'), wbytes);
      const d = BUNDLE_FILES.tfjsDir(p);
      const entry: ModelFile = { file: `${d}/model.json`, format: 'tfjs-graph', precision: p, bytes: json.length + wbytes.length, sha256: sha256(json), weights: { file: `${d}/weights.bin`, bytes: wbytes.length, sha256: sha256(wbytes) }, output, features };
      files.push(entry);
      runners.push({ file: entry, model: await openModelFile(o.out, entry, spec, 1), threads: 1 });
    }
    for (const f of files) progress(`[convert] wrote ${path.join(o.out, f.file)} (${f.format} ${f.precision}, ${(f.bytes / 2 ** 20).toFixed(2)} MiB)`);

    // Drift: each file's own pooled features on the calibration frames (int8 rounding and the
    // equalisation's channel scales make every precision's features its own).
    if (features && calibFrames.length >= 2) {
      for (const rn of runners) rn.file.drift = calibrateModelDrift(rn.model, calibFrames, `${graph.shapes[graph.features!].slice(1).join('x')} encoder output, mean over H and W`);
      progress(`[convert] drift calibrated on ${calibFrames.length} target frames`);
    }

    // Parity: the same frames through the tfjs training model (running statistics) and every exported file.
    const stats = runners.map(() => ({ maxDiff: 0, range: 0, agree: 0, total: 0, times: [] as number[], conf: new Float64Array(k * k) }));
    const refConf = new Float64Array(k * k);
    const argmax = (v: ArrayLike<number>) => argmaxLabels(v, k);
    try {
      for (const [i, { x, labels }] of checks.entries()) {
        const ref = tf.tidy(() => model.predict(tf.tensor4d(x, [1, hw[0], hw[1], channels]), 'target', seg ? hw : undefined).dataSync());
        const refLabels = argmax(ref);
        if (labels) accumulateConfusion(refConf, k, labels, refLabels);
        runners.forEach((rn, j) => {
          const t0 = process.hrtime.bigint();
          const got = rn.model.run([x])[0].output;
          const s = stats[j];
          s.times.push(Number(process.hrtime.bigint() - t0) / 1e6);
          const gotLabels = o.argmax ? got : argmax(got);
          for (let p = 0; p < refLabels.length; p++) s.agree += refLabels[p] === gotLabels[p] ? 1 : 0;
          s.total += refLabels.length;
          if (labels) accumulateConfusion(s.conf, k, labels, gotLabels);
          if (!o.argmax) for (let q = 0; q < ref.length; q++) { s.maxDiff = Math.max(s.maxDiff, Math.abs(ref[q] - got[q])); s.range = Math.max(s.range, Math.abs(ref[q])); }
        });
        if ((i + 1) % 25 === 0) progress(`[convert] parity ${i + 1}/${checks.length} frames`);
      }
    } finally { model.dispose(); modelLive = false; }
    // Segmenters: mIoU over the confusion matrix; classifiers: accuracy (its trace over its total).
    const score = (c: Float64Array) => (seg ? iouFromConfusion(c, k).mIoU : iouFromConfusion(c, k).pixelAccuracy);
    const fp32Tflite = runners.findIndex((rn) => rn.file.format === 'tflite' && rn.file.precision === 'fp32');
    const manifest: Manifest = {
      format: BUNDLE_FORMAT,
      task: config.task,
      kind: config.kind,
      classes: seg ? CITYSCAPES_CLASSES.map((name, id) => ({ id, name, color: CITYSCAPES_PALETTE[id] })) : meta.classes.map((name, id) => ({ id, name })),
      input: { height: hw[0], width: hw[1], channels, layout: 'NHWC', normalisation: 'x/127.5-1' },
      models: files,
      training: { checkpoint: path.resolve(o.checkpoint), step: meta.step, config, metrics: lastMetrics(o.checkpoint) },
      calibration,
      check: { source: o.eval ? `${path.resolve(o.eval)} (${evalSplit})` : o.calibrate ? path.resolve(o.calibrate) : 'random uniform frames in [-1, 1]', frames: checks.length },
      evaluation: o.eval ? { metric: seg ? 'mIoU' : 'accuracy', source: path.resolve(o.eval), split: evalSplit, frames: checks.length, tfjsScore: score(refConf),
        at: seg ? 'the bundle input size, labels resized by nearest neighbour' : `${hw[0]}x${hw[1]}, preprocessed as in training` } : undefined,
      parity: runners.map((rn, j) => ({
        precision: rn.file.precision, format: rn.file.format, bytes: rn.file.bytes, latencyMs: median(stats[j].times), threads: rn.threads,
        maxRelDiffVsTfjs: o.argmax ? undefined : stats[j].maxDiff / Math.max(stats[j].range, 1e-12), labelAgreement: stats[j].agree / stats[j].total, frames: checks.length,
        score: o.eval ? score(stats[j].conf) : undefined,
        scoreDropVsFp32: o.eval && fp32Tflite >= 0 ? score(stats[fp32Tflite].conf) - score(stats[j].conf) : undefined,
      })),
      createdAt: new Date().toISOString(),
    };
    writeManifest(o.out, manifest);
    return manifest;
  } finally {
    runners.forEach((rn) => rn.model.dispose());
    if (modelLive) model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function lastMetrics(run: string): unknown {
  const f = path.join(run, 'metrics.jsonl');
  if (!fs.existsSync(f)) return undefined;
  const lines = fs.readFileSync(f, 'utf8').trim().split('\n');
  try { return JSON.parse(lines[lines.length - 1]); } catch { return undefined; }
}

export function parityTable(m: Manifest): string {
  const t = parityRows(m);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(t.head), `|${t.head.map(() => '---').join('|')}|`, ...t.rows.map(line), ...(t.note ? [t.note] : [])].join('\n');
}
