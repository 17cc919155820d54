/**
 * The training loop: sample a source batch (with labels) and a target batch (without), take one
 * alternating step of the I2I objective, log, checkpoint. `--resume` continues from the last
 * checkpoint to the same result an uninterrupted run with the same seed would reach.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../core/tf';
import { UserError } from '../core/errors';
import { deriveSeed } from '../core/rng';
import { buildConfig, selfTrains, taskSelfTraining, changedKey, checkNewRun, merge, methodKeys, resolvedAsRun, RESUMABLE_KEYS, validateConfig, type Config, type ConfigPatch } from './config';
import { CITYSCAPES_CLASSES, IGNORE } from '../core/labels';
import { Sampler, type SamplerState } from './data/batcher';
import { loadDigitDomain, type DigitDomain } from './data/digits';
import { imageSetDomain, sceneDomain, type BatchData, type Domain } from './data/domain';
import { centreCrops, centreCropSet, isOfficeDomain, officeDomain, readOfficePair } from './data/office';
import { diagnoseLabelMap } from './data/png-labels';
import { listScenes, type SegList } from './data/segmentation';
import { sourceOf, type ImageSet, type ImageSource } from './data/types';
import { sampledFrames, sampleVideoFolder } from './data/video-frames';
import { classProbabilities, classStats, RareClassSampler } from './data/rare-class';
import { disposeCheckpoint, readCheckpoint, readCheckpointMeta, sameOrNested, saveCheckpoint } from './checkpoint';
import { evaluateClassifier } from './eval';
import { defaultDigitSplit, loadEvalSet } from './evaluate-run';
import { I2IModel, OBJECTIVE_VERSION, type Losses } from './i2i';
import { DistillTeacher } from './distill';
import { initFromKeras } from './init';
import { modelState, restoreModel } from './state';

export interface TrainOptions {
  task?: string;
  method?: string;
  overrides?: ConfigPatch;
  out: string;
  resume?: boolean;
  /** Fine-tune: start from this run's networks and configuration (overrides apply on top; fresh optimisers, step 0). */
  from?: string;
  /** Replace the run already in `out` (its checkpoint and metrics) instead of refusing it. */
  force?: boolean;
  /** Called with each progress line; default: stderr. */
  progress?: (line: string) => void;
  /** Driving scenes: stop after this many source batches in a row without a labelled pixel (default UNLABELLED_BATCH_LIMIT). */
  unlabelledBatchLimit?: number;
}

export interface TrainResult { config: Config; step: number; out: string; finalLosses: Losses; targetAccuracy?: number }

/**
 * Digits in memory: the training sets (the target's labels are never read in training). Office
 * domains: their centre crops (for the few images `i2i translate` shows; training crops at random).
 */
export async function loadDigitSets(config: Config): Promise<{ source: ImageSet; target: ImageSet }> {
  const d = config.data;
  if (isOfficeDomain(d.source)) {
    const sets = await readOfficePair(d);
    return { source: centreCropSet(sets.source, d.imageSize), target: centreCropSet(sets.target, d.imageSize) };
  }
  const common = { size: d.imageSize, channels: d.channels };
  const source = await loadDigitDomain({ domain: d.source as DigitDomain, root: d.sourceRoot, split: 'train', limit: d.sourceLimit, flag: '--source-root', ...common });
  const target = await loadDigitDomain({ domain: d.target as DigitDomain, root: d.targetRoot, split: 'train', limit: d.targetLimit, flag: '--target-root', ...common });
  return { source, target };
}

/** Driving scenes: lists of frames decoded on demand; target frames may come from a folder of videos. */
async function loadSceneDomains(config: Config, out: string, progress: (l: string) => void): Promise<{ source: Domain; target: Domain; rcs?: RareClassSampler }> {
  const d = config.data;
  const src = listScenes(d.source, d.sourceRoot, 'train', '--source-root', true);
  const few = (ids: string[]) => `${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', ...' : ''}`;
  if (src.skipped.length) progress(`[i2i] source: skipped ${src.skipped.length} image(s) without a label map: ${few(src.skipped)}`);
  if (src.unpairedLabels?.length) progress(`[i2i] source: skipped ${src.unpairedLabels.length} label map(s) without an image: ${few(src.unpairedLabels)}`);
  let tgt: SegList;
  if (d.targetFrames) {
    const frames = listImages(d.targetFrames);
    if (frames.length === 0) throw new UserError(`${d.targetFrames} holds no PNG, JPEG or WebP frame.`, 'Point --target-frames at a folder of target frames (e.g. what i2i serve --capture kept).');
    tgt = { name: `frames:${d.targetFrames}`, items: frames.map((image) => ({ image, id: path.relative(d.targetFrames!, image) })), skipped: [] };
  } else if (d.targetVideos) {
    // Sampled once per run folder; a resumed run reuses the frames it trained on. A marker written
    // when sampling finished says from what: frames of an interrupted sampling, or of other videos or
    // settings (a run replaced with --force), are sampled again.
    const dir = path.join(out, 'target-frames'), marker = path.join(dir, '.sampled.json');
    const want = JSON.stringify({ videos: path.resolve(d.targetVideos), fps: d.videoFps, maxFrames: d.videoMaxFrames });
    let frames = fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === want ? sampledFrames(dir) : [];
    if (frames.length === 0) {
      fs.rmSync(dir, { recursive: true, force: true });
      progress(`[i2i] sampling target frames from the videos in ${d.targetVideos} (${d.videoFps} fps, at most ${d.videoMaxFrames} per video) into ${dir}`);
      frames = await sampleVideoFolder(d.targetVideos, dir, { fps: d.videoFps, maxFrames: d.videoMaxFrames });
      fs.writeFileSync(marker, want);
    }
    tgt = { name: `videos:${d.targetVideos}`, items: frames.map((image) => ({ image, id: path.basename(image, '.png') })), skipped: [] };
  } else {
    tgt = listScenes(d.target, d.targetRoot, d.targetSplit, '--target-root', false);
  }
  const sampling = { scale: d.scale, crop: d.imageSize, flip: d.flip };
  const classes = [...CITYSCAPES_CLASSES];
  let rcs: RareClassSampler | undefined;
  if (d.rcsTemperature > 0) {
    // Counted once per run folder (GTA5: every label map is read); a resumed run reads the count.
    fs.mkdirSync(out, { recursive: true });
    const stats = await classStats(src.items, classes.length, { cacheFile: path.join(out, 'rcs-classes.json'), progress });
    if (stats.framesWith.every((f) => f.length === 0)) throw new UserError('data.rcsTemperature: no source label map shows any class.', 'Check --source-root, or set data.rcsTemperature=0.');
    const p = classProbabilities(stats, d.rcsTemperature);
    const top = p.map((v, c) => [v, c] as const).sort((a, b) => b[0] - a[0]).slice(0, 3).map(([v, c]) => `${classes[c]} ${(v * 100).toFixed(1)}%`).join(', ');
    progress(`[i2i] rare-class sampling at T=${d.rcsTemperature}: most drawn ${top}`);
    rcs = new RareClassSampler(stats, d.rcsTemperature, deriveSeed(config.seed, 'source'));
  }
  return {
    rcs,
    source: sceneDomain(src, classes, { ...sampling, seed: deriveSeed(config.seed, 'source-crops'), labels: true, report: progress }),
    // Target labels are never read for training.
    target: sceneDomain(tgt, classes, { ...sampling, seed: deriveSeed(config.seed, 'target-crops'), labels: false, report: progress }),
  };
}

function batchTensors(s: BatchData, t: BatchData) {
  return {
    x: tf.tensor4d(s.images, s.shape),
    labels: tf.tensor(s.labels!, s.labelShape!, 'int32'),
    y: tf.tensor4d(t.images, t.shape),
  };
}

/**
 * Source batches in a row without one labelled pixel before training stops: L_c is 0 on such a
 * batch, so a run of them means the label maps are not what the reader takes them for.
 */
export const UNLABELLED_BATCH_LIMIT = 20;

/** Every image under `dir` (subfolders too), in a stable order. */
function listImages(dir: string): string[] {
  if (!fs.existsSync(dir)) throw new UserError(`Target frames folder not found: ${dir}.`, 'Pass --target-frames <folder of PNG/JPEG/WebP frames>.');
  return (fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[]).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort().map((f) => path.join(dir, f));
}

function allIgnored(labels: Int32Array): boolean {
  for (let i = 0; i < labels.length; i++) if (labels[i] !== IGNORE) return false;
  return true;
}

function fmt(l: Losses): string {
  return Object.entries(l).map(([k, v]) => `${k} ${(v as number).toFixed(3)}`).join(' ');
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const progress = opts.progress ?? ((line: string) => process.stderr.write(line + '\n'));
  let config: Config;
  let start = 0;
  let ckpt: ReturnType<typeof readCheckpoint> | undefined;
  const hasRun = fs.existsSync(path.join(opts.out, 'checkpoint')) || fs.existsSync(path.join(opts.out, 'metrics.jsonl'));
  if (opts.resume && opts.force) throw new UserError('--resume continues the run in --out; --force replaces it.', 'Pass one of them.');
  if (opts.resume && !hasRun) throw new UserError(`--resume: ${opts.out} holds no run to continue (no checkpoint/).`, 'Check --out, or leave out --resume to start a new run there (with --task and --method).');
  if (opts.resume) {
    const was = readCheckpointMeta(opts.out).config;
    // The run's own config; only the schedule (total steps, logging, evaluation, checkpoint cadence)
    // may change. Anything else the caller asks for would be ignored, so it is refused.
    const o = opts.overrides ?? {};
    const asked = resolvedAsRun(was, { ...o, ...(opts.task !== undefined && { task: opts.task }), ...(opts.method !== undefined && { method: opts.method }), ...(opts.from !== undefined && { fromRun: path.resolve(opts.from) }) } as ConfigPatch);
    const changed = changedKey(was, asked);
    if (changed) {
      const at = (c: unknown) => JSON.stringify(changed.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], c)) ?? 'none';
      throw new UserError(`--resume continues ${opts.out} with the settings it started with; ${changed} ${at(asked)} would be ignored (the run has ${at(was)}).`,
        `Leave it out (on --resume only ${[...RESUMABLE_KEYS].join(', ')} may change), or train a new run into another --out.`);
    }
    ckpt = readCheckpoint(opts.out);
    const schedule = Object.fromEntries([...RESUMABLE_KEYS].flatMap((k) => (o[k as keyof ConfigPatch] === undefined ? [] : [[k, o[k as keyof ConfigPatch]]])));
    config = validateConfig({ ...ckpt.meta.config, ...schedule });
    start = ckpt.meta.step;
    if (config.steps < start) {
      disposeCheckpoint(ckpt);
      throw new UserError(`${opts.out} is at step ${start}; --steps ${config.steps} would end before it (a run does not go back).`, `Pass --steps above ${start} to train on, or leave out --resume and use another --out for a shorter run.`);
    }
  } else {
    if (opts.from) {
      if (sameOrNested(opts.from, opts.out)) {
        throw new UserError(`--out ${opts.out} and --from ${opts.from} are the same folder or one holds the other: the new run would overwrite the run it starts from.`, 'Pass another --out.');
      }
      // --method switches the method on top of the run's configuration, e.g. an I2I run continued
      // with self-training (--method full+st): every key a method sets is the new method's, the
      // rest (data, networks, schedule) the run's; without it, the run's own method.
      const from = readCheckpointMeta(opts.from).config;
      if (opts.task && opts.task !== from.task) throw new UserError(`--from ${opts.from} is a ${from.task} run; --task ${opts.task} would be ignored (--from takes the task of the run it starts from).`, 'Leave out --task, or start a new run without --from.');
      // A run that never self-trained never used its selfTraining block (the defaults of its day):
      // self-training started from it takes today's (--set still applies on top).
      const method: ConfigPatch = {
        ...(opts.method && methodKeys(buildConfig(from.task, opts.method, { steps: opts.overrides?.steps ?? from.steps }))),
        ...(!selfTrains(from) && { selfTraining: taskSelfTraining(from.task) }),
      };
      config = validateConfig({ ...merge(merge(from, method), opts.overrides ?? {}), fromRun: path.resolve(opts.from) });
      // The checkpoint's f_t would be restored and read on the target side, but only f is trained (and averaged by a teacher).
      if (from.untieTargetEncoder && !config.untieTargetEncoder) {
        throw new UserError(`--from ${opts.from} is an ADDA run (untied target encoder f_t); ${config.method} trains one encoder f, so the run's f_t would stay frozen on the target side.`,
          'Start that method from a run with one encoder (e.g. --method full or source-only), or continue the ADDA run with --resume.');
      }
    } else {
      if (!opts.task || !opts.method) throw new UserError('train needs --task and --method.', 'For example: i2i train --task mnist-optdigits --method full --target-root ../shared/data/optdigits --out runs/x');
      config = buildConfig(opts.task, opts.method, opts.overrides);
    }
    checkNewRun(config);
    if (hasRun && !opts.force) {
      throw new UserError(`${opts.out} already holds a run; training into it again would overwrite its checkpoint and mix two runs in its metrics.jsonl.`, 'Pass --resume to continue it, --force to replace it, or another --out.');
    }
    // A note, not a refusal: one set of --set flags may serve runs of several methods (bench:seg
    // passes the same --set to every row, source-only and full included).
    if (opts.overrides?.selfTraining && !selfTrains(config)) {
      const keys = Object.keys(opts.overrides.selfTraining).map((k) => `selfTraining.${k}`).join(', ');
      progress(`[i2i] note: ${keys} set, but weights.st and weights.mic are 0 in this run (${config.method}): self-training is off and the selfTraining keys act on nothing. Use --method self-train or full+st, or --set weights.st=1.`);
    }
  }

  let source: Domain, target: Domain, evalSet: ImageSource | undefined, rcs: RareClassSampler | undefined;
  if (config.kind === 'segment') {
    if (config.evalEvery > 0) throw new UserError('evalEvery monitors classification runs only.', 'Drop --set evalEvery and measure a segmentation run with i2i eval --checkpoint RUN --target-root FOLDER.');
    ({ source, target, rcs } = await loadSceneDomains(config, opts.out, progress));
  } else if (isOfficeDomain(config.data.source)) {
    // Office-31: uint8 images at data.resize in memory, random crops (and flips) per step.
    const d = config.data;
    const sets = await readOfficePair(d);
    const sampling = { crop: d.imageSize, flip: d.flip };
    source = officeDomain(sets.source, { ...sampling, seed: deriveSeed(config.seed, 'source-crops') });
    target = officeDomain(sets.target, { ...sampling, seed: deriveSeed(config.seed, 'target-crops') });
    // A domain is one set: the target's own images (centre crops) are what it is measured on.
    if (config.evalEvery > 0) evalSet = d.targetLimit === undefined ? centreCrops(sets.target, d.imageSize) : await loadEvalSet(config);
  } else {
    const sets = await loadDigitSets(config);
    source = imageSetDomain(sets.source); target = imageSetDomain(sets.target);
    // The eval split is the training set itself for optdigits and folders: not read (or decoded) twice.
    const same = defaultDigitSplit(config.data.target) === 'train' && config.data.targetLimit === undefined;
    if (config.evalEvery > 0) evalSet = same ? sourceOf(sets.target) : await loadEvalSet(config);
  }
  if (source.n < config.batchSize || target.n < 1) throw new UserError(`The source has ${source.n} images, fewer than one batch of ${config.batchSize}.`, 'Lower --batch-size or provide more data.');
  const model = new I2IModel(config, source.classes.length);
  // Distillation: the teacher run, frozen, for this run's lifetime (read again on --resume).
  let teacher: DistillTeacher | undefined;
  if (config.weights.kd > 0) {
    try {
      teacher = DistillTeacher.load(config.distill.teacher!, config, source.classes.length);
    } catch (e) {
      model.dispose();
      throw e;
    }
    model.attachTeacher(teacher);
    const t = teacher.describe();
    const was = config.distill;
    if (ckpt && was.teacherFingerprint && was.teacherFingerprint !== t.fingerprint) {
      model.dispose(); teacher.dispose();
      throw new UserError(`The teacher ${t.run} changed since this student started distilling it (step ${was.teacherStep}, weights ${was.teacherFingerprint}; now step ${t.step}, weights ${t.fingerprint}): resuming would distil another model.`,
        'Distil into a new --out, or restore the teacher run as it was.');
    }
    if (!ckpt) config = { ...config, distill: { ...config.distill, teacherStep: t.step, teacherFingerprint: t.fingerprint, teacherTask: t.task, teacherMethod: t.method, teacherEncoder: t.encoder } };
    progress(`[i2i] distilling ${t.run} (${t.task} / ${t.method}, ${t.encoder}, step ${t.step}) into ${config.model.encoder} at temperature ${config.distill.temperature}`);
  }
  const samplers = {
    source: new Sampler(source.n, deriveSeed(config.seed, 'source'), ckpt?.meta.samplers.source),
    target: new Sampler(target.n, deriveSeed(config.seed, 'target'), ckpt?.meta.samplers.target),
  };
  try {
    if (!ckpt && config.fromRun) {
      const from = readCheckpoint(config.fromRun);
      // The teacher (self-training) starts as the run's f and h; networks the run lacks (decoders
      // and critics of a method it did not use) start from their initialisation.
      let fresh: string[] = [];
      try { fresh = restoreModel(model, from, { optimizer: false, teacher: 'student', allowMissing: true }); } finally { disposeCheckpoint(from); }
      progress(`[i2i] fine-tuning from ${config.fromRun} (its step ${from.meta.step}; fresh optimisers${fresh.length ? `; ${fresh.join(', ')} not in it, initialised` : ''})`);
    } else if (!ckpt && config.model.init) {
      initFromKeras(model.f.store, config.model.init, { allowUnmatched: config.model.initAllowUnmatched, log: progress });
      model.resetTeacher();
    }
    if (ckpt) restoreModel(model, ckpt);
  } catch (e) {
    // A bad --init file or a mismatched checkpoint: release what was built before reporting it.
    model.dispose();
    teacher?.dispose();
    throw e;
  } finally {
    if (ckpt) disposeCheckpoint(ckpt);
  }
  if (ckpt) progress(`[i2i] resumed ${opts.out} at step ${start} of ${config.steps}`);
  const savedObjective = ckpt ? ckpt.meta.objective ?? 1 : OBJECTIVE_VERSION;
  if (savedObjective !== OBJECTIVE_VERSION) {
    progress(`[i2i] warning: ${opts.out} was trained with revision ${savedObjective} of the objective; it continues with revision ${OBJECTIVE_VERSION} (train/i2i.ts OBJECTIVE_VERSION), so it matches no uninterrupted run`);
  }
  if (!ckpt && opts.force && hasRun) {
    // Replaced as asked, once the new run has its data and networks: the old metrics would
    // otherwise read on into the new run's.
    fs.rmSync(path.join(opts.out, 'metrics.jsonl'), { force: true });
    fs.rmSync(path.join(opts.out, 'checkpoint'), { recursive: true, force: true });
    progress(`[i2i] --force: replacing the run in ${opts.out}`);
  }
  fs.mkdirSync(opts.out, { recursive: true });
  const metricsFile = path.join(opts.out, 'metrics.jsonl');
  // Sampler positions after the last completed step's batch (the next batch is drawn ahead).
  let drawn: { source: SamplerState; target: SamplerState } = { source: { ...samplers.source.state }, target: { ...samplers.target.state } };
  const save = (step: number) => {
    const st = modelState(model);
    saveCheckpoint(opts.out, {
      config, step, classes: source.classes, networks: st.networks, optimizerSteps: st.optimizerSteps, objective: OBJECTIVE_VERSION,
      samplers: { source: { ...drawn.source }, target: { ...drawn.target } },
    }, st.tensors);
  };
  // Batch s+1 decodes (sharp's threads) while step s computes.
  const fetch = (s: number) => {
    const si = rcs ? rcs.draw(s, config.batchSize) : samplers.source.next(config.batchSize), ti = samplers.target.next(config.batchSize);
    const state = { source: { ...samplers.source.state }, target: { ...samplers.target.state } };
    return Promise.all([source.load(si, s), target.load(ti, s)]).then(([a, b]) => ({ a, b, state }));
  };

  let stop = false;
  const onSignal = () => { stop = true; progress('[i2i] interrupt: finishing this step and saving a checkpoint (press again to abort)'); process.off('SIGINT', onSignal); };
  process.on('SIGINT', onSignal);

  const t0 = Date.now();
  let last: Losses = {};
  let targetAccuracy: number | undefined;
  let step = start;
  let unlabelled = 0;
  const unlabelledLimit = opts.unlabelledBatchLimit ?? UNLABELLED_BATCH_LIMIT;
  try {
    let next = step < config.steps ? fetch(step) : undefined;
    while (step < config.steps && !stop) {
      const data = await next!;
      next = step + 1 < config.steps ? fetch(step + 1) : undefined;
      next?.catch(() => undefined); // awaited next iteration; avoid an unhandled rejection meanwhile
      if (config.kind === 'segment') {
        unlabelled = allIgnored(data.a.labels!) ? unlabelled + 1 : 0;
        if (unlabelled >= unlabelledLimit) {
          // Stops before the step: nothing is saved, the last checkpoint on disk stays as it was.
          const why = data.a.labelFiles?.length ? await diagnoseLabelMap(data.a.labelFiles[0]) : 'no label file named';
          const kept = fs.existsSync(path.join(opts.out, 'checkpoint')) ? ` (the checkpoint in ${opts.out} is the last one saved before these batches)` : '';
          throw new UserError(`Training stopped before step ${step + 1}: the last ${unlabelled} source batches had no labelled pixel (every label 255, ignored), so L_c was 0 and the segmenter learned nothing${kept}. For example ${why}. `
            + 'The likely cause is the label format: label maps that are not Cityscapes labelIds (trainIds saved under labelIds names, colours of another palette, palette labels read as colours and saved as grey by a conversion tool).',
          'Point --source-root at labels as GTA5 and Cityscapes ship them (palette or greyscale labelIds, *_gtFine_labelTrainIds.png, or Cityscapes *_color.png) and train again.');
        }
      }
      const b = batchTensors(data.a, data.b);
      try {
        last = model.step(b, step);
      } finally {
        b.x.dispose(); b.y.dispose(); b.labels.dispose();
      }
      step++;
      drawn = data.state;
      const bad = Object.entries(last).find(([, v]) => !Number.isFinite(v));
      if (bad) {
        throw new UserError(`Loss ${bad[0]} became ${bad[1]} at step ${step}; the last good checkpoint in ${opts.out} is kept.`,
          'Lower the learning rate (--set optim.lr=1e-4) or the adversarial weights, then --resume.');
      }
      if (step % config.logEvery === 0 || step === config.steps) {
        const secs = (Date.now() - t0) / 1000;
        const rate = (step - start) / secs;
        const eta = (config.steps - step) / rate;
        fs.appendFileSync(metricsFile, JSON.stringify({ step, time: secs, stepsPerSec: rate, phase: model.phase(step - 1), ...last }) + '\n');
        progress(`[i2i] step ${step}/${config.steps} ${rate.toFixed(2)} steps/s ETA ${Math.round(eta)}s | ${fmt(last)}`);
      }
      if (evalSet && (step % config.evalEvery === 0 || step === config.steps)) {
        // Inference only (running statistics, no updates, no random draws): training is unchanged.
        targetAccuracy = evaluateClassifier(model, evalSet).accuracy;
        fs.appendFileSync(metricsFile, JSON.stringify({ step, targetAccuracy, evalImages: evalSet.n }) + '\n');
        progress(`[i2i] step ${step}: target accuracy ${(targetAccuracy * 100).toFixed(2)}% on ${evalSet.n} images`);
      }
      // Not in the middle of a run of unlabelled source batches: the checkpoint on disk stays the last good one.
      if (step % config.checkpointEvery === 0 && step < config.steps && unlabelled === 0) save(step);
    }
    save(step);
    return { config, step, out: opts.out, finalLosses: last, targetAccuracy };
  } finally {
    for (const line of [...source.notes?.() ?? [], ...target.notes?.() ?? []]) progress(line);
    process.off('SIGINT', onSignal);
    model.dispose();
    teacher?.dispose();
  }
}
