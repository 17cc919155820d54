import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as tf from '../../core/tf';
import { convert } from '../../convert/convert';
import { writeReport } from '../../report/report';
import { openBundle } from '../../runtime/bundle';
import { buildConfig, TASKS, validateConfig, type ConfigPatch } from '../../train/config';
import { centreCrops, officeDomain, readOffice, type StoredImages } from '../../train/data/office';
import { evaluateRun, loadEvalSet } from '../../train/evaluate-run';
import { I2IModel, type Batch, type Kept } from '../../train/i2i';
import { IMAGE_GAN } from '../../train/losses';
import { decoders } from '../../train/models/nets';
import { createEncoder } from '../../train/models/registry';
import { openRun } from '../../train/run';
import { train } from '../../train/trainer';
import { ensureResnet50 } from '../../scripts/weights';
import { initFromKeras } from '../../train/init';
import { tmpDir } from '../helpers';

/** Small digits networks for the objective's checks (the section 5.1 structure at small widths). */
const TINY: ConfigPatch = {
  batchSize: 4,
  model: { encoderWidths: [8, 8, 16, 16], decoderWidths: [16, 8, 8], imageCriticWidths: [8, 8, 8], featureCriticWidths: [32, 32] },
};

const CLASSES = ['bike', 'cup', 'mug'];
const W = 300, H = 280;

/** A pattern that tells every position apart: red follows x, green y, blue the class and image. */
function pattern(cls: number, img: number): Buffer {
  const b = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const o = (y * W + x) * 3;
    b[o] = Math.round((x * 255) / (W - 1)); b[o + 1] = Math.round((y * 255) / (H - 1)); b[o + 2] = 40 + cls * 70 + img * 10;
  }
  // A class-specific square, so classes differ in shape as well as colour.
  for (let y = 60 + cls * 50; y < 120 + cls * 50; y++) for (let x = 80 + cls * 40; x < 140 + cls * 40; x++) b.fill(cls * 120, (y * W + x) * 3, (y * W + x) * 3 + 3);
  return b;
}

/** root/<domain>/images/<class>/<i>.jpg: real JPEGs, 300x280, 3 classes x 3 images per domain. */
async function officeTree(domains = ['amazon', 'webcam'], classes = CLASSES): Promise<string> {
  const root = tmpDir('i2i-office-');
  for (const d of domains) {
    for (const [c, name] of classes.entries()) {
      const dir = path.join(root, d, 'images', name);
      fs.mkdirSync(dir, { recursive: true });
      for (let i = 0; i < 3; i++) await sharp(pattern(c, i), { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 95 }).toFile(path.join(dir, `frame_${i}.jpg`));
    }
  }
  return root;
}

/** What sharp makes of a file at 256x256 (the reader's resize), as bytes. */
async function resized(file: string, side = 256): Promise<Buffer> {
  return sharp(file).removeAlpha().toColourspace('srgb').resize(side, side, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
}

/** The crop x crop window at (top, left) of an RGB side x side image, mapped to [-1, 1] as training maps bytes. */
function handCrop(img: Uint8Array, side: number, crop: number, top: number, left: number, flip = false): Float32Array {
  const out = new Float32Array(crop * crop * 3);
  for (let y = 0; y < crop; y++) for (let x = 0; x < crop; x++) for (let k = 0; k < 3; k++) {
    out[(y * crop + x) * 3 + k] = img[((top + y) * side + left + (flip ? crop - 1 - x : x)) * 3 + k] / 127.5 - 1;
  }
  return out;
}

const imageOf = (set: StoredImages, j: number) => set.pixels.subarray(j * set.side * set.side * 3, (j + 1) * set.side * set.side * 3);

/** The window (and mirroring) of `set`'s image j that `crop` is, or undefined. */
function findWindow(set: StoredImages, j: number, crop: Float32Array, c: number): { top: number; left: number; flip: boolean } | undefined {
  for (const flip of [false, true]) for (let top = 0; top <= set.side - c; top++) for (let left = 0; left <= set.side - c; left++) {
    // The pattern's red and green channels place a window at once: check its first pixel, then all of it.
    const img = imageOf(set, j), first = (top * set.side + left + (flip ? c - 1 : 0)) * 3;
    if (Math.fround(img[first] / 127.5 - 1) !== crop[0] || Math.fround(img[first + 1] / 127.5 - 1) !== crop[1]) continue;
    const cand = handCrop(img, set.side, c, top, left, flip);
    if (cand.every((v, i) => v === crop[i])) return { top, left, flip };
  }
  return undefined;
}

describe('Office-31 (4.2, 5.2): data, networks, objective, end to end', function () {
  this.timeout(300000);
  let root: string;
  before(async () => { root = await officeTree(); });

  describe('data', () => {
    it('reads <root>/<domain>/images/<class>/*.jpg resized to 256x256 uint8, classes sorted, labels by folder', async () => {
      const set = await readOffice('amazon', root, { side: 256, flag: '--source-root' });
      assert.equal(set.n, 9);
      assert.equal(set.side, 256);
      assert.ok(set.pixels instanceof Uint8Array);
      assert.equal(set.pixels.length, 9 * 256 * 256 * 3);
      assert.deepEqual(set.classes, CLASSES);
      assert.deepEqual([...set.labels], [0, 0, 0, 1, 1, 1, 2, 2, 2]);
      // A limit (convert's calibration and check frames) spreads over every class, not the first ones.
      assert.deepEqual([...(await readOffice('amazon', root, { side: 32, limit: 3, flag: '--source-root' })).labels], [0, 1, 2]);
      const first = await resized(path.join(root, 'amazon', 'images', 'bike', 'frame_0.jpg'));
      assert.deepEqual(Buffer.from(imageOf(set, 0)), first, 'the stored image is sharp\'s 256x256 linear resize of the 300x280 JPEG');
      // The domain folder itself works as the root too.
      const direct = await readOffice('amazon', path.join(root, 'amazon'), { side: 256, flag: '--source-root' });
      assert.deepEqual(direct.pixels, set.pixels);
    });

    it('names a missing domain folder, a single class, and classes that differ between source and target', async () => {
      await assert.rejects(readOffice('dslr', root, { side: 256, flag: '--target-root' }), /No Office-31 dslr images under .*--target-root/s);
      await assert.rejects(readOffice('dslr', undefined, { side: 256, flag: '--target-root' }), /Pass --target-root/);
      const one = await officeTree(['webcam'], ['bike']);
      await assert.rejects(readOffice('webcam', one, { side: 256, flag: '--target-root' }), /1 class folder\(s\); a classifier needs at least 2/);
      const other = await officeTree(['webcam'], ['bike', 'cup', 'pen']);
      await assert.rejects(train({ task: 'office-amazon-webcam', method: 'source-only', out: path.join(tmpDir(), 'run'), progress: () => undefined,
        overrides: { data: { sourceRoot: root, targetRoot: other } } }), /different classes \(only in amazon: mug; only in webcam: pen\)/);
    });

    it('training crops are 224x224 windows of the 256 image, a function of (seed, step, position in the batch); flips when asked', async () => {
      const set = await readOffice('amazon', root, { side: 256, flag: '--source-root' });
      const idx = Int32Array.from([4, 0, 8, 4]);
      const dom = officeDomain(set, { crop: 224, flip: false, seed: 7 });
      const a = await dom.load(idx, 3), again = await dom.load(idx, 3), next = await dom.load(idx, 4);
      assert.deepEqual(a.shape, [4, 224, 224, 3]);
      assert.deepEqual([...a.labels!], [1, 0, 2, 1]);
      assert.deepEqual(again.images, a.images, 'the same (seed, step) draws the same crops (resume)');
      assert.notDeepEqual(next.images, a.images, 'another step draws other crops');
      const per = 224 * 224 * 3;
      const windows = [...idx].map((j, i) => findWindow(set, j, a.images.subarray(i * per, (i + 1) * per), 224));
      assert.ok(windows.every((w) => w && !w.flip), 'every crop is an unmirrored window of its own image');
      assert.notDeepEqual(windows[0], windows[3], 'the same image at two batch positions gets its own crop');
      // With flips, about half the draws are mirrored windows.
      const flipping = officeDomain(set, { crop: 224, flip: true, seed: 7 });
      const seen = new Set<boolean>();
      for (let step = 0; step < 6; step++) {
        const f = await flipping.load(Int32Array.from([0, 1]), step);
        for (let i = 0; i < 2; i++) { const w = findWindow(set, i, f.images.subarray(i * per, (i + 1) * per), 224); assert.ok(w); seen.add(w.flip); }
      }
      assert.deepEqual([...seen].sort(), [false, true]);
      assert.throws(() => officeDomain(set, { crop: 300, flip: false, seed: 1 }), /data.imageSize 300 is larger than the 256x256 images/);
    });

    it('evaluation (i2i eval, evalEvery, convert frames) uses the centre 224 crop of the 256 resize', async () => {
      const cfg = buildConfig('office-amazon-webcam', 'source-only', { data: { sourceRoot: root, targetRoot: root } });
      const src = await loadEvalSet(cfg);
      assert.equal(src.n, 9);
      assert.deepEqual([src.height, src.width, src.channels], [224, 224, 3]);
      const file = path.join(root, 'webcam', 'images', 'cup', 'frame_1.jpg');
      const expected = handCrop(await resized(file), 256, 224, 16, 16);
      assert.deepEqual(src.slice(4, 5), expected);
      assert.deepEqual(src.slice(3, 6).subarray(224 * 224 * 3, 2 * 224 * 224 * 3), expected, 'a batch holds the same crops');
      await assert.rejects(loadEvalSet(cfg, { split: 'test' }), /Office-31 domains have one set of images/);
      const stored = await readOffice('webcam', root, { side: 256, flag: '--target-root' });
      assert.deepEqual(centreCrops(stored, 224).slice(4, 5), expected);
    });
  });

  describe('configuration', () => {
    it('has the six office tasks; office-amazon-webcam is 5.2\'s setting', () => {
      assert.deepEqual(Object.keys(TASKS).filter((t) => t.startsWith('office-')).sort(),
        ['office-amazon-dslr', 'office-amazon-webcam', 'office-dslr-amazon', 'office-dslr-webcam', 'office-webcam-amazon', 'office-webcam-dslr']);
      const c = buildConfig('office-amazon-webcam', 'full', { data: { sourceRoot: '/data/office31', targetRoot: '/data/office31' } });
      assert.equal(c.kind, 'classify');
      assert.deepEqual([c.data.source, c.data.target], ['amazon', 'webcam']);
      assert.deepEqual([c.data.imageSize, c.data.resize, c.data.channels, c.data.flip], [224, 256, 3, true]);
      assert.deepEqual(c.model.decoderWidths, [512, 256, 128, 64]);
      assert.deepEqual([c.model.encoder, c.model.classifier, c.model.featureCritic, c.model.imageCriticLoss], ['resnet50', 'gap', 'conv1x1', 'lsgan']);
      const init = buildConfig('office-amazon-webcam', 'full', { model: { init: '/w/model.json' } });
      assert.deepEqual(init.optim, { lr: 2e-4, beta1: 0.5, beta2: 0.999, lrScale: { f: 0.1 } });
      assert.equal(init.model.inputNorm, 'caffe');
      // From scratch (no --init): no ImageNet normalisation, and f at the full rate unless asked.
      assert.equal(c.model.inputNorm, 'none');
      assert.deepEqual(c.optim, { lr: 2e-4, beta1: 0.5, beta2: 0.999 });
      assert.deepEqual(buildConfig('office-amazon-webcam', 'full', { optim: { lrScale: { f: 0.5 } } }).optim.lrScale, { f: 0.5 });
      assert.deepEqual(validateConfig(JSON.parse(JSON.stringify(c))), c, 'a checkpoint\'s copy reads back the same');
    });

    it('configurations without the new keys still validate, to the values they had (WGAN-GP, no per-network rates)', () => {
      for (const task of ['mnist-usps', 'svhn-mnist', 'gta5-cityscapes', 'synth-drive']) {
        for (const method of ['source-only', 'full', 'adda', 'cyclegan']) {
          const c = buildConfig(task, method);
          assert.equal(c.model.imageCriticLoss, 'wgan-gp');
          assert.equal(c.model.classifier, 'auto');
          assert.equal(c.model.featureCritic, 'auto');
          assert.equal(c.optim.lrScale, undefined);
          assert.equal(c.criticOptim.lrScale, undefined);
          assert.equal(c.data.resize, undefined);
          assert.equal(c.model.decoderWidths.length, 3);
          // As an older checkpoint stored it: none of the keys this change added.
          const old = JSON.parse(JSON.stringify(c)) as Record<string, Record<string, unknown>>;
          delete old.model.classifier; delete old.model.featureCritic; delete old.model.imageCriticLoss;
          assert.deepEqual(validateConfig(old), c, `${task} / ${method}`);
        }
      }
    });

    it('refuses mixed or misnamed settings with the fix', () => {
      assert.throws(() => buildConfig('synth-drive', 'full', { model: { featureCritic: 'linear' } }), /featureCritic linear.*featureCritic=conv1x1/s);
      assert.throws(() => buildConfig('synth-drive', 'full', { model: { decoderWidths: [8, 8, 8, 8] } }), /decoderWidths has 4 widths/);
      assert.throws(() => buildConfig('mnist-usps', 'full', { data: { target: 'webcam' } as ConfigPatch['data'] }), /Office-31 domains adapt to each other only/);
      assert.throws(() => buildConfig('office-amazon-webcam', 'full', { optim: { lrScale: { encoder: 0.1 } } as unknown as ConfigPatch['optim'] }), /optim.lrScale/);
      assert.throws(() => buildConfig('office-amazon-webcam', 'full', { model: { classifier: 'pixel' } }), /model.classifier pixel does not suit a classify task/);
      assert.throws(() => buildConfig('office-amazon-webcam', 'full', { model: { decoderWidths: [1, 2, 3, 4, 5] } }), /model.decoderWidths/);
    });
  });

  describe('networks', () => {
    it('resnet50 / resnet34 serve classification undilated: 7x7x2048 / 7x7x512 features of a 224 crop, no context head', () => {
      for (const [encoder, channels] of [['resnet50', 2048], ['resnet34', 512]] as const) {
        const cfg = buildConfig('office-amazon-webcam', 'source-only', { model: { encoder } });
        const f = createEncoder(cfg, 'f', 1);
        try {
          assert.deepEqual(f.outShape, [7, 7, channels]);
          assert.ok(![...f.store.trainable.keys()].some((k) => k.includes('context')), 'no anti-gridding head');
          const z = tf.tidy(() => f.apply(tf.zeros([1, 224, 224, 3]) as tf.Tensor4D, 'eval'));
          assert.deepEqual(z.shape, [1, 7, 7, channels]);
          z.dispose();
          // Odd sizes follow the strided convs' ceilings.
          const f73 = createEncoder(buildConfig('office-amazon-webcam', 'source-only', { model: { encoder }, data: { imageSize: 73 } }), 'f', 1);
          const z73 = tf.tidy(() => f73.apply(tf.zeros([1, 73, 73, 3]) as tf.Tensor4D, 'eval'));
          assert.deepEqual([...z73.shape.slice(1)], f73.outShape);
          z73.dispose(); f73.store.dispose();
        } finally { f.store.dispose(); }
      }
    });

    it('--init: Keras ResNet50 ImageNet weights map completely onto the classification ResNet50 (npm run weights:resnet50)', () => {
      const file = ensureResnet50(() => undefined);
      const f = createEncoder(buildConfig('office-amazon-webcam', 'full', { model: { init: file } }), 'f', 1);
      try {
        const r = initFromKeras(f.store, file, { allowUnmatched: false });
        assert.deepEqual([r.unmatchedModel, r.unusedFile, r.randomByDesign, r.ignoredTop], [[], [], [], ['fc1000']]);
      } finally { f.store.dispose(); }
    });

    it('decoders: five 4x4 stride-2 transposed convs from 7x7 to 224x224x3, the first two in g_shared', () => {
      const dec = decoders(3, [7, 7, 16], [224, 224, 3], [8, 6, 5, 4]);
      try {
        const out = tf.tidy(() => dec.gy.apply(tf.randomUniform([2, 7, 7, 16], -1, 1, 'float32', 1) as tf.Tensor4D, 'train-no-stats'));
        assert.deepEqual(out.shape, [2, 224, 224, 3]);
        const [lo, hi] = [out.min().dataSync()[0], out.max().dataSync()[0]];
        assert.ok(lo >= -1 && hi <= 1, 'tanh last');
        out.dispose();
        const convs = (s: typeof dec.shared.store) => [...s.trainable.keys()].filter((k) => /deconv\d\/w$/.test(k)).map((k) => [k, s.trainable.get(k)!.shape]);
        assert.deepEqual(convs(dec.shared.store), [['g_shared/deconv1/w', [4, 4, 8, 16]], ['g_shared/deconv2/w', [4, 4, 6, 8]]]);
        assert.deepEqual(convs(dec.gx.store), [['g_x/deconv3/w', [4, 4, 5, 6]], ['g_x/deconv4/w', [4, 4, 4, 5]], ['g_x/deconv5/w', [4, 4, 3, 4]]]);
        assert.deepEqual(convs(dec.gy.store).map(([k]) => k), ['g_y/deconv3/w', 'g_y/deconv4/w', 'g_y/deconv5/w']);
      } finally { for (const n of [dec.shared, dec.gx, dec.gy]) n.store.dispose(); }
      assert.throws(() => decoders(3, [7, 7, 16], [224, 224, 3], [8, 6, 5]), /cannot map the 7x7 features to 224x224.*Give model.decoderWidths 4 widths/s);
    });

    it('h pools globally then one linear layer; D_z scores each of the 7x7 positions with 1x1 convs 500/500/1', () => {
      const cfg = buildConfig('office-amazon-webcam', 'full', { model: { encoder: 'resnet34', decoderWidths: [4, 4, 4, 4], imageCriticWidths: [4, 4, 4] } });
      const m = new I2IModel(cfg, 31);
      try {
        assert.deepEqual([...m.h.store.trainable].map(([k, v]) => [k, v.shape]), [['h/fc/w', [512, 31]], ['h/fc/b', [31]]]);
        const z = tf.randomUniform([2, 7, 7, 512], 0, 1, 'float32', 3) as tf.Tensor4D;
        const [logits, byHand, scores] = tf.tidy(() => [m.h.apply(z, 'eval'), tf.add(tf.matMul(tf.mean(z, [1, 2]) as tf.Tensor2D, m.h.store.trainable.get('h/fc/w')! as tf.Tensor2D), m.h.store.trainable.get('h/fc/b')!), m.Dz!.apply(z, 'train')]);
        assert.deepEqual(logits.shape, [2, 31]);
        assert.ok(tf.max(tf.abs(tf.sub(logits, byHand))).dataSync()[0] < 1e-5);
        assert.deepEqual(scores.shape, [2, 7, 7, 1]);
        assert.deepEqual([...m.Dz!.store.trainable].filter(([k]) => k.endsWith('/w')).map(([, v]) => v.shape), [[1, 1, 512, 500], [1, 1, 500, 500], [1, 1, 500, 1]]);
        tf.dispose([z, logits, byHand, scores]);
      } finally { m.dispose(); }
    });
  });

  describe('objective', () => {
    const digits = (n = 4, seed = 1): Batch => ({
      x: tf.randomUniform([n, 32, 32, 1], -1, 1, 'float32', seed) as tf.Tensor4D,
      y: tf.randomUniform([n, 32, 32, 1], -1, 1, 'float32', seed + 1) as tf.Tensor4D,
      labels: tf.tensor1d(Array.from({ length: n }, (_, i) => i % 10), 'int32'),
    });
    const free = (b: Batch) => tf.dispose([b.x, b.y, b.labels]);

    it('per-network rates: with optim.lrScale f=0.1 one Adam step moves f 10x less than h for the same gradient', () => {
      const moves = (patch: ConfigPatch) => {
        const m = new I2IModel(buildConfig('mnist-usps', 'source-only', { ...TINY, ...patch }), 10);
        const b = digits();
        try {
          const before = new Map([...m.f.store.trainable, ...m.h.store.trainable].map(([k, v]) => [k, Float32Array.from(v.dataSync())]));
          m.step(b, 0);
          // Adam's first step moves every parameter by lr * g / (|g| + eps): the rate itself, wherever the gradient is not tiny.
          const median = (net: { store: I2IModel['f']['store'] }) => {
            const d: number[] = [];
            for (const [k, v] of net.store.trainable) { const now = v.dataSync(), was = before.get(k)!; for (let i = 0; i < now.length; i++) d.push(Math.abs(now[i] - was[i])); }
            return d.sort((p, q) => p - q)[Math.floor(d.length / 2)];
          };
          return { f: median(m.f), h: median(m.h) };
        } finally { m.dispose(); free(b); }
      };
      const plain = moves({}), scaled = moves({ optim: { lrScale: { f: 0.1 } } });
      assert.ok(Math.abs(plain.f / 2e-4 - 1) < 0.01 && Math.abs(plain.h / 2e-4 - 1) < 0.01, `without scales both move by lr (${plain.f}, ${plain.h})`);
      assert.ok(Math.abs(scaled.h / 2e-4 - 1) < 0.01, `h keeps lr (${scaled.h})`);
      assert.ok(Math.abs(scaled.f / scaled.h - 0.1) < 0.001, `f moves a tenth as far (${scaled.f} vs ${scaled.h})`);
    });

    it('least-squares image critics: the hand value of the scores, the patch map scored, no gradient penalty', () => {
      const { critic, generator, penalty } = IMAGE_GAN.lsgan;
      const real = tf.tensor1d([0.5, 2]), fake = tf.tensor1d([0.25, -1]);
      // ((0.5-1)^2 + (2-1)^2) / 2 + (0.25^2 + 1) / 2
      assert.ok(Math.abs(critic(real, fake).dataSync()[0] - 1.15625) < 1e-6);
      assert.ok(Math.abs(generator(fake).dataSync()[0] - (0.5625 + 4) / 2) < 1e-6);
      assert.equal(penalty, false);
      assert.equal(IMAGE_GAN['wgan-gp'].penalty, true);
      tf.dispose([real, fake]);

      const m = new I2IModel(buildConfig('mnist-usps', 'full', { ...TINY, model: { imageCriticLoss: 'lsgan' } }), 10);
      const b = digits();
      const keep: Kept = { xToY: tf.randomUniform([4, 32, 32, 1], -1, 1, 'float32', 5) as tf.Tensor4D, yToX: tf.randomUniform([4, 32, 32, 1], -1, 1, 'float32', 6) as tf.Tensor4D };
      const eps = tf.ones([4]) as tf.Tensor1D;
      try {
        const n0 = tf.memory().numTensors;
        const [dx, dy, handX, handY] = tf.tidy(() => {
          const r = m.criticLoss(b, keep, eps);
          assert.deepEqual(Object.keys(r.parts).sort(), ['D_x', 'D_y'], 'no gp_x / gp_y');
          const ls = (real: tf.Tensor, f: tf.Tensor) => tf.add(tf.mean(tf.square(tf.sub(real, 1))), tf.mean(tf.square(f)));
          return [r.parts.D_x, r.parts.D_y, ls(m.Dx!.patches(b.x, 'train'), m.Dx!.patches(keep.yToX!, 'train')), ls(m.Dy!.patches(b.y, 'train'), m.Dy!.patches(keep.xToY!, 'train'))];
        });
        assert.ok(Math.abs(dx.dataSync()[0] - handX.dataSync()[0]) < 1e-6 && Math.abs(dy.dataSync()[0] - handY.dataSync()[0]) < 1e-6);
        tf.dispose([dx, dy, handX, handY]);
        assert.equal(tf.memory().numTensors, n0);
        const logged = m.step(b, 0);
        assert.ok(Number.isFinite(logged.D_x) && Number.isFinite(logged.tr));
        assert.ok(!('gp' in logged), 'no gradient penalty is logged');
        const n1 = tf.memory().numTensors;
        m.step(b, 1); m.step(b, 2);
        assert.equal(tf.memory().numTensors, n1, 'steps leave no tensors behind');
      } finally { m.dispose(); free(b); tf.dispose([keep.xToY!, keep.yToX!, eps]); }
      // The default keeps WGAN-GP and its penalty.
      const w = new I2IModel(buildConfig('mnist-usps', 'full', TINY), 10);
      const b2 = digits();
      try { assert.ok(Number.isFinite(w.step(b2, 0).gp)); } finally { w.dispose(); free(b2); }
    });
  });

  it('end to end: office-amazon-webcam full trains on real JPEGs, i2i eval measures it, convert bundles it, the bundle classifies', async () => {
    const dir = tmpDir();
    const run = path.join(dir, 'run'), bundle = path.join(dir, 'bundle');
    // ResNet34 at 64x64 crops of 73x73 images (the 224-of-256 setting at CPU scale): 2x2 features,
    // five decoder layers back to 64x64.
    const overrides: ConfigPatch = {
      steps: 3, batchSize: 2, logEvery: 1, evalEvery: 3, checkpointEvery: 2,
      model: { encoder: 'resnet34', decoderWidths: [8, 8, 8, 8], imageCriticWidths: [4, 8, 8], featureCriticWidths: [16, 16] },
      data: { imageSize: 64, resize: 73, sourceRoot: root, targetRoot: root },
    };
    const n0 = tf.memory().numTensors;
    const t0 = Date.now();
    const r = await train({ task: 'office-amazon-webcam', method: 'full', out: run, overrides, progress: () => undefined });
    const secs = (Date.now() - t0) / 1000;
    assert.equal(tf.memory().numTensors, n0, 'a finished run leaves no tensors behind');
    assert.equal(r.step, 3);
    assert.ok(['c', 'id', 'z', 'tr', 'cyc', 'D_z', 'D_x', 'D_y'].every((k) => Number.isFinite(r.finalLosses[k as keyof typeof r.finalLosses])), JSON.stringify(r.finalLosses));
    assert.ok(!('gp' in r.finalLosses));
    assert.ok(r.targetAccuracy !== undefined && r.targetAccuracy >= 0 && r.targetAccuracy <= 1);
    const metrics = fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(metrics.filter((l) => 'evalImages' in l).map((l) => l.evalImages), [9]);
    process.stderr.write(`      (3 full-method steps of ResNet34 at 64x64, batch 2: ${secs.toFixed(1)} s)\n`);

    const ev = await evaluateRun(run);
    assert.equal(ev.report!.n, 9);
    assert.equal(ev.report!.accuracy, r.targetAccuracy, 'i2i eval measures what evalEvery logged');

    const m = await convert({ checkpoint: run, out: bundle, precisions: ['fp32', 'int8'], calibrate: root, calibrationFrames: 9, eval: root, progress: () => undefined });
    assert.equal(tf.memory().numTensors, n0, 'convert leaves no tensors behind');
    assert.deepEqual(m.classes.map((c) => c.name), CLASSES);
    assert.deepEqual([m.input.height, m.input.width], [64, 64]);
    assert.equal(m.calibration!.frames, 9, 'int8 calibrates on the target\'s centre crops');
    assert.deepEqual(m.parity.map((p) => `${p.format}/${p.precision}`), ['tflite/fp32', 'tflite/int8', 'tfjs-graph/fp32']);
    for (const p of m.parity.filter((q) => q.precision === 'fp32')) assert.ok(p.maxRelDiffVsTfjs! < 1e-4, `${p.format} logits follow the training model (${p.maxRelDiffVsTfjs})`);
    assert.ok(m.parity[1].maxRelDiffVsTfjs! < 0.25, `int8 logits near float (${m.parity[1].maxRelDiffVsTfjs})`);
    assert.equal(m.evaluation!.frames, 9);
    assert.equal(m.evaluation!.tfjsScore, r.targetAccuracy, 'convert scores the same centre crops');

    // The bundle classifies a target image as the training model does.
    const file = path.join(root, 'webcam', 'images', 'mug', 'frame_2.jpg');
    const crop64 = await resized(file, 73); // 73x73, its centre 64x64 at offset 4
    const pixels = new Uint8Array(64 * 64 * 3);
    for (let y = 0; y < 64; y++) pixels.set(crop64.subarray(((y + 4) * 73 + 4) * 3, ((y + 4) * 73 + 4 + 64) * 3), y * 64 * 3);
    const b = await openBundle(bundle, { runtime: 'tflite' });
    const { model } = openRun(run);
    try {
      const [pred] = b.segment([pixels]);
      assert.equal(pred.labels.length, 1);
      const expected = tf.tidy(() => tf.argMax(model.predict(tf.tensor4d(Float32Array.from(pixels, (v) => v / 127.5 - 1), [1, 64, 64, 3])), 1).dataSync()[0]);
      assert.equal(pred.labels[0], expected);
    } finally { b.dispose(); model.dispose(); }

    // i2i report of a classifier: translations of the Office images, per-class accuracy as i2i eval measures it, the bundle's parity.
    const rep = await writeReport({ run, bundle, out: path.join(dir, 'report.html'), translations: 3 });
    assert.deepEqual(rep.sections, ['runs', 'translations', 'scores', 'losses', 'bundle']);
    assert.equal(rep.scores.full, ev.report!.accuracy);
    const html = fs.readFileSync(rep.out, 'utf8');
    assert.match(html, /<img id="figure-4" src="data:image\/png;base64,/);
    assert.match(html, /<table id="scores-table">.*<th>accuracy<\/th><th>bike<\/th><th>cup<\/th><th>mug<\/th><\/tr>/s);
    assert.equal(tf.memory().numTensors, n0, 'the report leaves no tensors behind');
  });
});
