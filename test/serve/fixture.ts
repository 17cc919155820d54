/**
 * Tiny bundles built in the tests from hand-made graphs, so that a frame's labels are known:
 * a 1x1 conv whose class 0 (road) wins where red exceeds blue and class 10 (sky) where blue exceeds
 * red; optionally a stack of 3x3 convs before it, to make inference slow (a real, blocking TFLite call).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUNDLE_FILES, BUNDLE_FORMAT, sha256, writeManifest, type Manifest, type ModelFile } from '../../core/bundle';
import { CITYSCAPES_CLASSES, CITYSCAPES_PALETTE } from '../../core/labels';
import { mulberry32 } from '../../core/rng';
import { writeTfjsGraph } from '../../convert/tfjs-graph';
import { writeTflite } from '../../convert/tflite';
import { foldGraph } from '../../convert/fold';
import { GraphBuilder } from '../../train/models/ir';
import { calibrateModelDrift, openModelFile, specOf } from '../../runtime/bundle';

export const ROAD = 0, SKY = 10;

export interface FixtureOptions {
  height?: number; width?: number; slowLayers?: number; slowChannels?: number; tfjs?: boolean; tflite?: boolean;
  /** Another model of the same contract: road where blue wins, sky where red wins (a second version). */
  swapped?: boolean;
}

export async function makeBundle(dir: string, o: FixtureOptions = {}): Promise<Manifest> {
  const h = o.height ?? 32, w = o.width ?? 64, k = CITYSCAPES_CLASSES.length;
  const g = new GraphBuilder();
  const x = g.input([1, h, w, 3]);
  let t = x, c = 3;
  const r = mulberry32(7);
  for (let i = 0; i < (o.slowLayers ?? 0); i++) {
    const co = o.slowChannels ?? 32;
    // Small random weights plus an identity path on the first 3 channels: colour survives the stack.
    const wts = Float32Array.from({ length: 9 * c * co }, () => (r() - 0.5) * 1e-3);
    for (let ch = 0; ch < 3; ch++) wts[(4 * c + ch) * co + ch] = 1;
    t = g.conv2d(t, { weights: wts, bias: new Float32Array(co), kernel: [3, 3, c, co], stride: 1, dilation: 1, padding: 'same' });
    c = co;
  }
  const wts = new Float32Array(c * k), bias = new Float32Array(k).fill(-10);
  // logit_road = R - B, logit_sky = B - R (inputs are in [-1, 1]).
  const sgn = o.swapped ? -1 : 1;
  wts[0 * k + ROAD] = sgn; wts[2 * k + ROAD] = -sgn; wts[0 * k + SKY] = -sgn; wts[2 * k + SKY] = sgn;
  bias[ROAD] = 0; bias[SKY] = 0;
  const logits = g.conv2d(t, { weights: wts, bias, kernel: [1, 1, c, k], stride: 1, dilation: 1, padding: 'same' });
  const graph = foldGraph(g.graph(x, logits, 'test/fixture', logits));

  fs.mkdirSync(dir, { recursive: true });
  const models: ModelFile[] = [];
  if (o.tflite !== false) {
    const bytes = writeTflite(graph);
    fs.writeFileSync(path.join(dir, BUNDLE_FILES.tflite('fp32')), bytes);
    models.push({ file: BUNDLE_FILES.tflite('fp32'), format: 'tflite', precision: 'fp32', bytes: bytes.length, sha256: sha256(bytes), output: 'logits', features: true });
  }
  if (o.tfjs) {
    const { modelJson, weights } = writeTfjsGraph(graph, 'fp32');
    const d = BUNDLE_FILES.tfjsDir('fp32');
    fs.mkdirSync(path.join(dir, d), { recursive: true });
    const json = Buffer.from(JSON.stringify(modelJson));
    fs.writeFileSync(path.join(dir, d, 'model.json'), json);
    fs.writeFileSync(path.join(dir, d, 'weights.bin'), weights);
    models.push({ file: `${d}/model.json`, format: 'tfjs-graph', precision: 'fp32', bytes: json.length + weights.length, sha256: sha256(json), weights: { file: `${d}/weights.bin`, bytes: weights.length, sha256: sha256(weights) }, output: 'logits', features: true });
  }
  const manifest: Manifest = {
    format: BUNDLE_FORMAT, task: 'test-fixture', kind: 'segment',
    classes: CITYSCAPES_CLASSES.map((name, id) => ({ id, name, color: CITYSCAPES_PALETTE[id] })),
    input: { height: h, width: w, channels: 3, layout: 'NHWC', normalisation: 'x/127.5-1' },
    models, training: { checkpoint: '(hand-made test graph)', step: 0, config: {} },
    parity: models.map((m) => ({ precision: m.precision, format: m.format, bytes: m.bytes, latencyMs: m.format === 'tflite' ? 1 : 2, threads: 1, labelAgreement: 1, frames: 1 })),
    createdAt: new Date().toISOString(),
  };
  // Drift calibrated as convert does: on "target" frames, here reddish noise.
  const calib = Array.from({ length: 8 }, () => Float32Array.from({ length: h * w * 3 }, (_, i) => (i % 3 === 0 ? 0.5 : -0.5) + (r() - 0.5) * 0.2));
  for (const m of models) {
    const lm = await openModelFile(dir, m, specOf(manifest));
    try { m.drift = calibrateModelDrift(lm, calib, 'test logits, mean over H and W'); } finally { lm.dispose(); }
  }
  writeManifest(dir, manifest);
  return manifest;
}

/** RGB bytes h x w: red on the left half, blue on the right. */
export function halves(h: number, w: number): Uint8Array {
  const p = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) p[(y * w + x) * 3 + (x < w / 2 ? 0 : 2)] = 255;
  return p;
}
