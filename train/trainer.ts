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
import { buildConfig, validateConfig, type Config, type ConfigPatch } from './config';
import { gather, Sampler } from './data/batcher';
import { loadDigitDomain } from './data/digits';
import type { ImageSet } from './data/types';
import { disposeCheckpoint, readCheckpoint, saveCheckpoint } from './checkpoint';
import { evaluateClassifier } from './eval';
import { I2IModel, type Losses } from './i2i';
import { modelState, restoreModel } from './state';

export interface TrainOptions {
  task?: string;
  method?: string;
  overrides?: ConfigPatch;
  out: string;
  resume?: boolean;
  /** Called with each progress line; default: stderr. */
  progress?: (line: string) => void;
  /** Evaluate on the target (its labels) at the end and log it; never used for training. */
  evalAtEnd?: boolean;
}

export interface TrainResult { config: Config; step: number; out: string; finalLosses: Losses; targetAccuracy?: number }

export async function loadDomains(config: Config): Promise<{ source: ImageSet; target: ImageSet }> {
  const d = config.data;
  const common = { size: d.imageSize, channels: d.channels };
  const source = await loadDigitDomain({ domain: d.source, root: d.sourceRoot, split: 'train', limit: d.sourceLimit, flag: '--source-root', ...common });
  const target = await loadDigitDomain({ domain: d.target, root: d.targetRoot, split: 'train', limit: d.targetLimit, flag: '--target-root', ...common });
  return { source, target };
}

function batchTensors(source: ImageSet, target: ImageSet, si: Int32Array, ti: Int32Array) {
  const s = gather(source, si);
  const t = gather(target, ti);
  const shape = (n: number, set: ImageSet): [number, number, number, number] => [n, set.height, set.width, set.channels];
  return {
    x: tf.tensor4d(s.images, shape(si.length, source)),
    labels: tf.tensor1d(s.labels, 'int32'),
    y: tf.tensor4d(t.images, shape(ti.length, target)),
  };
}

function fmt(l: Losses): string {
  return Object.entries(l).map(([k, v]) => `${k} ${(v as number).toFixed(3)}`).join(' ');
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const progress = opts.progress ?? ((line: string) => process.stderr.write(line + '\n'));
  let config: Config;
  let start = 0;
  let ckpt: ReturnType<typeof readCheckpoint> | undefined;
  if (opts.resume && fs.existsSync(opts.out)) {
    ckpt = readCheckpoint(opts.out);
    // The run's own config; only the schedule (total steps, logging, checkpoint cadence) may change.
    const o = opts.overrides ?? {};
    config = validateConfig({ ...ckpt.meta.config, ...(o.steps ? { steps: o.steps } : {}), ...(o.logEvery ? { logEvery: o.logEvery } : {}), ...(o.checkpointEvery ? { checkpointEvery: o.checkpointEvery } : {}) });
    start = ckpt.meta.step;
  } else {
    if (!opts.task || !opts.method) throw new UserError('train needs --task and --method.', 'For example: i2i train --task mnist-optdigits --method full --target-root ../shared/data/optdigits --out runs/x');
    config = buildConfig(opts.task, opts.method, opts.overrides);
  }

  const { source, target } = await loadDomains(config);
  if (source.n < config.batchSize || target.n < 1) throw new UserError(`The source has ${source.n} images, fewer than one batch of ${config.batchSize}.`, 'Lower --batch-size or provide more data.');
  const model = new I2IModel(config, source.classes.length);
  const samplers = {
    source: new Sampler(source.n, deriveSeed(config.seed, 'source'), ckpt?.meta.samplers.source),
    target: new Sampler(target.n, deriveSeed(config.seed, 'target'), ckpt?.meta.samplers.target),
  };
  if (ckpt) {
    restoreModel(model, ckpt);
    disposeCheckpoint(ckpt);
    progress(`[i2i] resumed ${opts.out} at step ${start} of ${config.steps}`);
  }
  fs.mkdirSync(opts.out, { recursive: true });
  const metricsFile = path.join(opts.out, 'metrics.jsonl');
  const save = (step: number) => {
    const st = modelState(model);
    saveCheckpoint(opts.out, {
      config, step, classes: source.classes, networks: st.networks, optimizerSteps: st.optimizerSteps,
      samplers: { source: { ...samplers.source.state }, target: { ...samplers.target.state } },
    }, st.tensors);
  };

  let stop = false;
  const onSignal = () => { stop = true; progress('[i2i] interrupt: finishing this step and saving a checkpoint (press again to abort)'); process.off('SIGINT', onSignal); };
  process.on('SIGINT', onSignal);

  const t0 = Date.now();
  let last: Losses = {};
  let step = start;
  try {
    while (step < config.steps && !stop) {
      const b = batchTensors(source, target, samplers.source.next(config.batchSize), samplers.target.next(config.batchSize));
      try {
        last = model.step(b, step);
      } finally {
        b.x.dispose(); b.y.dispose(); b.labels.dispose();
      }
      step++;
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
      if (step % config.checkpointEvery === 0 && step < config.steps) save(step);
    }
    save(step);
    let targetAccuracy: number | undefined;
    if (opts.evalAtEnd) {
      targetAccuracy = evaluateClassifier(model, target).accuracy;
      fs.appendFileSync(metricsFile, JSON.stringify({ step, targetAccuracy }) + '\n');
    }
    return { config, step, out: opts.out, finalLosses: last, targetAccuracy };
  } finally {
    process.off('SIGINT', onSignal);
    model.dispose();
  }
}
