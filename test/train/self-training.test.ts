import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { listCityscapes, listGta5 } from '../../train/data/segmentation';
import { sceneDomain } from '../../train/data/domain';
import { classProbabilities, classStats, RareClassSampler } from '../../train/data/rare-class';
import { writeSynth } from '../../train/data/synth';
import { buildConfig, SELF_TRAINING_DEFAULTS, validateConfig, type ConfigPatch } from '../../train/config';
import { disposeCheckpoint, readCheckpoint } from '../../train/checkpoint';
import { I2IModel, type Batch, type Kept } from '../../train/i2i';
import { weightedCrossEntropy } from '../../train/losses';
import {
  blurKernelSize, classMixMask, confidenceWeights, disposePrepared, emaRate, gaussianKernel, patchKeepMask, photometric, type Prepared,
} from '../../train/self-training';
import { openRun } from '../../train/run';
import { restoreModel } from '../../train/state';
import { train } from '../../train/trainer';
import { CITYSCAPES_CLASSES } from '../../core/labels';
import { checkpointValues, tmpDir, runBin } from '../helpers';
import { TINY } from './i2i.test';

const quiet = () => undefined;
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
};
/** A generator that returns `values` in turn (then 0). */
const sequence = (values: number[]) => { let i = 0; return () => values[i++] ?? 0; };

const cli = runBin;

describe('self-training (train/self-training.ts)', function () {
  this.timeout(600000);

  describe('teacher', () => {
    it('the moving average: teacher <- a * teacher + (1 - a) * student, on weights and running statistics; warm-up min(1 - 1/(t+1), rate)', () => {
      assert.deepEqual([0, 1, 3, 99, 5000].map((t) => emaRate(0.99, t)), [0, 0.5, 0.75, 0.99, 0.99]);
      const m = new I2IModel(buildConfig('mnist-optdigits', 'self-train', TINY), 10);
      try {
        const t = m.selfTraining!.teacher;
        const pick = (store: typeof m.f.store, k: string) => (k.startsWith('buf') ? store.buffers : store.trainable).get(k.slice(4).replace(/^[^/]+/, store.net))!;
        const wKey = `var:${[...m.f.store.trainable.keys()][0]}`, bKey = `buf:${[...m.f.store.buffers.keys()][0]}`;
        for (const k of [wKey, bKey]) {
          const s = pick(m.f.store, k), te = pick(t.f.store, k);
          s.assign(tf.fill(s.shape, 2)); te.assign(tf.fill(te.shape, 10));
        }
        m.selfTraining!.update(m.f.store, m.h.store, 1); // rate 0.5 at step 1
        for (const k of [wKey, bKey]) close(pick(t.f.store, k).dataSync(), new Array(pick(t.f.store, k).size).fill(6));
        m.selfTraining!.update(m.f.store, m.h.store, 3); // 0.75 * 6 + 0.25 * 2 = 5
        for (const k of [wKey, bKey]) close(pick(t.f.store, k).dataSync(), new Array(pick(t.f.store, k).size).fill(5));
        // The student is untouched by the teacher's update.
        close(pick(m.f.store, wKey).dataSync(), new Array(pick(m.f.store, wKey).size).fill(2));
      } finally { m.dispose(); }
    });

    it('a step moves the teacher by the moving average of the updated student, not by gradients', () => {
      const m = new I2IModel(buildConfig('mnist-optdigits', 'self-train', { ...TINY, selfTraining: { threshold: 0 } }), 10);
      const b: Batch = {
        x: tf.randomUniform([4, 32, 32, 1], -1, 1, 'float32', 3) as tf.Tensor4D,
        y: tf.randomUniform([4, 32, 32, 1], -1, 1, 'float32', 4) as tf.Tensor4D,
        labels: tf.tensor1d([0, 1, 2, 3], 'int32'),
      };
      try {
        m.step(b, 0); // rate 0: the teacher is the student
        const vals = (s: typeof m.f.store) => [...s.trainable.values(), ...s.buffers.values()].map((v) => Array.from(v.dataSync()));
        vals(m.selfTraining!.teacher.f.store).forEach((v, i) => close(v, vals(m.f.store)[i]));
        const before = vals(m.selfTraining!.teacher.f.store);
        const losses = m.step(b, 9); // rate min(0.9, 0.99) = 0.9
        assert.ok(Number.isFinite(losses.st!) && losses.st! > 0 && losses.conf === 1, JSON.stringify(losses));
        const student = vals(m.f.store);
        vals(m.selfTraining!.teacher.f.store).forEach((v, i) => close(v, before[i].map((t, j) => 0.9 * t + 0.1 * student[i][j]), 1e-5));
      } finally { m.dispose(); b.x.dispose(); b.y.dispose(); b.labels.dispose(); }
    });
  });

  describe('pseudo-labels, mixing and the st term against hand values', () => {
    it("DACS's confidence weight: each image's share of pixels above the threshold, on all its pixels", () => {
      const labels = Int32Array.from([0, 1, 1, 2, 0, 0, 2, 2]);
      const maxProb = Float32Array.from([0.99, 0.5, 0.97, 0.2, 0.99, 0.98, 0.6, 0.7]);
      const w = confidenceWeights(labels, maxProb, 2, 0.968, 3);
      close(w.confidence, [0.5, 0.5]);
      close(w.weights, [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
      // Per class (50th percentile, capped at 0.968): class 1's confidences {0.5, 0.97} -> 0.5, class
      // 2's {0.2, 0.6, 0.7} -> 0.6, class 0's {0.99, 0.99, 0.98} -> 0.968 (the cap).
      const c = confidenceWeights(labels, maxProb, 2, 0.968, 3, 50);
      close(c.thresholds, [0.968, 0.5, 0.6]);
      // Image 0: 0.99 > .968, 0.5 !> 0.5, 0.97 > 0.5, 0.2 !> 0.6 -> 2/4; image 1: yes, yes, no, 0.7 > 0.6 -> 3/4.
      close(c.confidence, [0.5, 0.75]);
      // Per pixel (weighting 'pixel'): 1 on the confident pixels, 0 on the others; q is unchanged.
      const p = confidenceWeights(labels, maxProb, 2, 0.968, 3, 0, 'pixel');
      close(p.confidence, [0.5, 0.5]);
      close(p.weights, [1, 0, 1, 0, 1, 1, 0, 0]);
      close(confidenceWeights(labels, maxProb, 2, 0.968, 3, 50, 'pixel').weights, [1, 0, 1, 0, 1, 1, 0, 1]);
    });

    it('ClassMix pastes half of the classes present (rounded up, ignored pixels never), with their labels; target pixels keep pseudo-labels and the weight q', () => {
      // Image 0 shows classes 3, 5, 7 and ignore; image 1 shows 4 and 9.
      const src = Int32Array.from([3, 3, 5, 255, 7, 7, /**/ 4, 9, 9, 4, 4, 9]);
      // rand() = 0 always: Fisher-Yates swaps each i with 0: [0,1,2] -> [2,1,0] -> [1,2,0]; the first
      // (3 + 1) / 2 = 2 are classes[1], classes[2] = 5, 7. For [4, 9]: [1, 0]; the first 1: 9.
      const { mask, chosen } = classMixMask(src, 2, () => 0);
      assert.deepEqual(chosen, [[5, 7], [9]]);
      assert.deepEqual(Array.from(mask), [0, 0, 1, 0, 1, 1, /**/ 0, 1, 1, 0, 0, 1]);

      const m = new I2IModel(buildConfig('synth-drive', 'self-train', { batchSize: 2, data: { imageSize: 8 }, selfTraining: { jitter: 0, blur: false } }), 19);
      const shape = [2, 2, 3];
      const prepared: Prepared = {
        pseudo: tf.tensor(Int32Array.from([1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]), shape, 'int32'),
        weights: tf.tensor(Float32Array.from([0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]), shape),
        mix: tf.tensor3d(mask, shape as [number, number, number]),
        photometric: [0, 1].map(() => ({ brightness: 1, contrast: 1, saturation: 1, blurSigma: 0 })),
        confidence: 0.5,
      };
      const x = tf.fill([2, 2, 3, 3], 0.5) as tf.Tensor4D, y = tf.fill([2, 2, 3, 3], -0.5) as tf.Tensor4D;
      const srcLabels = tf.tensor(src, shape, 'int32');
      try {
        const r = m.selfTraining!.mixed(prepared, x, y, srcLabels);
        assert.deepEqual(Array.from(r.labels.dataSync()), [1, 1, 5, 1, 7, 7, /**/ 2, 9, 9, 2, 2, 9]);
        close(r.weights.dataSync(), [0.25, 0.25, 1, 0.25, 1, 1, /**/ 0.75, 1, 1, 0.75, 0.75, 1]);
        const img = r.image.dataSync();
        const want = Array.from(mask).flatMap((v) => [v ? 0.5 : -0.5, v ? 0.5 : -0.5, v ? 0.5 : -0.5]);
        close(img, want, 1e-6);
      } finally { disposePrepared(prepared); x.dispose(); y.dispose(); srcLabels.dispose(); m.dispose(); }
    });

    it("full+st on scenes: ClassMix pastes the translation g_y(f(x)), and L_st still trains exactly f and h (the paste's gradient is stopped)", () => {
      const m = new I2IModel(buildConfig('synth-drive', 'full+st', { batchSize: 2, data: { imageSize: 16 }, selfTraining: { threshold: 0, mixSource: 'translated' } }), 19);
      // Source labels with four classes per crop, so that ClassMix pastes some.
      const lab = Int32Array.from({ length: 2 * 16 * 16 }, (_, i) => [0, 2, 8, 10][(i >> 3) % 4]);
      const b: Batch = {
        x: tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 5) as tf.Tensor4D, y: tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 6) as tf.Tensor4D,
        labels: tf.tensor(lab, [2, 16, 16], 'int32'),
      };
      try {
        assert.ok(m.pastesTranslation() && m.selfTraining!.mixes);
        const owner = new Map<string, string>();
        for (const n of m.networks()) for (const v of n.store.variables()) owner.set(v.name, n.name);
        const critics = new Set(m.critics());
        const vars = m.networks().filter((n) => !critics.has(n)).flatMap((n) => n.store.variables());
        const st = m.prepareSelfTraining(b, 0)!;
        assert.ok(Array.from(st.mix!.dataSync()).some((v) => v === 1), 'something is pasted');
        const keep: Kept = {};
        const { grads, value } = tf.variableGrads(() => m.generatorLoss(b, 'joint', keep, { st }).terms.st!, vars);
        const reached = new Set(Object.entries(grads).filter(([, g]) => tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]) > 0).map(([k]) => owner.get(k)!));
        assert.deepEqual([...reached].sort(), ['f', 'h']);
        tf.dispose([...Object.values(grads), value]); disposePrepared(st);
        Object.values(keep).forEach((t) => t?.dispose());
        m.networks().forEach((n) => n.store.dropUpdates());
      } finally { m.dispose(); b.x.dispose(); b.y.dispose(); b.labels.dispose(); }
    });

    it('st: the mean over labelled pixels of the weight times the cross entropy', () => {
      // Two pixels, two classes: logits [0, ln 3] -> p = [1/4, 3/4]; [ln 3, 0] -> p = [3/4, 1/4].
      const logits = tf.tensor2d([[0, Math.log(3)], [Math.log(3), 0], [5, 5]]);
      const labels = tf.tensor1d([1, 1, 255], 'int32');
      const weights = tf.tensor1d([0.5, 1, 7]);
      const got = weightedCrossEntropy(logits, labels, weights).dataSync()[0];
      const want = (0.5 * -Math.log(3 / 4) + 1 * -Math.log(1 / 4)) / 2;
      assert.ok(Math.abs(got - want) < 1e-6, `${got} vs ${want}`);
      tf.dispose([logits, labels, weights]);
    });

    it('photometric augmentation: identity leaves the image, jitter follows its definitions, blur is a normalised Gaussian', () => {
      const img = tf.tensor4d([[[[0.2, -0.4, 0.6], [-1, 0, 1]]]]); // 1x1x2x3 in [-1, 1]
      const id = { brightness: 1, contrast: 1, saturation: 1, blurSigma: 0 };
      close(photometric(img, [id]).dataSync(), img.dataSync(), 1e-6);
      // Brightness 1.5 in [0, 1]: (v + 1) / 2 * 1.5, clipped, back to [-1, 1].
      const bright = Array.from(img.dataSync(), (v) => Math.min(1, (v + 1) / 2 * 1.5) * 2 - 1);
      close(photometric(img, [{ ...id, brightness: 1.5 }]).dataSync(), bright, 1e-6);
      // Saturation 0: every pixel becomes its grey 0.299 r + 0.587 g + 0.114 b.
      const u = Array.from(img.dataSync(), (v) => (v + 1) / 2);
      const grey = [0, 1].map((p) => 0.299 * u[3 * p] + 0.587 * u[3 * p + 1] + 0.114 * u[3 * p + 2]);
      close(photometric(img, [{ ...id, saturation: 0 }]).dataSync(), grey.flatMap((g) => [g, g, g].map((v) => v * 2 - 1)), 1e-5);
      const k = gaussianKernel(5, 1);
      close([k.reduce((a, b) => a + b, 0)], [1], 1e-6);
      assert.ok(k[2] > k[1] && k[1] > k[0] && Math.abs(k[0] - k[4]) < 1e-9);
      assert.equal(blurKernelSize(96), 9); assert.equal(blurKernelSize(8), 3);
      const flat = tf.fill([1, 12, 12, 3], 0.3) as tf.Tensor4D;
      close(photometric(flat, [{ ...id, blurSigma: 1 }]).dataSync(), new Array(432).fill(0.3), 1e-5);
      tf.dispose([img, flat]);
    });

    it("MIC's mask keeps or masks whole patches, each with probability ratio", () => {
      // 1 image 4x6, patches of 2 (a 2x3 grid): draws below 0.5 mask their cell.
      const keep = patchKeepMask(1, 4, 6, 2, 0.5, sequence([0.1, 0.9, 0.9, 0.9, 0.2, 0.9]));
      assert.deepEqual(Array.from(keep), [0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1]);
      assert.ok(patchKeepMask(2, 5, 5, 2, 0, Math.random).every((v) => v === 1));
      assert.ok(patchKeepMask(2, 5, 5, 2, 1, Math.random).every((v) => v === 0));
    });
  });

  describe('rare-class sampling (DAFormer RCS)', () => {
    it('draws classes by softmax((1 - f) / T) and only frames that show the class, the same at every replay', async () => {
      const stats = { frequency: [0.9, 0.09, 0.01], framesWith: [[0, 1, 2, 3], [1, 2], [3]] };
      const p = classProbabilities(stats, 0.1);
      const e = [0.1, 0.91, 0.99].map((v) => Math.exp(v / 0.1));
      close(p, e.map((v) => v / e.reduce((a, b) => a + b, 0)), 1e-9);
      const s = new RareClassSampler(stats, 0.1, 7);
      const counts = [0, 0, 0, 0];
      for (let step = 0; step < 500; step++) s.draw(step, 2).forEach((j) => counts[j]++);
      // Frame 3, the only one with the rarest class, comes up in about 0.53 + 0.47/4 of draws (a quarter in uniform epochs).
      assert.ok(counts[3] / 1000 > 0.55, JSON.stringify(counts));
      assert.deepEqual(Array.from(s.draw(42, 2)), Array.from(new RareClassSampler(stats, 0.1, 7).draw(42, 2)));
    });

    it('counts the classes of real label maps once, and reads the count back', async () => {
      const dir = tmpDir();
      await writeSynth({ out: dir, domain: 'source', count: 3, height: 32, width: 64, seed: 1 });
      const items = listGta5(dir).items;
      const cache = path.join(dir, 'rcs.json');
      const lines: string[] = [];
      const a = await classStats(items, 19, { cacheFile: cache, progress: (l) => lines.push(l) });
      assert.ok(Math.abs(a.frequency.reduce((x, y) => x + y, 0) - 1) < 1e-9);
      assert.ok(a.framesWith[0].length > 0, 'road is in the synthetic frames');
      const b = await classStats(items, 19, { cacheFile: cache, progress: (l) => lines.push(l) });
      assert.deepEqual(b, a);
      assert.equal(lines.length, 1, 'the second call read the cache');
      // A damaged label map (a GTA5 PNG cut short) is named and left out, as the batches do: not fatal.
      const cut = items[1].label!;
      fs.writeFileSync(cut, fs.readFileSync(cut).subarray(0, 60));
      const c = await classStats(items, 19, { progress: (l) => lines.push(l) });
      assert.match(lines[lines.length - 1], /skipped damaged label map .*truncated/);
      assert.ok(c.framesWith.every((f) => !f.includes(1)) && c.framesWith[0].length > 0);
    });
  });

  describe('runs', () => {
    const root = tmpDir();
    const src = path.join(root, 'source'), tgt = path.join(root, 'target');
    const TINY_SEG: ConfigPatch = {
      batchSize: 2, logEvery: 1, checkpointEvery: 2,
      model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8], featureCriticWidths: [8, 8] },
      data: { imageSize: 32, scale: 0.5, sourceRoot: src, targetRoot: tgt },
    };
    before(async () => {
      await writeSynth({ out: src, domain: 'source', count: 6, height: 64, width: 128, seed: 1 });
      await writeSynth({ out: tgt, domain: 'target', count: 6, height: 64, width: 128, seed: 2 });
    });

    it('full+st resumes bit-exact with its teacher (f_ema, h_ema) and logs st and conf; memory stays flat', async () => {
      const a = path.join(root, 'st-a'), b = path.join(root, 'st-b');
      const o: ConfigPatch = { ...TINY_SEG, steps: 4, seed: 5, weights: { mic: 1 }, data: { ...TINY_SEG.data, rcsTemperature: 0.1 } };
      await train({ task: 'synth-drive', method: 'full+st', out: a, overrides: o, progress: quiet });
      await train({ task: 'synth-drive', method: 'full+st', out: b, overrides: { ...o, steps: 2 }, progress: quiet });
      const before = tf.memory().numTensors;
      await train({ out: b, resume: true, overrides: { steps: 4 }, progress: quiet });
      assert.equal(tf.memory().numTensors, before, 'a run leaves tensors behind');
      const wa = checkpointValues(a), wb = checkpointValues(b);
      assert.ok([...wa.keys()].some((k) => k.startsWith('var:f_ema/')) && [...wa.keys()].some((k) => k.startsWith('buf:h_ema/') || k.startsWith('var:h_ema/')));
      for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, `${k} differs after resume`);
      const lines = fs.readFileSync(path.join(a, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.ok(lines.every((l) => ['c', 'st', 'mic', 'conf', 'tr', 'trc'].every((t) => Number.isFinite(l[t]))), JSON.stringify(lines[0]));
    });

    it('old checkpoints without a teacher still load (the teacher becomes their f and h), and --from starts the teacher as the run\'s f and h', async () => {
      const so = path.join(root, 'so');
      await train({ task: 'synth-drive', method: 'source-only', out: so, overrides: { ...TINY_SEG, steps: 2 }, progress: quiet });
      // A configuration written before self-training existed: no st/mic weights, no selfTraining block.
      const meta = JSON.parse(fs.readFileSync(path.join(so, 'checkpoint', 'checkpoint.json'), 'utf8'));
      const { selfTraining: _s, ...oldConfig } = meta.config;
      const { st: _a, mic: _b, ...oldWeights } = oldConfig.weights;
      const old = validateConfig({ ...oldConfig, weights: oldWeights });
      assert.equal(old.weights.st, 0);
      assert.deepEqual(old.selfTraining, buildConfig('synth-drive', 'source-only').selfTraining, "the task base's (MIC's patch for its crops)");
      assert.notDeepEqual(old.selfTraining, SELF_TRAINING_DEFAULTS);

      const ckpt = readCheckpoint(so);
      const m = new I2IModel(validateConfig({ ...old, weights: { ...old.weights, st: 1 } }), 19);
      try {
        restoreModel(m, ckpt);
        const f = [...m.f.store.trainable.values()].map((v) => Array.from(v.dataSync()));
        const t = [...m.selfTraining!.teacher.f.store.trainable.values()].map((v) => Array.from(v.dataSync()));
        assert.deepEqual(t, f);
      } finally { m.dispose(); disposeCheckpoint(ckpt); }

      // Through the bin: a source-only run continued as full+st (the decoders and critics it lacks start fresh).
      const fine = path.join(root, 'from');
      const r = await cli(['train', '--from', so, '--method', 'full+st', '--out', fine, '--steps', '1']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /fine-tuning from .*g_shared, g_x, g_y, D_x, D_y not in it, initialised/);
      assert.match(r.stdout, /synth-drive \/ full\+st to step 1/);
      const w = checkpointValues(fine);
      assert.ok([...w.keys()].some((k) => k.startsWith('var:g_y/')));
      // The teacher started as the run's f and h (no warm-up from scratch): after one step it is
      // 0.99 x the run's + 0.01 x the student's, weights and running statistics alike.
      const w0 = checkpointValues(so);
      const ema = [...w.keys()].filter((k) => /^var:[fh]_ema\//.test(k));
      assert.ok(ema.length > 10, ema.join());
      for (const k of ema) {
        const own = k.replace('_ema/', '/'), t = w.get(k)!, start = w0.get(own)!, now = w.get(own)!;
        assert.ok(start && now, `${own} in both runs`);
        const err = Math.max(...Array.from(t, (v, i) => Math.abs(v - (0.99 * start[i] + 0.01 * now[i])) / (1e-3 + Math.abs(v))));
        assert.ok(err < 1e-4, `${k}: ${err}`);
      }
      // A stranger's mistakes: --out on the run it starts from (even with --force), another --task,
      // a threshold no pixel can exceed.
      const before = fs.readFileSync(path.join(so, 'checkpoint', 'weights.bin'));
      let bad = await cli(['train', '--from', so, '--method', 'full+st', '--out', so, '--force', '--steps', '1']);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /same folder or one holds the other: the new run would overwrite the run it starts from/);
      assert.deepEqual(fs.readFileSync(path.join(so, 'checkpoint', 'weights.bin')), before, 'the run is intact');
      bad = await cli(['train', '--from', so, '--task', 'mnist-optdigits', '--method', 'full+st', '--out', path.join(root, 'x'), '--steps', '1']);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /is a synth-drive run; --task mnist-optdigits would be ignored/);
      bad = await cli(['train', '--from', so, '--method', 'full+st', '--out', path.join(root, 'x'), '--steps', '1', '--set', 'selfTraining.classPercentile=0', '--set', 'selfTraining.threshold=1']);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /selfTraining.threshold 1 with one threshold: .*no target pixel would ever carry weight/);
      assert.ok(!fs.existsSync(path.join(root, 'x', 'checkpoint')));
      // The run's own task is no conflict.
      const same = await cli(['train', '--from', so, '--task', 'synth-drive', '--method', 'full+st', '--out', path.join(root, 'x'), '--steps', '1']);
      assert.equal(same.code, 0, same.stderr);
    });

    it("--from a run that never self-trained takes today's selfTraining defaults (its block was never used); --from a self-training run keeps its own", async () => {
      // Segmentation's default selection: per pixel, per-class thresholds at the median (CBST).
      const today = buildConfig('synth-drive', 'full+st').selfTraining;
      assert.equal(today.weighting, 'pixel');
      assert.equal(today.classPercentile, 50);
      assert.equal(today.mixSource, 'source', 'ClassMix pastes x, not g_y(f(x))');
      assert.equal(buildConfig('mnist-optdigits', 'full+st').selfTraining.classPercentile, 0, 'classifiers keep one threshold');
      // A source-only run saved by the previous release: DACS's block, as every run then saved it.
      const so = path.join(root, 'so-old');
      await train({ task: 'synth-drive', method: 'source-only', out: so, overrides: { ...TINY_SEG, steps: 1 }, progress: quiet });
      const file = path.join(so, 'checkpoint', 'checkpoint.json');
      const meta = JSON.parse(fs.readFileSync(file, 'utf8'));
      meta.config.selfTraining = { ...meta.config.selfTraining, weighting: 'image', classPercentile: 0 };
      fs.writeFileSync(file, JSON.stringify(meta));
      const saved = (run: string) => JSON.parse(fs.readFileSync(path.join(run, 'checkpoint', 'checkpoint.json'), 'utf8')).config.selfTraining;

      const st = path.join(root, 'so-old-st');
      let r = await cli(['train', '--from', so, '--method', 'full+st', '--out', st, '--steps', '1', '--set', 'selfTraining.threshold=0.9']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(saved(st), { ...today, threshold: 0.9 }, '--set applies on top of the defaults');
      // Continuing a run that self-trained keeps the settings it trained with.
      const more = path.join(root, 'so-old-st-more');
      r = await cli(['train', '--from', st, '--method', 'full+st', '--out', more, '--steps', '1']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(saved(more), saved(st));
      // Without --method too (the run's own method, self-training switched on by --set).
      const on = path.join(root, 'so-old-on');
      r = await cli(['train', '--from', so, '--out', on, '--steps', '1', '--set', 'weights.st=1']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(saved(on), today);
      // A self-training run saved before `weighting` existed resumes as it trained: DACS's weight,
      // not today's default.
      const { weighting: _w, ...older } = saved(st);
      const cfg = JSON.parse(fs.readFileSync(path.join(st, 'checkpoint', 'checkpoint.json'), 'utf8')).config;
      assert.equal(validateConfig({ ...cfg, selfTraining: older }).selfTraining.weighting, 'image');
    });

    it("self-training's pseudo-labels get more of the target pixels right over the first steps (target labels read for this check only)", async () => {
      const cfg = buildConfig('synth-drive', 'self-train', { ...TINY_SEG, batchSize: 4, seed: 1 });
      const classes = [...CITYSCAPES_CLASSES];
      const sampling = { scale: 0.5, crop: 32, flip: false, labels: true };
      const source = sceneDomain(listGta5(src), classes, { ...sampling, seed: 11 });
      const target = sceneDomain(listCityscapes(tgt, 'train', { labels: true }), classes, { ...sampling, seed: 12 });
      const m = new I2IModel(cfg, classes.length);
      // A fixed probe: 6 target crops and their true labels (never given to the model).
      const probe = await target.load(Int32Array.from([0, 1, 2, 3, 4, 5]), 999);
      const py = tf.tensor4d(probe.images, probe.shape);
      const accuracy = () => tf.tidy(() => {
        const pred = tf.argMax(m.selfTraining!.teacher.logits(py, [32, 32]), -1).dataSync();
        let right = 0, n = 0;
        probe.labels!.forEach((l, i) => { if (l !== 255) { n++; if (pred[i] === l) right++; } });
        return right / n;
      });
      const curve: number[] = [accuracy()];
      try {
        for (let step = 0; step < 40; step++) {
          const s = await source.load(Int32Array.from([0, 1, 2, 3, 4, 5].map((i) => (i + step) % 6).slice(0, 4)), step);
          const t = await target.load(Int32Array.from([0, 1, 2, 3, 4, 5].map((i) => (i + 2 * step) % 6).slice(0, 4)), step);
          const b: Batch = { x: tf.tensor4d(s.images, s.shape), labels: tf.tensor(s.labels!, s.labelShape!, 'int32'), y: tf.tensor4d(t.images, t.shape) };
          try { m.step(b, step); } finally { b.x.dispose(); b.y.dispose(); b.labels.dispose(); }
          if ((step + 1) % 10 === 0) curve.push(accuracy());
        }
      } finally { m.dispose(); py.dispose(); }
      const text = curve.map((a) => (a * 100).toFixed(1)).join(' -> ');
      if (process.env.I2I_VERBOSE) console.log(`pseudo-label pixel accuracy ${text}`);
      assert.ok(curve[curve.length - 1] > curve[0] + 0.1, `pseudo-label pixel accuracy ${text}`);
      assert.ok(curve[curve.length - 1] >= Math.max(...curve.slice(0, 2)), `pseudo-label pixel accuracy ${text}`);
    });

    it('i2i train --method self-train and full+st through the bin; i2i eval reads the run, and eval/convert --ema-teacher its teacher', async () => {
      for (const method of ['self-train', 'full+st']) {
        const out = path.join(root, `cli-${method}`);
        const r = await cli(['train', '--task', 'synth-drive', '--method', method, '--source-root', src, '--target-root', tgt, '--out', out, '--steps', '2',
          '--set', 'data.imageSize=32', '--set', 'logEvery=1', '--set', 'batchSize=2']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /step 2\/2 .* conf [\d.]+ .*st [\d.]+/);
        const e = await cli(['eval', '--checkpoint', out, '--target-root', tgt, '--split', 'train', '--json']);
        assert.equal(e.code, 0, e.stderr);
        const j = JSON.parse(e.stdout);
        assert.ok(Number.isFinite(j.mIoU));
        // The JSON's confusion matrix (pixels; rows truth, columns prediction) gives its per-class IoU.
        const m: number[][] = j.confusion;
        assert.equal(m.length, CITYSCAPES_CLASSES.length);
        CITYSCAPES_CLASSES.forEach((c, i) => {
          const truth = m[i].reduce((a, b) => a + b, 0), union = truth + m.reduce((a, row) => a + row[i], 0) - m[i][i];
          // A class absent from the labels is left out (null), even when predicted.
          if (truth > 0) assert.ok(Math.abs(m[i][i] / union - j.perClass[c]) < 1e-9, c);
          else assert.equal(j.perClass[c], null);
        });
      }
      // --ema-teacher: f and h become the checkpoint's f_ema and h_ema (not the student's), in eval and convert.
      const st = path.join(root, 'cli-full+st');
      const saved = checkpointValues(st);
      const { model } = openRun(st, { weights: 'ema-teacher' });
      try {
        let differs = 0;
        for (const net of [model.f, model.h]) {
          for (const [map, prefix] of [[net.store.trainable, 'var'], [net.store.buffers, 'buf']] as const) {
            for (const [k, v] of map) {
              const teacher = saved.get(`${prefix}:${k.replace(/^[^/]+/, `${net.store.net}_ema`)}`)!;
              close(v.dataSync(), teacher, 0);
              if (teacher.some((t, i) => t !== saved.get(`${prefix}:${k}`)![i])) differs++;
            }
          }
        }
        assert.ok(differs > 0, 'after 2 steps the teacher differs from the student');
      } finally { model.dispose(); }
      // Through the bin: eval and convert read other weights with the flag than without (the student's).
      const evalOf = async (...flag: string[]) => {
        const e = await cli(['eval', '--checkpoint', st, '--target-root', tgt, '--split', 'train', '--json', ...flag]);
        assert.equal(e.code, 0, e.stderr);
        return JSON.parse(e.stdout);
      };
      const [byStudent, byTeacher] = [await evalOf(), await evalOf('--ema-teacher')];
      assert.equal(byTeacher.weights, 'ema-teacher');
      assert.notDeepEqual(byTeacher.confusion, byStudent.confusion, 'the teacher labels the frames differently from the student');
      const convertTo = async (bundle: string, ...flag: string[]) => {
        const c = await cli(['convert', '--checkpoint', st, '--out', bundle, '--precision', 'fp32', '--input', '32x64', ...flag]);
        assert.equal(c.code, 0, c.stderr);
        return fs.readFileSync(path.join(bundle, 'model.tflite'));
      };
      const teacherBundle = path.join(root, 'teacher-bundle');
      assert.notDeepEqual(await convertTo(teacherBundle, '--ema-teacher'), await convertTo(path.join(root, 'student-bundle')), 'the teacher bundle holds other weights');
      assert.equal(JSON.parse(fs.readFileSync(path.join(teacherBundle, 'manifest.json'), 'utf8')).training.weights, 'ema-teacher');
      // A run that does not self-train keeps no teacher: refused with the reason, not its student under another name.
      const so = path.join(root, 'cli-source-only');
      // ... and a selfTraining key given to a run that does not self-train is named as acting on nothing.
      const t = await cli(['train', '--task', 'synth-drive', '--method', 'source-only', '--source-root', src, '--target-root', tgt, '--out', so, '--steps', '1',
        '--set', 'data.imageSize=32', '--set', 'batchSize=2', '--set', 'selfTraining.threshold=0.9']);
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stderr, /selfTraining\.threshold set, but weights\.st and weights\.mic are 0 .*self-training is off/);
      for (const args of [['eval', '--checkpoint', so, '--target-root', tgt, '--ema-teacher'], ['convert', '--checkpoint', so, '--out', path.join(root, 'so-bundle'), '--input', '32x64', '--ema-teacher']]) {
        const r = await cli(args);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /keeps no EMA teacher.*weights\.st/);
        assert.ok(!fs.existsSync(path.join(root, 'so-bundle')));
      }
      const bad = await cli(['train', '--task', 'mnist-optdigits', '--method', 'adda', '--set', 'weights.st=1', '--out', path.join(root, 'bad')]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /self-training .* ADDA/);
      // Nor --from an ADDA run: its untied f_t would stay frozen on the target side while f self-trains.
      const adda = path.join(root, 'cli-adda');
      assert.equal((await cli(['train', '--task', 'synth-drive', '--method', 'adda', '--source-root', src, '--target-root', tgt, '--out', adda, '--steps', '2',
        '--set', 'data.imageSize=32', '--set', 'batchSize=2'])).code, 0);
      const fromAdda = await cli(['train', '--from', adda, '--method', 'self-train', '--out', path.join(root, 'from-adda'), '--steps', '1']);
      assert.equal(fromAdda.code, 2, fromAdda.stderr);
      assert.match(fromAdda.stderr, /is an ADDA run \(untied target encoder f_t\); self-train trains one encoder f/);
      assert.ok(!fs.existsSync(path.join(root, 'from-adda')));
    });
  });
});
