/**
 * `i2i convert`: a training checkpoint -> a deployable bundle (core/bundle.ts). This stage writes
 * the TFLite and tfjs files of the inference path (f then h), loads each in its deployment runtime,
 * runs them on check frames next to the parity reference (the training model's inference function,
 * node by node: convert/reference.ts) and records size, latency and agreement in the manifest.
 * The bundle is built in a staging folder beside --out and renamed into place when complete
 * (convert/staging.ts); each long phase reports its progress (convert/progress.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUNDLE_FILES, bundleFormat, parityRows, sha256, writeManifest, type Manifest, type ModelFile } from '../core/bundle';
import { isUserError, UserError } from '../core/errors';
import { calibrateDrift } from '../core/drift';
import { median } from '../core/stats';
import { CITYSCAPES_CLASSES, CITYSCAPES_PALETTE } from '../core/labels';
import { openRun, type RunWeights } from '../train/run';
import { readCheckpointMeta } from '../train/checkpoint';
import { loadedFrames, recalibrateBatchNorm, sourceBatches } from '../train/bn-recalibrate';
import { loadEvalSet } from '../train/evaluate-run';
import { calibrationFiles, conversionFrames, defaultInput, loadFrames } from './frames';
import type { Config } from '../train/config';
import { iouFromConfusion } from '../train/eval-seg';
import { graphFlops, inferenceGraph, outputStride, rawInferenceGraph, type Graph, type RawGraph, type Upsample } from './graph';
import { measureParity, type Runner } from './parity';
import { phases } from './progress';
import { activationBytes, quantizeGraphAsync, rangeRuntime } from './quantize';
import { graphReference, type Reference } from './reference';
import { stageBundle } from './staging';
import { openModelFile, type ModelSpec } from '../runtime/bundle';
import { writeTfjsGraph, type WeightPrecision } from './tfjs-graph';
import { writeTflite } from './tflite';

export interface ConvertOptions {
  checkpoint: string;
  out: string;
  /** fp32 (TFLite + tfjs), fp16 and uint8 (tfjs weights), int8 (full-integer TFLite). */
  precisions?: string[];
  /**
   * Segmenters: the input size of the exported model. Default: the first --calibrate frame (else
   * --eval's, else the run's target frames) at the training scale, sides multiples of 8 (convert/frames.ts
   * defaultInput); with no frames to read, required. Classifiers: always their training size.
   */
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
  /** Put the arg-max inside the models: label maps out (uint8 in TFLite, int32 in tfjs); implies upsample 'model'. */
  argmax?: boolean;
  /**
   * Segmenters: where logits are upsampled to the input size. Default 'runtime': the models end at
   * the encoder's output stride (1/8) and the runtime upsamples exactly (runtime/upsample-labels.ts),
   * 5x faster at 512x1024 than TFLite's resize of 19 channels; 'model' ends them with the resize,
   * for runtimes other than this project's. With --argmax, 'model'.
   */
  upsample?: Upsample;
  /** Precise BN: re-estimate f's batch-norm statistics on the first N --calibrate frames before export (the run is not changed). */
  bnFrames?: number;
  /** 'ema-teacher': export a self-training run's EMA teacher (f_ema, h_ema) instead of its student. */
  weights?: RunWeights;
  threads?: number;
  /** Replace an existing non-empty --out (only once the new bundle is complete). */
  force?: boolean;
  /** Aborting stops the conversion between frames; --out is left as it was. */
  signal?: AbortSignal;
  progress?: (l: string) => void;
  /** At most one progress line per phase every this many ms (default 5000; the last frame always). */
  progressEveryMs?: number;
}

const PRECISIONS = ['fp32', 'fp16', 'uint8', 'int8'];

export async function convert(o: ConvertOptions): Promise<Manifest> {
  const log = o.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const precisions = o.precisions ?? ['fp32', 'fp16', 'uint8'];
  const unknown = precisions.filter((p) => !PRECISIONS.includes(p));
  if (unknown.length) throw new UserError(`Unknown precision ${unknown.join(',')}.`, `Use ${PRECISIONS.join(', ')} (comma-separated).`);
  if (precisions.includes('int8') && !o.calibrate) throw new UserError('--precision int8 needs --calibrate: int8 activation ranges are measured on target-domain frames.', 'Pass --calibrate <folder of target frames, dataset root or video file>.');
  // Refuses an existing --out (without force) before any work; the bundle is built beside it.
  const staging = stageBundle(o.out, o.force);
  const existed = fs.existsSync(o.out);
  const doing: Doing = { phase: 'reading the checkpoint' };
  try {
    log(`[convert] building the bundle in ${staging.dir}; it replaces ${o.out} only when complete`);
    const manifest = await build(o, precisions, staging.dir, log, doing);
    doing.phase = `moving the bundle into ${o.out}`;
    staging.commit();
    log(`[convert] bundle complete: ${o.out}`);
    return manifest;
  } catch (e) {
    staging.discard();
    throw explain(e, doing, o, existed);
  }
}

/** Memory failures: wasm's heap (at most 4 GiB; emscripten aborts), V8 array buffers, TFLite's arena. */
const OUT_OF_MEMORY = /Aborted\(|out of memory|Cannot enlarge memory|Array buffer allocation failed|bad_alloc|Cannot allocate memory/i;

/** The phase in hand and, once chosen, the bundle's input size: what a failure names. */
interface Doing { phase: string; input?: string }

/** A failure as the user needs it: which phase, that --out is as it was, and what to try. */
function explain(e: unknown, doing: Doing, o: ConvertOptions, existed: boolean): unknown {
  const phase = doing.phase;
  const kept = existed ? `${o.out} was left as it was` : `nothing was written to ${o.out}`;
  if (o.signal?.aborted) return new UserError(`Convert interrupted by ${String(o.signal.reason ?? 'an abort')} (phase: ${phase}); ${kept}.`);
  const msg = e instanceof Error ? e.message : String(e);
  if (isUserError(e)) return new UserError(`Convert failed (phase: ${phase}): ${msg} (${kept}.)`);
  if (OUT_OF_MEMORY.test(msg)) {
    const size = doing.input ?? (o.input ? `${o.input[0]}x${o.input[1]}` : 'not chosen yet');
    return new UserError(`Convert ran out of memory (phase: ${phase}, input ${size}): ${msg}; ${kept}.`, 'Try fewer --check-frames / --eval-frames / --calibration-frames, or a smaller --input (e.g. 256x512), or --threads 1.');
  }
  return e;  // a bug: its stack says more than a sentence would
}

/** The conversion proper, into `dir` (the staging folder); `doing.phase` names the phase in hand. */
async function build(o: ConvertOptions, precisions: string[], dir: string, log: (l: string) => void, doing: Doing): Promise<Manifest> {
  const phase = phases(log, o.progressEveryMs);
  const begin = (name: string, what: string, total?: number) => { doing.phase = name; return phase(name, what, total); };
  // Between frames: the event loop gets its turn (SIGINT/SIGTERM handlers set o.signal), and an interruption stops here.
  const breathe = async () => {
    await new Promise((r) => setImmediate(r));
    if (o.signal?.aborted) throw new Error(`interrupted: ${String(o.signal.reason)}`);
  };
  await breathe();
  const int8 = precisions.includes('int8');
  // The training model: the export graph and the parity reference are both read from its weights.
  const { model, meta } = openRun(o.checkpoint, { weights: o.weights });
  const config = meta.config;
  const seg = config.kind === 'segment';
  let hw: [number, number];
  let graph: Graph, raw: RawGraph;
  let bn: { frames: number; source: string } | undefined;
  try {
    hw = await chooseInput(o, config, log, doing);
    // --- precise BN (--bn-frames): f's (and h's) batch-norm statistics re-estimated in this model
    // only, on the first N --calibrate frames at the bundle's input size (one frame per batch; a
    // classifier's images in batches of its training size), so the graph below and the parity
    // reference are both read from the new statistics. The run on disk is not changed.
    if (o.bnFrames) {
      if (!o.calibrate) throw new UserError('--bn-frames needs --calibrate: batch-norm statistics are re-estimated on target-domain frames.', 'Pass --calibrate <folder of target frames, dataset root or video file>.');
      const bnTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'i2i-bn-'));
      try {
        const ch = config.data.channels;
        const batches = seg ? loadedFrames(await calibrationFiles(o.calibrate, o.bnFrames, bnTmp), async (f) => (await loadFrames([f], hw, ch))[0], [hw[0], hw[1], ch])
          : sourceBatches(await loadEvalSet(config, { root: o.calibrate, split: 'train', limit: o.bnFrames, flag: '--calibrate' }), config.batchSize);
        const r = await recalibrateBatchNorm(model, batches);
        bn = { frames: r.images, source: path.resolve(o.calibrate) };
        log(`[convert] batch-norm statistics of ${r.layers} layers re-estimated on ${r.images} frames of ${bn.source}`);
      } finally { fs.rmSync(bnTmp, { recursive: true, force: true }); }
    }
    // --- end of precise BN
    // (Anything that changes the model's weights or statistics before export goes here, above the graph build.)
    if (seg && o.argmax && o.upsample === 'runtime') throw new UserError('--argmax with --upsample runtime would upsample label maps by nearest neighbour and lose the class boundaries the logits place between pixels.', 'Drop --argmax (the runtime computes the exact labels from logits at the output stride), or pass --upsample model.');
    // (Classifiers have no map to upsample: --upsample does not apply to them.)
    const upsample: Upsample = o.upsample ?? (o.argmax ? 'model' : 'runtime');
    const p = begin('building the inference graph', `${config.model.encoder} at ${hw[0]}x${hw[1]}: f then h, batch norm folded${seg ? upsample === 'model' ? ', logits resized to the input in the model' : ', logits at the output stride (the runtime upsamples them)' : ''}`);
    graph = inferenceGraph(model, hw, upsample);
    // The parity reference: the same function before any graph pass (its own copy of the weights).
    raw = rawInferenceGraph(model, hw, upsample);
    p.done(`${graph.nodes.length} nodes, ${(graphFlops(graph) / 1e9).toFixed(1)} GFLOP per frame`);
  } finally {
    // Released before any frame runs: the wasm heap holds the tfjs runners and the reference.
    model.dispose();
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'i2i-convert-'));
  const channels = config.data.channels;
  // Released whatever fails (unreadable frames, a runtime error): every loaded model and the reference.
  const runners: Runner[] = [];
  let reference: Reference | undefined;
  try {
    const pf = begin('reading the calibration and check frames', `at ${hw[0]}x${hw[1]}, from ${[o.calibrate, o.eval].filter(Boolean).join(' and ') || 'a seeded random generator'}`);
    const { calib: calibFrames, checks, evalSplit } = await conversionFrames(config, o, hw, tmp);
    pf.done(`${calibFrames.length} for calibration, ${checks.length} for the parity check`);
    await breathe();

    const files: Manifest['models'] = [];
    const threads = o.threads ?? 1;
    const output = o.argmax ? 'labels' as const : 'logits' as const;
    const stride = outputStride(graph);
    const strided = stride > 1 ? { outputStride: stride } : {};
    const k = seg ? CITYSCAPES_CLASSES.length : meta.classes.length;
    const spec: ModelSpec = { kind: config.kind, input: { height: hw[0], width: hw[1], channels, layout: 'NHWC', normalisation: 'x/127.5-1' }, classes: k };
    const features = graph.features !== undefined;
    const written = (f: ModelFile) => log(`[convert]   wrote ${f.file} (${f.format} ${f.precision}, ${(f.bytes / 2 ** 20).toFixed(2)} MiB)`);
    const addTflite = async (precision: 'fp32' | 'int8', write: () => Uint8Array) => {
      const p = begin(`writing the ${precision} TFLite file`, 'flatbuffer from the IR, then loaded in the TFLite runtime');
      const bytes = write();
      const file = BUNDLE_FILES.tflite(precision);
      fs.writeFileSync(path.join(dir, file), bytes);
      const entry: ModelFile = { file, format: 'tflite', precision, bytes: bytes.length, sha256: sha256(bytes), output, ...strided, features };
      files.push(entry);
      written(entry);
      runners.push({ file: entry, model: await openModelFile(dir, entry, spec, threads), threads });
      p.done();
      await breathe();
    };
    if (precisions.includes('fp32')) await addTflite('fp32', () => writeTflite(graph, { argmax: o.argmax }));
    let calibration: Manifest['calibration'];
    if (int8) {
      const n = calibFrames.length;
      const runtime = rangeRuntime(graph);
      const where = runtime === 'tflite' ? 'in TFLite' : `node by node in tfjs (TFLite's calibration form would hold ${(activationBytes(graph) / 2 ** 30).toFixed(1)} GiB of activations at once)`;
      const p = begin('int8 calibration', `activation ranges ${where} on frames of ${o.calibrate}, two passes (before and after channel equalisation)`, 2 * n);
      const q = await quantizeGraphAsync(graph, calibFrames, { threads, runtime, afterFrame: async (pass, i) => { p.tick(`pass ${pass}, frame ${i + 1}/${n}`); await breathe(); } });
      p.done();
      await addTflite('int8', () => writeTflite(q.graph, { int8: q.params, argmax: o.argmax }));
    }
    if (calibFrames.length) calibration = { source: path.resolve(o.calibrate!), frames: calibFrames.length };
    for (const prec of precisions.filter((q): q is WeightPrecision => q === 'fp32' || q === 'fp16' || q === 'uint8')) {
      const p = begin(`writing the tfjs ${prec} graph model`, 'model.json and weights.bin, then loaded in tfjs');
      const { modelJson, weights: wbytes } = writeTfjsGraph(graph, prec, o.argmax);
      const d = BUNDLE_FILES.tfjsDir(prec);
      fs.mkdirSync(path.join(dir, d), { recursive: true });
      const json = Buffer.from(JSON.stringify(modelJson));
      fs.writeFileSync(path.join(dir, d, 'model.json'), json);
      fs.writeFileSync(path.join(dir, d, 'weights.bin'), wbytes);
      const entry: ModelFile = { file: `${d}/model.json`, format: 'tfjs-graph', precision: prec, bytes: json.length + wbytes.length, sha256: sha256(json), weights: { file: `${d}/weights.bin`, bytes: wbytes.length, sha256: sha256(wbytes) }, output, ...strided, features };
      files.push(entry);
      written(entry);
      runners.push({ file: entry, model: await openModelFile(dir, entry, spec, 1), threads: 1 });
      p.done();
      await breathe();
    }

    // Drift: each file's own pooled features on the calibration frames (int8 rounding and the
    // equalisation's channel scales make every precision's features its own).
    if (features && calibFrames.length >= 3) {  // held-out distances need 2 others (core/drift)
      for (const rn of runners) {
        const p = begin(`drift calibration (${rn.file.format} ${rn.file.precision})`, 'pooled encoder features of the file itself', calibFrames.length);
        const feats: Float32Array[] = [];
        for (const x of calibFrames) {
          const f = rn.model.run([x])[0].features;
          if (!f) throw new Error(`${rn.file.file} has no features output to calibrate drift on`);
          feats.push(f);
          p.tick();
          await breathe();
        }
        rn.file.drift = calibrateDrift(feats, `${graph.shapes[graph.features!].slice(1).join('x')} encoder output, mean over H and W`);
        p.done();
      }
    }

    // Parity: the same frames through the reference and every written file.
    reference = graphReference(raw);
    const p = begin('parity check', `each frame through the reference (the training model's inference function, node by node in tfjs) and ${runners.map((rn) => `${rn.file.format} ${rn.file.precision}`).join(', ')}`, checks.length);
    const { stats, refConf } = await measureParity(reference, runners, checks, { spec, stride, argmax: o.argmax, afterFrame: async (_i, detail) => { p.tick(detail); await breathe(); } });
    p.done();
    // Segmenters: mIoU over the confusion matrix; classifiers: accuracy (its trace over its total).
    const score = (c: Float64Array) => (seg ? iouFromConfusion(c, k).mIoU : iouFromConfusion(c, k).pixelAccuracy);
    const fp32Tflite = runners.findIndex((rn) => rn.file.format === 'tflite' && rn.file.precision === 'fp32');
    const manifest: Manifest = {
      format: bundleFormat(files),
      task: config.task,
      kind: config.kind,
      classes: seg ? CITYSCAPES_CLASSES.map((name, id) => ({ id, name, color: CITYSCAPES_PALETTE[id] })) : meta.classes.map((name, id) => ({ id, name })),
      input: { height: hw[0], width: hw[1], channels, layout: 'NHWC', normalisation: 'x/127.5-1' },
      models: files,
      training: { checkpoint: path.resolve(o.checkpoint), step: meta.step, config, metrics: lastMetrics(o.checkpoint), ...(o.weights === 'ema-teacher' && { weights: o.weights }), ...(bn && { bnFrames: bn.frames, bnSource: bn.source }), ...teacherOf(config) },
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
    doing.phase = 'writing the manifest';
    writeManifest(dir, manifest);
    return manifest;
  } finally {
    runners.forEach((rn) => rn.model.dispose());
    reference?.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The bundle's input size, printed with its reason (a segmenter's default follows its frames' aspect). */
async function chooseInput(o: ConvertOptions, config: Config, log: (l: string) => void, doing: Doing): Promise<[number, number]> {
  let hw: [number, number], why: string, warning: string | undefined;
  if (o.input) [hw, why] = [o.input, '--input'];
  else if (config.kind !== 'segment') [hw, why] = [[config.data.imageSize, config.data.imageSize], "the classifier's training size"];
  else {
    doing.phase = 'choosing the input size';
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'i2i-input-'));
    try {
      const c = await defaultInput(config, o.checkpoint, o, tmp);
      [hw, why, warning] = [c.hw, c.why, c.warning];
    } finally { fs.rmSync(tmp, { recursive: true, force: true }); }
  }
  doing.input = `${hw[0]}x${hw[1]}`;
  log(`[convert] input ${doing.input} (HxW): ${why}`);
  if (warning) log(`[convert] warning: ${warning}`);
  return hw;
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

/** A distilled student's teacher for its manifest: the run's path, with its task, method, encoder and step if it is still there. */
function teacherOf(config: Config): { teacher?: NonNullable<Manifest['training']['teacher']> } {
  const d = config.distill;
  const run = config.weights.kd > 0 ? d.teacher : undefined;
  if (!run) return {};
  // What was recorded when distillation started, not the teacher's folder today (it may have
  // trained on, been replaced or deleted); runs from before that record read the folder.
  const fingerprint = d.teacherFingerprint ? { fingerprint: d.teacherFingerprint } : {};
  if (d.teacherTask && d.teacherMethod && d.teacherEncoder) {
    return { teacher: { run, step: d.teacherStep, task: d.teacherTask, method: d.teacherMethod, encoder: d.teacherEncoder, ...fingerprint } };
  }
  try {
    const m = readCheckpointMeta(run);
    return { teacher: { run, step: d.teacherStep ?? m.step, task: m.config.task, method: m.config.method, encoder: m.config.model.encoder, ...fingerprint } };
  } catch {
    return { teacher: { run, step: d.teacherStep, ...fingerprint } };
  }
}
