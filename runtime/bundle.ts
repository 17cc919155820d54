/**
 * Bundle -> inference: the one code path every deployed model runs, in serve/, streams/ and in
 * convert's own parity check. `openBundle` picks a model file of the bundle (by runtime and
 * precision, or the fastest one whose parity stayed within a point of float32), checks its sha256,
 * loads it in TFLite or tfjs, and segments frames given as bytes at the bundle's input size.
 */
import { readManifest, readModelFile, type DriftCalibration, type Manifest, type ModelFile } from '../core/bundle';
import { calibrateDrift, driftScore } from '../core/drift';
import { UserError } from '../core/errors';
import { pixelsToSigned } from '../core/pixels';
import { argmaxLabels } from './image';
import { loadTflite } from './tflite';
import { upsampleArgmax } from './upsample-labels';

export const RUNTIMES = ['tflite', 'tfjs'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];
export const PRECISIONS = ['fp32', 'fp16', 'uint8', 'int8'] as const;
export type Precision = (typeof PRECISIONS)[number];

const runtimeOf = (f: ModelFile): RuntimeName | undefined => (f.format === 'tflite' ? 'tflite' : f.format === 'tfjs-graph' ? 'tfjs' : undefined);

/** What a loaded model needs of its manifest: the input and how many classes its logits have. */
export interface ModelSpec { kind: Manifest['kind']; input: Manifest['input']; classes: number }

export interface RunOutput { output: Float32Array | Int32Array | Uint8Array | Int8Array; features?: Float32Array }
export interface Prediction {
  /** Class ids: one per pixel of the bundle input (segmenters), or one (classifiers). */
  labels: Uint8Array;
  /** Drift of this frame from the target domain (core/drift.ts); null where the file has no calibration. */
  drift: number | null;
}

export interface LoadedModel {
  file: ModelFile;
  runtime: RuntimeName;
  spec: ModelSpec;
  /** The most frames one call computes at once: TFLite files have a fixed batch (1), tfjs any. */
  maxBatch: number;
  /** Normalised float frames (NHWC, one array per frame) -> the file's raw outputs per frame. */
  run(frames: Float32Array[]): RunOutput[];
  /** Frames as bytes (RGB or grey, 0..255) at the bundle's input size -> labels and drift per frame. */
  segment(pixels: Uint8Array[]): Prediction[];
  dispose(): void;
}

export interface OpenOptions { runtime?: RuntimeName; precision?: Precision; threads?: number }

/**
 * The file to run. Explicit runtime and/or precision narrow the choice; among what remains the
 * fastest by the parity table's latency whose quality stayed within 1 point of float32: its score
 * drop vs the fp32 TFLite file <= 0.01 where convert ran --eval, else agreement with the tfjs
 * training model's labels >= 99%. When none passes, float32 (TFLite first).
 */
export function selectModel(m: Manifest, o: Pick<OpenOptions, 'runtime' | 'precision'> = {}): ModelFile {
  return chooseModel(m, o).file;
}

/** selectModel's choice and why it was made, in words a client can read (GET /v1/model). */
export function chooseModel(m: Manifest, o: Pick<OpenOptions, 'runtime' | 'precision'> = {}): { file: ModelFile; why: string } {
  const asked = [o.runtime && `runtime ${o.runtime}`, o.precision && `precision ${o.precision}`].filter(Boolean).join(', ');
  const runnable = m.models.filter((f) => runtimeOf(f) !== undefined);
  const candidates = runnable.filter((f) => (!o.runtime || runtimeOf(f) === o.runtime) && (!o.precision || f.precision === o.precision));
  const have = runnable.map((f) => `${runtimeOf(f)}/${f.precision}`).join(', ') || 'none';
  if (candidates.length === 0) throw new UserError(`The bundle has no ${[o.runtime, o.precision].filter(Boolean).join(' ')} model (it has: ${have}).`, 'Pick one of those with --runtime and --precision, or convert again with the precision you need.');
  if (candidates.length === 1) return { file: candidates[0], why: asked ? `the bundle's one model with ${asked}` : 'the bundle\'s only model this runtime can run' };
  const row = (f: ModelFile) => m.parity.find((p) => p.format === f.format && p.precision === f.precision);
  const good = (f: ModelFile) => {
    const r = row(f);
    if (!r) return false;
    return r.scoreDropVsFp32 !== undefined ? r.scoreDropVsFp32 <= 0.01 : r.labelAgreement >= 0.99;
  };
  const latency = (f: ModelFile) => row(f)?.latencyMs ?? Infinity;
  const passing = candidates.filter(good).sort((a, b) => latency(a) - latency(b));
  const among = asked ? ` among the models with ${asked}` : '';
  if (passing.length) return { file: passing[0], why: `the fastest${among} whose parity stayed within 1 point of float32 at conversion (${latency(passing[0]).toFixed(1)} ms a frame there)` };
  // None measured within a point: float32 (TFLite first), which is what the others are judged against.
  const fp32 = candidates.filter((f) => f.precision === 'fp32').sort((a, b) => Number(b.format === 'tflite') - Number(a.format === 'tflite'));
  if (fp32[0]) return { file: fp32[0], why: `float32${among}: no model measured within 1 point of it at conversion` };
  return { file: [...candidates].sort((a, b) => latency(a) - latency(b))[0], why: `the fastest${among}: none has a float32 reference or passing parity` };
}

function checkFrame(spec: ModelSpec, p: Uint8Array, i: number): void {
  const { height, width, channels } = spec.input;
  if (p.length !== height * width * channels) throw new UserError(`Frame ${i} has ${p.length} values; the model takes ${height}x${width}x${channels}.`, 'Resize frames to the bundle input (runtime/image decodeToInput).');
}

/**
 * One frame's model output -> its labels: one per pixel of the input (segmenters; logits at the
 * file's output stride are upsampled here, exactly as a resize inside the model would have), or one
 * (classifiers). The one definition serving, video and convert's parity check use.
 */
export function outputLabels(spec: ModelSpec, file: Pick<ModelFile, 'output' | 'outputStride' | 'file'>, output: ArrayLike<number>): Uint8Array {
  if (spec.kind !== 'segment') return file.output === 'labels' ? Uint8Array.from(output) : argmaxLabels(output, spec.classes);
  const { height: h, width: w } = spec.input;
  const s = file.outputStride ?? 1;
  const sh = h / s, sw = w / s, k = file.output === 'labels' ? 1 : spec.classes;
  if (output.length !== sh * sw * k) throw new UserError(`${file.file} outputs ${output.length} values; its manifest says ${sh}x${sw}${k > 1 ? `x${k}` : ''} (input ${h}x${w}, output stride ${s}).`, 'The bundle\'s files and manifest disagree: convert it again.');
  if (file.output === 'labels') return Uint8Array.from(output);
  return s === 1 ? argmaxLabels(output, k) : upsampleArgmax(output, sh, sw, k, h, w);
}

/** One frame's outputs (copies or views) -> its labels and drift: the one definition both paths use. */
function prediction(spec: ModelSpec, file: ModelFile, output: ArrayLike<number>, features?: ArrayLike<number>): Prediction {
  return {
    labels: outputLabels(spec, file, output),
    drift: features && file.drift ? driftScore(features, file.drift) : null,
  };
}

/** A file's output stride against the input: what outputLabels needs, checked when the file loads. */
function checkStride(spec: ModelSpec, file: ModelFile): void {
  const s = file.outputStride ?? 1;
  if (s === 1) return;
  if (spec.kind !== 'segment' || file.output !== 'logits' || spec.input.height % s || spec.input.width % s) {
    throw new UserError(`${file.file}: output stride ${s} needs a segmenter's logits and an input divisible by it (this is a ${spec.kind} file with ${file.output} output at ${spec.input.height}x${spec.input.width}).`, 'Convert the bundle again.');
  }
}

function predictor(spec: ModelSpec, file: ModelFile, run: (frames: Float32Array[]) => RunOutput[]): (pixels: Uint8Array[]) => Prediction[] {
  return (pixels) => {
    pixels.forEach((p, i) => checkFrame(spec, p, i));
    return run(pixels.map((p) => pixelsToSigned(p) as Float32Array)).map(({ output, features }) => prediction(spec, file, output, features));
  };
}

/** A file's drift calibration from its own pooled features on target frames (convert, and hand-built bundles). */
export function calibrateModelDrift(model: LoadedModel, frames: Float32Array[], feature: string): DriftCalibration {
  return calibrateDrift(frames.map((x) => {
    const f = model.run([x])[0].features;
    if (!f) throw new Error(`${model.file.file} has no features output to calibrate drift on`);
    return f;
  }), feature);
}

/** Loads one model file of a bundle directory (sha256 checked) for frames of `spec`. */
export async function openModelFile(dir: string, file: ModelFile, spec: ModelSpec, threads = 1): Promise<LoadedModel> {
  const runtime = runtimeOf(file);
  checkStride(spec, file);
  if (!runtime) throw new UserError(`Bundle file ${file.file} is a ${file.format} model, which the runtime does not run.`, 'Convert again: bundles hold TFLite and tfjs graph models.');
  const { bytes, weights } = readModelFile(dir, file);
  const { height: h, width: w, channels: c } = spec.input;
  let run: (frames: Float32Array[]) => RunOutput[];
  let maxBatch: number, dispose: () => void;
  let fastSegment: LoadedModel['segment'] | undefined;
  if (runtime === 'tflite') {
    const model = loadTflite(bytes, { threads });
    maxBatch = model.inputShape[0];
    const fi = model.outputNames.indexOf('features'), hasFeatures = fi >= 0;
    dispose = () => model.dispose();
    run = (frames) => {
      const out: RunOutput[] = [];
      for (let i = 0; i < frames.length; i += maxBatch) {
        const chunk = frames.slice(i, i + maxBatch);
        // A batch-N file needs N frames: pad the last chunk and drop what the padding produced.
        const x = new Float32Array(maxBatch * h * w * c);
        chunk.forEach((f, j) => x.set(f, j * f.length));
        const outs = model.runAll(x);
        const per = outs[0].length / maxBatch, perF = hasFeatures ? outs[fi].length / maxBatch : 0;
        chunk.forEach((_, j) => out.push({ output: outs[0].slice(j * per, (j + 1) * per), features: hasFeatures ? Float32Array.from(outs[fi].subarray(j * perF, (j + 1) * perF)) : undefined }));
      }
      return out;
    };
    // The serving path: pixels normalised straight into the input tensor, labels read off the
    // output tensor in place; the same arithmetic as run() + predictor (a test holds them equal).
    const perFrame = h * w * c;
    fastSegment = (pixels) => {
      const preds: Prediction[] = [];
      for (let i = 0; i < pixels.length; i += maxBatch) {
        const chunk = pixels.slice(i, i + maxBatch);
        const dst = model.inputView();
        chunk.forEach((p, j) => {
          checkFrame(spec, p, i + j);
          pixelsToSigned(p, 255, dst.subarray(j * perFrame, (j + 1) * perFrame));
        });
        model.invoke();
        const o = model.outputView(0), per = o.length / maxBatch;
        const f = hasFeatures ? model.outputView(fi) : undefined, perF = f ? f.length / maxBatch : 0;
        chunk.forEach((_, j) => preds.push(prediction(spec, file, o.subarray(j * per, (j + 1) * per), f?.subarray(j * perF, (j + 1) * perF))));
      }
      return preds;
    };
  } else {
    // tfjs loads only for tfjs files: TFLite workers start without it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    await (require('../core/backend') as typeof import('../core/backend')).initBackend({ quiet: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { loadGraphModel, placeholderBatch, runGraph, graphHasNode } = require('./tfjs') as typeof import('./tfjs');
    const model = await loadGraphModel(bytes, weights);
    const fixed = placeholderBatch(model);
    maxBatch = fixed || Infinity;
    const names = graphHasNode(bytes, 'features') ? ['output', 'features'] : ['output'];
    dispose = () => model.dispose();
    run = (frames) => {
      const out: RunOutput[] = [];
      const step = Number.isFinite(maxBatch) ? maxBatch : frames.length;
      for (let i = 0; i < frames.length; i += step) {
        const chunk = frames.slice(i, i + step);
        const n = fixed || chunk.length;
        const x = new Float32Array(n * h * w * c);
        chunk.forEach((f, j) => x.set(f, j * f.length));
        const [o, f] = runGraph(model, x, [n, h, w, c], names);
        const per = o.length / n, perF = f ? f.length / n : 0;
        chunk.forEach((_, j) => out.push({ output: o.slice(j * per, (j + 1) * per), features: f ? Float32Array.from(f.subarray(j * perF, (j + 1) * perF)) : undefined }));
      }
      return out;
    };
  }
  return { file, runtime, spec, maxBatch, run, segment: fastSegment ?? predictor(spec, file, run), dispose };
}

export interface Bundle extends LoadedModel { dir: string; manifest: Manifest }

/** Opens a bundle directory: its manifest, the chosen model file loaded and verified. */
export async function openBundle(dir: string, o: OpenOptions = {}): Promise<Bundle> {
  const manifest = readManifest(dir);
  const file = selectModel(manifest, o);
  const m = await openModelFile(dir, file, specOf(manifest), o.threads ?? 1);
  return { ...m, dir, manifest };
}

export const specOf = (m: Manifest): ModelSpec => ({ kind: m.kind, input: m.input, classes: m.classes.length });
