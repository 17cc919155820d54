import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { recalibrateBatchNorm, recalibrateChain, sceneBatches, type BnBatch } from '../../train/bn-recalibrate';
import type { ConfigPatch } from '../../train/config';
import { buildConfig } from '../../train/config';
import { writeSynth } from '../../train/data/synth';
import { listCityscapes } from '../../train/data/segmentation';
import { I2IModel } from '../../train/i2i';
import { batchNorm, conv2d, relu, sequential, Store } from '../../train/models/layers';
import { withInputNorm } from '../../train/models/input-norm';
import { encoderOf } from '../../train/models/net';
import { openRun } from '../../train/run';
import { train } from '../../train/trainer';
import { OPTDIGITS, randomiseStatistics, tmpDir } from '../helpers';

const CLI = path.resolve(__dirname, '../../bin/i2i.js');
function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: path.resolve(__dirname, '../..') }, (err, stdout, stderr) =>
      resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
  });
}

/** conv -> BN (momentum 0.9) -> ReLU -> conv (stride 2) -> BN (momentum 0.99) -> ReLU, behind the 'torch' input normalisation. */
function tinyNet() {
  const s = new Store('t', 7);
  const conv1 = conv2d(s, 'c1', 3, 4, 3, 1), bn1 = batchNorm(s, 'bn1', 4), conv2 = conv2d(s, 'c2', 4, 5, 3, 2), bn2 = batchNorm(s, 'bn2', 5, 0.99, 1e-3);
  const body = sequential(conv1, bn1, relu, conv2, bn2, relu);
  // Non-trivial gamma and beta: the second layer's input depends on how the first normalises.
  for (const [k, v] of s.trainable) if (/gamma|beta|\/b$/.test(k)) tf.tidy(() => v.assign(tf.randomUniform(v.shape, 0.5, 1.5, 'float32', k.length)));
  const net = withInputNorm(encoderOf('t', s, body, [0, 0, 5]), 'torch');
  return { net, s, conv1, conv2 };
}

/** Mean and variance (E[(x - mean)^2]) over every pixel of every image, per channel (the reference). */
function population(xs: tf.Tensor4D[]): { mean: number[]; variance: number[] } {
  return tf.tidy(() => {
    const c = xs[0].shape[3];
    const all = tf.concat(xs.map((x) => tf.reshape(x, [-1, c])), 0);
    const mean = tf.mean(all, 0);
    const variance = tf.mean(tf.square(tf.sub(all, mean)), 0);
    return { mean: Array.from(mean.dataSync()), variance: Array.from(variance.dataSync()) };
  });
}

const close = (a: number[], b: number[], tol: number, what: string) => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `${what}[${i}]: ${v} vs ${b[i]}`));

describe('precise batch norm / AdaBN (train/bn-recalibrate)', function () {
  this.timeout(300000);

  it('each layer gets the population statistics of its input over all pixels of all batches; the second layer sees the first normalised by its batch (train mode, one pass)', async () => {
    const { net, s, conv1, conv2 } = tinyNet();
    const read = (k: string) => Array.from(s.buffers.get(`t/${k}`)!.dataSync());
    // Batches of different sizes and pixel counts weigh by pixels: 2 images, then 1.
    const batches: BnBatch[] = [[2, 8, 12], [1, 8, 12]].map(([n, h, w], i) => ({ data: tf.tidy(() => tf.randomUniform([n, h, w, 3], -1, 1, 'float32', 11 + i).dataSync() as Float32Array), shape: [n, h, w, 3] }));
    // The reference by hand: bn1's input is conv1 of the normalised images; bn2's input is conv2 of
    // ReLU(bn1 with each batch's own mean and biased variance, gamma and beta).
    const g1 = s.trainable.get('t/bn1/gamma')!, b1 = s.trainable.get('t/bn1/beta')!;
    const in1: tf.Tensor4D[] = [], in2: tf.Tensor4D[] = [];
    for (const b of batches) {
      tf.tidy(() => {
        const x = tf.tensor4d(b.data, b.shape);
        const v = tf.div(tf.sub(tf.div(tf.add(x, 1), 2), tf.tensor1d([0.485, 0.456, 0.406])), tf.tensor1d([0.229, 0.224, 0.225])) as tf.Tensor4D;
        const a = conv1.apply(v, 'eval');
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        const y = tf.relu(tf.add(tf.mul(tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-5))), g1), b1)) as tf.Tensor4D;
        in1.push(tf.keep(a)); in2.push(tf.keep(conv2.apply(y, 'eval')));
      });
    }
    const want1 = population(in1), want2 = population(in2);
    tf.dispose([...in1, ...in2]);
    const r = await recalibrateChain([net], batches);
    assert.deepEqual(r, { layers: 2, networks: ['t'], images: 3, batches: 2 });
    close(read('bn1/mean'), want1.mean, 1e-5, 'bn1 mean'); close(read('bn1/var'), want1.variance, 1e-5, 'bn1 var');
    close(read('bn2/mean'), want2.mean, 1e-5, 'bn2 mean'); close(read('bn2/var'), want2.variance, 1e-5, 'bn2 var');
    s.dispose();
  });

  it('changes only the batch-norm buffers of f, in memory: trainable weights bit-identical, the run on disk untouched, no tensor left', async () => {
    const root = tmpDir();
    const run = path.join(root, 'run');
    await train({ task: 'mnist-optdigits', method: 'source-only', out: run, progress: () => undefined,
      overrides: { steps: 2, batchSize: 8, model: { encoderWidths: [8, 8, 16, 16] }, data: { sourceLimit: 64, targetLimit: 64, targetRoot: OPTDIGITS } } });
    const disk = () => Object.fromEntries(fs.readdirSync(path.join(run, 'checkpoint')).map((f) => [f, fs.readFileSync(path.join(run, 'checkpoint', f)).toString('base64')]));
    const before = disk();
    const { model } = openRun(run);
    try {
      const snap = () => new Map(model.networks().flatMap((n) => [...n.store.trainable, ...n.store.buffers].map(([k, v]) => [k, Array.from(v.dataSync())] as const)));
      const old = snap();
      const tensors = tf.memory().numTensors;
      const images = tf.tidy(() => tf.randomUniform([20, 28, 28, 1], -1, 1, 'float32', 5).dataSync() as Float32Array);
      const batches = [0, 8, 16].map((i): BnBatch => ({ data: images.slice(i * 784, Math.min(i + 8, 20) * 784), shape: [Math.min(8, 20 - i), 28, 28, 1] }));
      const r = await recalibrateBatchNorm(model, batches);
      assert.equal(tf.memory().numTensors, tensors, 'recalibration leaves tensors behind');
      assert.deepEqual([r.images, r.batches, r.networks], [20, 3, ['f']]);
      const now = snap();
      const changed = [...old.keys()].filter((k) => JSON.stringify(old.get(k)) !== JSON.stringify(now.get(k)));
      assert.deepEqual(changed.sort(), [...model.f.store.buffers.keys()].sort(), 'exactly the running statistics of f change');
      assert.deepEqual(disk(), before, 'the checkpoint files are unchanged');
      // A failure half-way restores the old statistics.
      const bad = (async function* () { yield batches[0]; throw new Error('frame unreadable'); })();
      await assert.rejects(recalibrateBatchNorm(model, bad), /frame unreadable/);
      assert.deepEqual(snap(), now);
      await assert.rejects(recalibrateBatchNorm(model, []), /No frames/);
      assert.equal(tf.memory().numTensors, tensors);
    } finally { model.dispose(); }
  });

  it('a dilated DenseNet segmenter: every BN layer (dense blocks, transitions, context head) is matched and re-estimated on whole synthetic frames', async () => {
    const root = tmpDir();
    await writeSynth({ out: root, domain: 'target', count: 2, height: 64, width: 128, seed: 2 });
    const config = buildConfig('synth-drive', 'source-only', { data: { scale: 0.5 }, model: { recompute: true } } as ConfigPatch);
    const model = new I2IModel(config, 19);
    try {
      randomiseStatistics(model);
      const old = Array.from(model.f.store.buffers.get('f/bn/mean')!.dataSync());
      const before = tf.memory().numTensors;
      const r = await recalibrateBatchNorm(model, sceneBatches(listCityscapes(root, 'train').items, 0.5));
      assert.equal(tf.memory().numTensors, before);
      assert.equal(r.layers, [...model.f.store.buffers.keys()].filter((k) => k.endsWith('/mean')).length);
      assert.ok(r.layers > 10 && r.images === 2);
      assert.notDeepEqual(Array.from(model.f.store.buffers.get('f/bn/mean')!.dataSync()), old);
      // End to end: statistics re-estimated on ONE batch holding both frames are that batch's own, in
      // every layer, so the model in eval mode equals train mode on that batch (a layer matched to
      // the wrong pixel count or momentum would differ).
      const both: BnBatch[] = [];
      for await (const b of sceneBatches(listCityscapes(root, 'train').items, 0.5)) both.push(b);
      const batch: BnBatch = { data: Float32Array.from([...both[0].data, ...both[1].data]), shape: [2, both[0].shape[1], both[0].shape[2], both[0].shape[3]] };
      await recalibrateBatchNorm(model, [batch]);
      const rel = tf.tidy(() => {
        const x = tf.tensor4d(batch.data, batch.shape);
        const ev = model.predict(x), tr = model.h.apply(model.f.apply(x, 'train'), 'train');
        return tf.max(tf.abs(tf.sub(ev, tr))).dataSync()[0] / tf.max(tf.abs(tr)).dataSync()[0];
      });
      for (const n of model.networks()) n.store.dropUpdates();
      assert.ok(rel < 1e-5, `eval vs train mode after recalibrating on that batch: ${rel}`);
      assert.equal(tf.memory().numTensors, before);
    } finally { model.dispose(); }
  });

  it('i2i eval --bn-frames on a run: a result and a line naming the frames; --bn-frames 0 or junk is refused', async () => {
    const root = tmpDir();
    const run = path.join(root, 'run');
    await train({ task: 'mnist-optdigits', method: 'source-only', out: run, progress: () => undefined,
      overrides: { steps: 2, batchSize: 8, model: { encoderWidths: [8, 8, 16, 16] }, data: { sourceLimit: 64, targetLimit: 64, targetRoot: OPTDIGITS } } });
    const plain = await cli(['eval', '--checkpoint', run, '--json']);
    const r = await cli(['eval', '--checkpoint', run, '--bn-frames', '40']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`batch-norm statistics of 4 layers re-estimated on 40 unlabelled target frames \\(train split of ${OPTDIGITS.replace(/[/.]/g, '\\$&')}\\)`));
    assert.match(r.stdout, /mnist-optdigits \/ source-only at step 2/);
    const j = await cli(['eval', '--checkpoint', run, '--bn-frames', '40', '--json']);
    const got = JSON.parse(j.stdout), was = JSON.parse(plain.stdout);
    assert.deepEqual(got.bn, { frames: 40, source: OPTDIGITS, split: 'train', layers: 4 });
    assert.equal(got.n, was.n);
    assert.notEqual(got.accuracy, was.accuracy, 'the statistics changed the predictions');
    // --limit bounds a classifier's evaluation too (it evaluated every image).
    const limited = await cli(['eval', '--checkpoint', run, '--limit', '30', '--json']);
    assert.equal(limited.code, 0, limited.stderr);
    assert.equal(JSON.parse(limited.stdout).n, 30);
    assert.ok(was.n > 30);
    for (const bad of ['0', 'many', '2.5']) {
      const e = await cli(['eval', '--checkpoint', run, `--bn-frames=${bad}`]);
      assert.equal(e.code, 2, 'a usage error');
      assert.match(e.stderr, new RegExp(`--bn-frames must be a positive integer, got "${bad.replace('.', '\\.')}"`));
    }
    const e = await cli(['eval', '--checkpoint', run, '--bn-root', OPTDIGITS]);
    assert.equal(e.code, 2);
    assert.match(e.stderr, /--bn-root without --bn-frames/);
  });
});
