/**
 * `i2i doctor`: is this machine ready to train, and does its backend compute what the reference
 * computes? It reports the backend chosen (core/backend) and why, the GPU, the native TensorFlow
 * the binding loaded, then runs a few steps of the whole method (every I2I term, every network) on
 * tiny synthetic scenes on the chosen backend and, from the same seed and the same batches, on the
 * pure-JS cpu backend, and compares the per-term losses and the encoder's gradient norm.
 *
 * Why a numerical comparison and not only "the GPU was found": a backend can load and train while
 * computing something else (tfjs-node's ResizeBilinearGrad differentiated the wrong sampling; see
 * core/upsample), and only a reference run shows it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '../core/tf';
import type { BackendInfo } from '../core/backend';
import { CITYSCAPES_CLASSES } from '../core/labels';
import { deriveSeed } from '../core/rng';
import { buildConfig, type Config } from './config';
import { Sampler } from './data/batcher';
import { sceneDomain, type BatchData } from './data/domain';
import { listScenes } from './data/segmentation';
import { writeSynth } from './data/synth';
import { I2IModel, type Batch, type Kept, type Losses } from './i2i';
import type { Mode } from './models/layers';

/** The backend every other one is compared with: tfjs's pure-JS kernels. */
export const REFERENCE = 'cpu';

/**
 * float32 on different kernels (summation order, fused ops, XNNPACK / cuDNN algorithms): the first
 * step's losses and gradient agree to ~1e-6 relative; after an Adam step (whose first updates are
 * about lr * sign(g), so a near-zero gradient entry whose sign differs moves a weight by 2 lr)
 * the losses drift apart a little more with every step. The WGAN critics' values after step 1
 * (D_x, D_y: differences of two nearly equal means; gp: a squared deviation) drift most: on the
 * cpu reference alone, images changed by 3e-6 relative (below the 8-bit data's 4e-3 steps) moved
 * them by up to 8.7e-2 at steps 2-3 (1.2e-2 with L_cyc off), wasm vs cpu 5.4e-2; step 1 checks
 * them at 1e-3.
 */
export const TOLERANCES = { firstStep: 1e-3, laterSteps: 1e-2, laterCritics: 0.2, gradNorm: 1e-3, absolute: 1e-6 };
export type Tolerances = typeof TOLERANCES;

export interface RunResult {
  backend: string;
  /** Logged values of each step (model.step's Losses). */
  losses: Losses[];
  /**
   * Global L2 norm of d(generator loss)/d(encoder weights) on the first batch, before any update,
   * with L_cyc's L1 subgradient taken at `cycleSigns` when given (see encoderGrads).
   */
  gradNorm: number;
  /** The same for L_cyc alone (absent when L_cyc is off). */
  cycGradNorm?: number;
  /** Signs of L_cyc's residuals x - g_x(f(g_y(f(x)))) and y - ... on the first batch, as Abs differentiates them (+1 or -1). */
  cycleSigns?: Float32Array[];
  stepsPerSec: number;
  /** Largest tfjs memory during the first step (tf.profile), in bytes. */
  peakBytes: number;
  /** Largest process RSS seen after a step, in bytes (both runs share the process). */
  rssPeak: number;
}

/**
 * Values made of the WGAN image critics' scores (their own losses, gp, and L_tr, the generator's
 * side: minus their mean scores), compared after step 1 at TOLERANCES.laterCritics (L_tr at step 3:
 * 2.5e-2 wasm vs cpu with seed 2).
 */
const WGAN_CRITIC_VALUES = new Set(['D_x', 'D_y', 'gp', 'tr']);

export interface Check { item: string; value: number; reference: number; relative: number; tolerance: number; pass: boolean }

/**
 * Every logged value of every step and the gradient norm, `run` against `ref`:
 * |a - b| <= tol * max(|a|, |b|) + absolute.
 */
export function compareRuns(run: RunResult, ref: RunResult, tol: Tolerances = TOLERANCES): Check[] {
  const check = (item: string, a: number, b: number, t: number): Check => {
    const diff = Math.abs(a - b), scale = Math.max(Math.abs(a), Math.abs(b));
    const pass = Number.isFinite(a) && Number.isFinite(b) && diff <= t * scale + tol.absolute;
    return { item, value: a, reference: b, relative: scale > 0 ? diff / scale : 0, tolerance: t, pass };
  };
  const checks = [check('step 1 |d L_G / d f|', run.gradNorm, ref.gradNorm, tol.gradNorm)];
  if (ref.cycGradNorm !== undefined) checks.push(check('step 1 |d L_cyc / d f|', run.cycGradNorm ?? NaN, ref.cycGradNorm, tol.gradNorm));
  ref.losses.forEach((terms, i) => {
    for (const [k, b] of Object.entries(terms) as [string, number][]) {
      const a = (run.losses[i] as Record<string, number | undefined> | undefined)?.[k];
      const later = WGAN_CRITIC_VALUES.has(k) ? tol.laterCritics : tol.laterSteps;
      checks.push(check(`step ${i + 1} ${k}`, a ?? NaN, b, i === 0 ? tol.firstStep : later));
    }
  });
  return checks;
}

/**
 * The run's configuration: synth-drive's full preset (L_c, L_id, L_tr, L_trc) with L_z (revgrad's
 * weight) and L_cyc (L_id's weight) switched on too, so that every term and network trains, at toy size.
 */
export function doctorConfig(sourceRoot: string, targetRoot: string, steps: number, seed = 0): Config {
  return buildConfig('synth-drive', 'full', {
    seed, steps, batchSize: 2,
    weights: { z: 0.1, cyc: 0.1 },
    model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8], featureCriticWidths: [8, 8] },
    data: { sourceRoot, targetRoot, imageSize: 32, scale: 0.5 },
  });
}

/** The batches of `steps` steps, drawn once (the trainer's samplers and crops) and fed to both runs. */
async function drawBatches(config: Config, steps: number): Promise<{ source: BatchData; target: BatchData }[]> {
  const d = config.data;
  const sampling = { scale: d.scale, crop: d.imageSize, flip: d.flip };
  const classes = [...CITYSCAPES_CLASSES];
  const source = sceneDomain(listScenes(d.source, d.sourceRoot, 'train', '--source-root', true), classes, { ...sampling, seed: deriveSeed(config.seed, 'source-crops'), labels: true });
  const target = sceneDomain(listScenes(d.target, d.targetRoot, d.targetSplit, '--target-root', false), classes, { ...sampling, seed: deriveSeed(config.seed, 'target-crops'), labels: false });
  const ss = new Sampler(source.n, deriveSeed(config.seed, 'source')), ts = new Sampler(target.n, deriveSeed(config.seed, 'target'));
  const out = [];
  for (let s = 0; s < steps; s++) out.push({ source: await source.load(ss.next(config.batchSize), s), target: await target.load(ts.next(config.batchSize), s) });
  return out;
}

/**
 * L_cyc's residuals x - g_x(f(g_y(f(x)))) and y - g_y(f(g_x(f(y)))), composed as train/i2i.ts's
 * generatorLoss composes them; every pass under batch statistics without running-statistic updates
 * ('train' computes the same values). encoderGrads checks that their mean |.| is terms.cyc.
 */
function cycleResiduals(model: I2IModel, b: Batch): [tf.Tensor4D, tf.Tensor4D] {
  const m: Mode = 'train-no-stats';
  const src = model.decodeFrom(model.f.apply(b.x, m), m), tgt = model.decodeFrom(model.f.apply(b.y, m), m);
  const backX = model.decodeFrom(model.f.apply(src.toY(), m), m).toX();
  const backY = model.decodeFrom(model.f.apply(tgt.toX(), m), m).toY();
  return [tf.sub(b.x, backX), tf.sub(b.y, backY)];
}

/**
 * Global L2 norms of the generator loss's gradient in the encoder f, and of L_cyc's alone, on one
 * batch; running statistics untouched.
 *
 * L_cyc is an L1 loss: its gradient is sign(residual) per pixel, which jumps where a residual
 * crosses 0. The cycle runs f twice and the decoders twice, and float32 on different kernels
 * leaves its reconstructions ~1e-4 apart (wasm vs cpu: 8e-5 relative, 3e-4 at most), while among
 * 6144 residuals per cycle the smallest is typically ~1e-4 (2 / 6144 of the range) and below that
 * noise a sign flips: one pixel out of 6144 moved f's gradient 1-3% and its norm 1.6%, with every
 * kernel agreeing to 1e-6 on identical inputs. So the chosen backend takes the reference's residual
 * signs (`signs`) as L1's subgradient: the same function differentiated by different kernels,
 * which is what the check is for. Without `signs` (the reference) the gradient is L_G's own. What
 * remains (L_cyc's gradient 1.5e-3 apart as a vector, its norm 5e-4) is the cycle's sensitivity to
 * its own float noise: on cpu alone, the translation g_y(f(x)) perturbed by noise of the wasm-cpu
 * difference's size (3e-6 rms) moved the same gradient by 4e-4 to 1.1e-3.
 */
function encoderGrads(model: I2IModel, b: Batch, signs?: Float32Array[]): { gradNorm: number; cycGradNorm?: number; cycleSigns?: Float32Array[] } {
  const keep: Kept = {};
  const w = model.config.weights.cyc;
  const vars = model.f.store.variables();
  const norm = (gs: tf.Tensor[]) => Math.sqrt(tf.addN(gs.map((g) => tf.sum(tf.square(g)))).dataSync()[0]);
  // Read out of variableGrads' scopes (tf.keep), so they outlive this tidy: released in finally.
  const kept: tf.Tensor[] = [];
  const hold = <T extends tf.Tensor>(t: T): T => { kept.push(t); return tf.keep(t); };
  try {
    return tf.tidy(() => {
      let cyc: tf.Scalar | undefined;
      // L_G without L_cyc: the subtraction cancels L_cyc's upstream gradient exactly (w - w = 0).
      const rest = tf.variableGrads(() => {
        const { total, terms } = model.generatorLoss(b, 'joint', keep);
        if (!(w > 0)) return total;
        cyc = hold(terms.cyc!);
        return tf.sub(total, tf.mul(terms.cyc!, w)) as tf.Scalar;
      }, vars).grads;
      if (!(w > 0)) return { gradNorm: norm(vars.map((v) => rest[v.name])) };
      let own: tf.Tensor[] = [];
      let value: tf.Scalar | undefined;
      const cg = tf.variableGrads(() => {
        const r = cycleResiduals(model, b);
        // Abs's own subgradient: step(r, -1), +1 above 0 and -1 at or below.
        own = r.map((t) => hold(tf.step(t, -1)));
        const s = signs ? signs.map((v, i) => tf.tensor(v, r[i].shape)) : own;
        value = hold(tf.addN(r.map((t, i) => tf.mean(tf.mul(s[i], t)))) as tf.Scalar);
        return value;
      }, vars).grads;
      if (!signs) {
        const [a, c] = [value!.dataSync()[0], cyc!.dataSync()[0]];
        if (Math.abs(a - c) > 1e-5 * Math.abs(c)) throw new Error(`the doctor's cycle (${a}) is not train/i2i.ts's L_cyc (${c}): update cycleResiduals`);
      }
      return {
        gradNorm: norm(vars.map((v) => tf.add(rest[v.name], tf.mul(cg[v.name], w)))),
        cycGradNorm: norm(vars.map((v) => cg[v.name])),
        cycleSigns: own.map((t) => t.dataSync().slice() as Float32Array),
      };
    });
  } finally {
    tf.dispose(kept);
    for (const t of Object.values(keep)) t?.dispose();
    for (const n of model.networks()) n.store.dropUpdates();
  }
}

/**
 * `steps` training steps of a fresh model on `backend` (then back to the previous backend);
 * `cycleSigns`: the reference run's, for the step-1 gradient (encoderGrads).
 */
export async function runSteps(backend: string, config: Config, numClasses: number, batches: { source: BatchData; target: BatchData }[], cycleSigns?: Float32Array[]): Promise<RunResult> {
  const previous = tf.getBackend();
  if (!(await tf.setBackend(backend))) throw new Error(`the ${backend} backend failed to initialise`);
  const model = new I2IModel(config, numClasses);
  const losses: Losses[] = [];
  let grads: ReturnType<typeof encoderGrads> = { gradNorm: NaN };
  let rssPeak = 0, started = 0;
  try {
    const step = (s: number) => {
      const { source, target } = batches[s];
      const b: Batch = { x: tf.tensor4d(source.images, source.shape), labels: tf.tensor(source.labels!, source.labelShape!, 'int32'), y: tf.tensor4d(target.images, target.shape) };
      try {
        if (s === 0) grads = encoderGrads(model, b, cycleSigns);
        losses.push(model.step(b, s));
      } finally {
        tf.dispose([b.x, b.y, b.labels]);
      }
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    };
    // Step 1 under tf.profile for its peak memory; profiling reads every kernel's output, so the
    // rate is timed on the later steps (step 1 also pays one-off costs: kernel set-up, cuDNN autotuning).
    const profile = await tf.profile(() => { step(0); });
    started = performance.now();
    for (let s = 1; s < batches.length; s++) step(s);
    const timed = batches.length - 1;
    const stepsPerSec = timed > 0 ? timed / ((performance.now() - started) / 1000) : NaN;
    return { backend, losses, ...grads, stepsPerSec, peakBytes: profile.peakBytes, rssPeak };
  } finally {
    model.dispose();
    await tf.setBackend(previous);
  }
}

/** Output of a command, or undefined with the reason when it cannot run. */
function probe(cmd: string, args: string[]): { out?: string; why?: string } {
  try {
    return { out: execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 }) };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    return { why: err.code === 'ENOENT' ? `${cmd} not found` : (err.stderr || err.message).trim().split('\n')[0] };
  }
}

/** The GPUs nvidia-smi lists, one line each. */
export function gpuLines(): string[] {
  const r = probe('nvidia-smi', ['--query-gpu=name,memory.total,driver_version,compute_cap', '--format=csv,noheader']);
  if (!r.out?.trim()) return [`no NVIDIA GPU visible (${r.why ?? 'nvidia-smi lists none'})`];
  return r.out.trim().split('\n').map((l, i) => {
    const [name, mem, driver, cc] = l.split(',').map((s) => s.trim());
    return `GPU ${i}: ${name}, ${mem}, driver ${driver}, compute capability ${cc}`;
  });
}

/**
 * What tfjs-node-gpu 4.22 needs: it downloads libtensorflow 2.9.1 (tfjs PR #6786), whose GPU
 * build is TensorFlow 2.9's tested configuration, CUDA 11.2 with cuDNN 8.1 (the tfjs-node README's
 * table), i.e. the sonames below. Reports where the dynamic linker finds them.
 */
export const CUDA_LIBS = ['libcudart.so.11.0', 'libcublas.so.11', 'libcudnn.so.8'] as const;

function cudaLibLines(): string[] {
  if (process.platform !== 'linux') return ['CUDA libraries: not checked off Linux'];
  const cache = probe('ldconfig', ['-p']).out ?? probe('/sbin/ldconfig', ['-p']).out ?? '';
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  return CUDA_LIBS.map((lib) => {
    const inDir = dirs.find((d) => fs.existsSync(path.join(d, lib)));
    const cached = new RegExp(`^\\s*${lib.replace(/\./g, '\\.')} .*=> (.*)$`, 'm').exec(cache)?.[1];
    const where = inDir ? path.join(inDir, lib) : cached;
    return `${lib}: ${where ? `found (${where})` : 'not found (ldconfig cache, LD_LIBRARY_PATH)'}`;
  });
}

/** The native binding in use, if the backend is TensorFlow's. */
function nativeLines(info: BackendInfo): string[] {
  if (info.tfName !== 'tensorflow') return [`libtensorflow: not in use (the ${info.choice} backend runs tfjs's own kernels)`];
  const pkg = info.choice === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  let version = '?';
  try { version = (require(pkg) as { version?: string }).version ?? '?'; } catch { /* loaded by core/backend already */ }
  const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
  return [`${pkg} ${version}; libtensorflow ${binding?.TF_Version ?? '(version not exposed by the binding)'}`];
}

export interface DoctorOptions { steps?: number; seed?: number; log?: (line: string) => void }
export interface DoctorResult { ok: boolean; checks: Check[]; runs: RunResult[] }

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

/** Environment report, then the chosen backend against the reference; `ok` is every check passing. */
export async function runDoctor(info: BackendInfo, opts: DoctorOptions = {}): Promise<DoctorResult> {
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const steps = opts.steps ?? 3;
  log(`backend   ${info.choice} (tfjs backend "${info.tfName}"): ${info.reason}`);
  log(`tfjs      ${tf.version_core}`);
  for (const l of nativeLines(info)) log(`native    ${l}`);
  log('CUDA      tfjs-node-gpu 4.22 runs libtensorflow 2.9.1, built for CUDA 11.2 and cuDNN 8.1; it loads:');
  for (const l of cudaLibLines()) log(`            ${l}`);
  for (const l of gpuLines()) log(`GPU       ${l}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'i2i-doctor-'));
  try {
    const src = path.join(dir, 'source'), tgt = path.join(dir, 'target');
    await writeSynth({ out: src, domain: 'source', count: 4, height: 64, width: 128, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 4, height: 64, width: 128, seed: 2 });
    const config = doctorConfig(src, tgt, steps, opts.seed ?? 0);
    // The paper's six terms always (zeros say what is off); later ones (st, mic, kd) when on.
    const w = Object.entries(config.weights).filter(([k, v]) => v > 0 || ['c', 'id', 'z', 'tr', 'cyc', 'trc'].includes(k)).map(([k, v]) => `${k}=${v}`).join(' ');
    log(`method    synth-drive full + L_z + L_cyc (${w}), ${config.model.encoder}, batch ${config.batchSize}, ${config.data.imageSize}x${config.data.imageSize} crops of synthetic scenes, ${steps} steps, seed ${config.seed}`);
    const batches = await drawBatches(config, steps);
    const classes = CITYSCAPES_CLASSES.length;
    // The reference first: the chosen backend's step-1 gradient takes its L1 subgradient (encoderGrads).
    const backends = info.tfName === REFERENCE ? [REFERENCE] : [REFERENCE, info.tfName];
    const runs: RunResult[] = [];
    for (const b of backends) {
      const r = await runSteps(b, config, classes, batches, runs[0]?.cycleSigns);
      runs.unshift(r);
      log(`run       ${b}${b === REFERENCE ? ' (reference)' : ''}: ${Number.isFinite(r.stepsPerSec) ? `${r.stepsPerSec.toFixed(2)} steps/s (steps 2-${steps})` : 'one step'}, peak tfjs memory ${mb(r.peakBytes)} (step 1), process RSS ${mb(r.rssPeak)}, tensors left ${tf.memory().numTensors}`);
    }
    if (runs.length === 1) {
      log(`compare   the chosen backend is the reference (${REFERENCE}): nothing to compare`);
      return { ok: true, checks: [], runs };
    }
    const checks = compareRuns(runs[0], runs[1]);
    log(`compare   ${runs[0].backend} against ${REFERENCE}: |a - b| <= rtol * max(|a|, |b|) + ${TOLERANCES.absolute}; rtol ${TOLERANCES.firstStep} at step 1 and for the gradient norms, ${TOLERANCES.laterSteps} after (the WGAN critics' scores D_x, D_y, gp, tr: ${TOLERANCES.laterCritics}, their float-noise drift)`);
    if (runs[1].cycleSigns) log(`          step-1 gradients differentiate L_cyc's |residual| at the reference's signs: a residual within float32 noise of 0 would flip it`);
    for (const c of checks) {
      log(`${c.pass ? 'PASS' : 'FAIL'}      ${c.item.padEnd(24)} ${fmt(c.value)} vs ${fmt(c.reference)}  (relative ${c.relative.toExponential(1)}, rtol ${c.tolerance})`);
    }
    const failed = checks.filter((c) => !c.pass).length;
    log(failed ? `result    FAIL: ${failed} of ${checks.length} checks differ from the reference` : `result    PASS: ${checks.length} checks agree with the reference`);
    return { ok: failed === 0, checks, runs };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(v: number): string {
  return Number.isFinite(v) ? v.toPrecision(6) : String(v);
}
