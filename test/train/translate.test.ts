import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import sharp from 'sharp';
import * as tf from '../../core/tf';
import type { ConfigPatch } from '../../train/config';
import { loadDigitDomain } from '../../train/data/digits';
import { writeSynth } from '../../train/data/synth';
import { train } from '../../train/trainer';
import { translateRun } from '../../train/translate';
import { OPTDIGITS, tmpDir } from '../helpers';
import { TINY } from './i2i.test';

const quiet = () => undefined;
const SMALL: ConfigPatch = { ...TINY, steps: 2, data: { sourceLimit: 32, targetLimit: 32, targetRoot: OPTDIGITS }, logEvery: 1, checkpointEvery: 2 };

/** Grayscale grid row r (0-based, 32 px high) as values in [-1, 1]. */
function row(px: Buffer, width: number, r: number, n: number): Float32Array {
  const out = new Float32Array(n * 32 * 32);
  for (let k = 0; k < n; k++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) {
    out[k * 1024 + y * 32 + x] = px[(r * 32 + y) * width + k * 32 + x] / 127.5 - 1;
  }
  return out;
}

describe('i2i translate: the decoders on source and target images', function () {
  this.timeout(300000);
  const dir = tmpDir();

  it('draws x, g_y(f(x)), g_x(f(x)), y, g_x(f(y)), g_y(f(y)) and reports what the picture shows', async () => {
    const run = path.join(dir, 'full');
    await train({ task: 'mnist-optdigits', method: 'full', out: run, overrides: SMALL, progress: quiet });
    const before = tf.memory().numTensors;
    const r = await translateRun(run, { out: path.join(dir, 'grid.png'), n: 5 });
    assert.equal(tf.memory().numTensors, before, 'translate leaked tensors');
    const meta = await sharp(r.out).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [5 * 32, 6 * 32, 1]);
    const { data, info } = await sharp(r.out).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    // Rows 0 and 3 are the inputs themselves (the first 5 of each domain), to 8-bit quantisation.
    const common = { size: 32, channels: 1 as const, split: 'train' as const, limit: 5, flag: '' };
    const x = (await loadDigitDomain({ domain: 'mnist', ...common })).images;
    const y = (await loadDigitDomain({ domain: 'optdigits', root: OPTDIGITS, ...common })).images;
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    assert.ok(maxDiff(row(data, info.width, 0, 5), x) <= 1 / 127.5 + 1e-6);
    assert.ok(maxDiff(row(data, info.width, 3, 5), y) <= 1 / 127.5 + 1e-6);
    // The reported reconstruction errors are those of rows 2 and 5 (within the 8-bit rounding).
    const l1 = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
    assert.ok(Math.abs(l1(row(data, info.width, 2, 5), x) - r.reconstructionL1.source) < 0.005, `source ${r.reconstructionL1.source}`);
    assert.ok(Math.abs(l1(row(data, info.width, 5, 5), y) - r.reconstructionL1.target) < 0.005, `target ${r.reconstructionL1.target}`);
    assert.ok(r.reconstructionL1.source > 0);
    assert.ok(r.translatedAgreement !== undefined && r.translatedAgreement >= 0 && r.translatedAgreement <= 1);
  });

  it('refuses a run without decoders, naming the methods that have them', async () => {
    const run = path.join(dir, 'so');
    await train({ task: 'mnist-optdigits', method: 'source-only', out: run, overrides: SMALL, progress: quiet });
    await assert.rejects(translateRun(run, { out: path.join(dir, 'so.png') }), /has no decoders[\s\S]*--method full or cyclegan/);
  });

  it('translates centre crops of driving scenes (3 channels) for a segmenter', async () => {
    const src = path.join(dir, 'source'), tgt = path.join(dir, 'target');
    await writeSynth({ out: src, domain: 'source', count: 3, height: 64, width: 128, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 3, height: 64, width: 128, seed: 2 });
    const run = path.join(dir, 'seg');
    await train({ task: 'synth-drive', method: 'full', out: run, progress: quiet, overrides: {
      steps: 1, batchSize: 1, logEvery: 1, checkpointEvery: 1,
      model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8] },
      data: { imageSize: 32, scale: 0.5, sourceRoot: src, targetRoot: tgt },
    } });
    const r = await translateRun(run, { out: path.join(dir, 'seg.png'), n: 2 });
    const meta = await sharp(r.out).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [2 * 32, 6 * 32, 3]);
    assert.equal(r.translatedAgreement, undefined);
    assert.ok(Number.isFinite(r.reconstructionL1.target));
  });
});
