/** Bundles shared by the serving and video benchmarks (not tests). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../core/backend';
import { BUNDLE_FILES, BUNDLE_FORMAT, sha256, writeManifest, type Manifest } from '../core/bundle';
import { CITYSCAPES_CLASSES, CITYSCAPES_PALETTE } from '../core/labels';
import { buildConfig } from '../train/config';
import { I2IModel } from '../train/i2i';
import { convert } from '../convert/convert';
import { listImages, loadFrames } from '../convert/frames';
import { inferenceGraph } from '../convert/graph';
import { quantizeGraph } from '../convert/quantize';
import { writeTflite } from '../convert/tflite';
import { calibrateModelDrift, openModelFile } from '../runtime/bundle';
import { writeSynth } from '../train/data/synth';
import { train } from '../train/trainer';

export interface ModelCase { name: string; bundle: string; input: [number, number]; timeoutMs: number; seconds: number }

export interface PrepareOptions { out: string; reuse?: boolean; quick?: boolean; skipLarge?: boolean; smallSteps?: number; log: (l: string) => void }

/**
 * The benchmark bundles (bench:serve, bench:video): the small dilated DenseNet trained with the full
 * method on synthetic driving scenes and converted at 256x512, and the full-size DenseNet121 at
 * 512x1024 (random weights: speed does not depend on them), each fp32 + int8 TFLite.
 */
export async function prepareBundles(o: PrepareOptions): Promise<{ small: ModelCase; large?: ModelCase; data: string }> {
  const { out: OUT, quick: QUICK, log } = o;
  // Training and conversion need the fast backend (wasm here); without it tfjs falls back to plain JS.
  await initBackend();
  const data = path.join(OUT, 'data');
  const src = path.join(data, 'source'), tgt = path.join(data, 'target'), req = path.join(data, 'requests');
  if (!fs.existsSync(path.join(req, 'leftImg8bit'))) {
    log('synthesising 100 source + 100 target training scenes (256x512), 40 held-out target and 40 source scenes, 8 request frames (512x1024)');
    await writeSynth({ out: src, domain: 'source', count: 100, height: 256, width: 512, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 100, height: 256, width: 512, seed: 2 });
    await writeSynth({ out: tgt, domain: 'target', count: 40, height: 256, width: 512, seed: 3, split: 'val' });
    await writeSynth({ out: path.join(data, 'source-test'), domain: 'source', count: 40, height: 256, width: 512, seed: 4 });
    await writeSynth({ out: req, domain: 'target', count: 8, height: 512, width: 1024, seed: 5 });
  }
  const steps = o.smallSteps ?? 200;
  const smallRun = path.join(OUT, 'small-full');
  const smallBundle = path.join(OUT, 'bundle-small');
  if (!(o.reuse && fs.existsSync(path.join(smallBundle, 'manifest.json')))) {
    log(`training the small dilated DenseNet (full method, ${steps} steps)`);
    await train({ task: 'synth-drive', method: 'full', out: smallRun, overrides: { steps, data: { sourceRoot: src, targetRoot: tgt }, logEvery: 50 }, progress: () => undefined });
    log('converting it at 256x512 (fp32 + int8, calibrated on 32 target training frames, parity on 40 held-out labelled frames)');
    await convert({ checkpoint: smallRun, out: smallBundle, input: [256, 512], precisions: ['fp32', 'int8'], calibrate: path.join(tgt, 'leftImg8bit', 'train'), eval: tgt, evalFrames: 40, progress: () => undefined });
  }
  const small: ModelCase = { name: 'small DenseNet 256x512', bundle: smallBundle, input: [256, 512], timeoutMs: 10_000, seconds: QUICK ? 5 : 15 };
  if (o.skipLarge) return { small, data };
  const largeBundle = path.join(OUT, 'bundle-densenet121');
  if (!(o.reuse && fs.existsSync(path.join(largeBundle, 'manifest.json')))) {
    log('DenseNet121 at 512x1024, random weights (speed does not depend on them): TFLite fp32 + int8 calibrated on 8 target frames, drift calibrated per file');
    await largeBundleOf(largeBundle, path.join(req, 'leftImg8bit'));
  }
  return { small, large: { name: 'DenseNet121 512x1024', bundle: largeBundle, input: [512, 1024], timeoutMs: 600_000, seconds: QUICK ? 20 : 60 }, data };
}

/**
 * The full-size bundle written from the graph directly (as bench:convert does): i2i convert's parity
 * check runs the tfjs training model at the bundle size, and DenseNet121's dilated forward at
 * 512x1024 exhausts the wasm heap ("table index is out of bounds", seen here), so this bundle has
 * no parity rows and the server is told its precision.
 */
async function largeBundleOf(dir: string, frames: string): Promise<void> {
  // Random weights (speed does not depend on them): no ImageNet file needed.
  const config = buildConfig('gta5-cityscapes', 'full', { model: { encoder: 'densenet121', init: 'none' } });
  const model = new I2IModel(config, 19);
  const graph = inferenceGraph(model, [512, 1024], 'model');
  model.dispose();
  const calib = await loadFrames(listImages(frames, 8), [512, 1024], 3);
  const q = quantizeGraph(graph, calib, 2);
  fs.mkdirSync(dir, { recursive: true });
  const files = { fp32: writeTflite(graph), int8: writeTflite(q.graph, { int8: q.params }) };
  const manifest: Manifest = {
    format: BUNDLE_FORMAT, task: 'gta5-cityscapes', kind: 'segment',
    classes: CITYSCAPES_CLASSES.map((name, id) => ({ id, name, color: CITYSCAPES_PALETTE[id] })),
    input: { height: 512, width: 1024, channels: 3, layout: 'NHWC', normalisation: 'x/127.5-1' },
    models: (['fp32', 'int8'] as const).map((p) => {
      fs.writeFileSync(path.join(dir, BUNDLE_FILES.tflite(p)), files[p]);
      return { file: BUNDLE_FILES.tflite(p), format: 'tflite' as const, precision: p, bytes: files[p].length, sha256: sha256(files[p]), output: 'logits' as const, features: true };
    }),
    training: { checkpoint: '(random weights, bench:serve)', step: 0, config },
    calibration: { source: frames, frames: calib.length }, parity: [], createdAt: new Date().toISOString(),
  };
  for (const f of manifest.models) {
    const lm = await openModelFile(dir, f, { kind: 'segment', input: manifest.input, classes: 19 }, 2);
    try { f.drift = calibrateModelDrift(lm, calib, 'DenseNet121 encoder output, mean over H and W'); } finally { lm.dispose(); }
  }
  writeManifest(dir, manifest);
}

