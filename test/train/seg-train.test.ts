import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { ffmpegPath } from '../../core/ffmpeg';
import { buildConfig, validateConfig, type ConfigPatch } from '../../train/config';
import { writeSynth } from '../../train/data/synth';
import { evaluateRun } from '../../train/evaluate-run';
import { I2IModel } from '../../train/i2i';
import { dilatedResNet, RESNET34 } from '../../train/models/resnet';
import { train } from '../../train/trainer';
import { checkpointValues as weights, tmpDir } from '../helpers';

/** Tiny synthetic scenes (64x128) and the narrowest networks: seconds per run. */
const TINY_SEG: ConfigPatch = {
  batchSize: 2,
  model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8], featureCriticWidths: [8, 8] },
  data: { imageSize: 32, scale: 0.5 },
  logEvery: 1,
  checkpointEvery: 2,
};
const quiet = () => undefined;

describe('segmentation training (synth-drive, gta5-cityscapes)', function () {
  this.timeout(300000);
  const root = tmpDir();
  const src = path.join(root, 'source'), tgt = path.join(root, 'target');
  before(async () => {
    await writeSynth({ out: src, domain: 'source', count: 6, height: 64, width: 128, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 6, height: 64, width: 128, seed: 2 });
    await writeSynth({ out: tgt, domain: 'target', count: 3, height: 64, width: 128, seed: 3, split: 'val' });
  });
  const data = (o: ConfigPatch = {}): ConfigPatch => ({ ...TINY_SEG, ...o, data: { ...TINY_SEG.data, sourceRoot: src, targetRoot: tgt, ...o.data } });

  it('presets follow 5.3: the full method has no feature critic and no cycle; GTA5 defaults halve frames and take 256 crops', () => {
    const g = buildConfig('gta5-cityscapes', 'full');
    assert.deepEqual([g.kind, g.model.encoder, g.data.scale, g.data.imageSize, g.data.flip, g.data.channels], ['segment', 'densenet121', 0.5, 256, true, 3]);
    assert.equal(g.weights.z, 0); assert.equal(g.weights.cyc, 0); assert.ok(g.weights.id > 0 && g.weights.tr > 0 && g.weights.trc > 0);
    assert.equal(buildConfig('gta5-cityscapes', 'revgrad').weights.z, 0.1);
    assert.throws(() => buildConfig('synth-drive', 'full', { data: { imageSize: 100 } }), /not a multiple of 8/);
  });

  it('a checkpoint config written before the segmentation keys existed still validates, with the old behaviour', () => {
    const now = buildConfig('mnist-optdigits', 'full') as Record<string, unknown> & { model: Record<string, unknown>; data: Record<string, unknown> };
    const { kind: _k, ...old } = now;
    const { recompute: _r, inputNorm: _n, initAllowUnmatched: _a, ...oldModel } = now.model;
    const { scale: _s, flip: _f, targetSplit: _t, videoFps: _v, videoMaxFrames: _m, ...oldData } = now.data;
    const c = validateConfig({ ...old, model: oldModel, data: oldData });
    assert.deepEqual([c.kind, c.model.recompute, c.model.inputNorm, c.data.scale, c.data.flip], ['classify', false, 'none', 1, false]);
  });

  it('the full method trains every network, logs every term, resumes to the same weights, keeps memory flat', async () => {
    const a = path.join(root, 'full-a'), b = path.join(root, 'full-b');
    const o = data({ steps: 4, seed: 5 });
    await train({ task: 'synth-drive', method: 'full', out: a, overrides: o, progress: quiet });
    await train({ task: 'synth-drive', method: 'full', out: b, overrides: { ...o, steps: 2 }, progress: quiet });
    const before = tf.memory().numTensors;
    await train({ out: b, resume: true, overrides: { steps: 4 }, progress: quiet });
    assert.equal(tf.memory().numTensors, before, 'a training run leaves tensors behind');
    const wa = weights(a), wb = weights(b);
    for (const n of ['f', 'h', 'g_shared', 'g_x', 'g_y', 'D_x', 'D_y']) assert.ok([...wa.keys()].some((k) => k.startsWith(`var:${n}/`)), n);
    for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, `${k} differs after resume (crops and flips must replay)`);
    const lines = fs.readFileSync(path.join(a, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.every((l) => ['c', 'id', 'tr', 'trc', 'D_x', 'D_y', 'gp'].every((t) => Number.isFinite(l[t]))));
  });

  it('revgrad uses a 1x1-conv feature critic on the feature map; the oracle trains on the target root\'s labelled pairs', async () => {
    const r = path.join(root, 'revgrad');
    await train({ task: 'synth-drive', method: 'revgrad', out: r, overrides: data({ steps: 2 }), progress: quiet });
    assert.ok([...weights(r).keys()].some((k) => k === 'var:D_z/conv1/w'));
    // The oracle's labelled source is the target's own Cityscapes-layout training split. To see that
    // it reads the target's pairs (not the GTA5-layout source, whose labels are real), train it on a
    // copy of the target whose label maps are all labelId 0 (ignored): then L_c is 0 at every step,
    // while the same run on the target's real labels has L_c > 0.
    const blank = path.join(root, 'target-unlabelled');
    fs.cpSync(path.join(tgt, 'leftImg8bit', 'train'), path.join(blank, 'leftImg8bit', 'train'), { recursive: true });
    const sharp = (await import('sharp')).default;
    for (const city of fs.readdirSync(path.join(tgt, 'gtFine', 'train'))) {
      fs.mkdirSync(path.join(blank, 'gtFine', 'train', city), { recursive: true });
      for (const f of fs.readdirSync(path.join(tgt, 'gtFine', 'train', city))) {
        await sharp(path.join(tgt, 'gtFine', 'train', city, f)).linear(0, 0).png().toFile(path.join(blank, 'gtFine', 'train', city, f));
      }
    }
    const oracle = async (sourceRoot: string, out: string) => {
      await train({ task: 'synth-drive', method: 'source-only', out, overrides: data({ steps: 2, data: { source: 'cityscapes', sourceRoot } }), progress: quiet });
      const logged = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).c as number);
      assert.equal(logged.length, 2);
      return logged;
    };
    const real = await oracle(tgt, path.join(root, 'oracle'));
    assert.ok(real.every((c) => Number.isFinite(c) && c > 0), `L_c on the target's labels: ${real}`);
    assert.deepEqual(await oracle(blank, path.join(root, 'oracle-unlabelled')), [0, 0], 'the oracle did not train on the target root\'s labels');
  });

  it('eval: whole target frames, per-class IoU in Table 4 order and mIoU', async () => {
    const run = path.join(root, 'full-a');
    const r = await evaluateRun(run, { targetRoot: tgt });
    const j = r.json as { mIoU: number; perClass: Record<string, number | null>; n: number; split: string; unit: string };
    assert.equal(j.n, 3); assert.equal(j.split, 'val');
    // Units said: JSON fractions, the text percentages.
    assert.equal(j.unit, 'fraction');
    assert.match(r.text, new RegExp(`mIoU +${(j.mIoU * 100).toFixed(1)}%`));
    assert.deepEqual(Object.keys(j.perClass).slice(0, 3), ['road', 'sidewalk', 'building']);
    assert.equal(Object.keys(j.perClass).length, 19);
    assert.ok(j.mIoU >= 0 && j.mIoU <= 1);
    // Classes the scenes never draw have no ground truth and stay out of the mean.
    assert.ok(Number.isNaN(r.seg!.perClass[12]) && Number.isNaN(r.seg!.perClass[14]));
    await assert.rejects(evaluateRun(run, { targetRoot: path.join(root, 'nowhere') }), /Cityscapes images not found/);
  });

  it('--target-videos: target frames sampled from a folder of videos through ffmpeg', async () => {
    const vids = tmpDir();
    execFileSync(ffmpegPath(), ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=size=128x64:rate=10:duration=1', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', path.join(vids, 'drive.mp4')]);
    const run = path.join(root, 'videos');
    const lines: string[] = [];
    await train({ task: 'synth-drive', method: 'full', out: run, overrides: data({ steps: 2, data: { targetVideos: vids, targetRoot: undefined, videoFps: 5, videoMaxFrames: 4 } }), progress: (l) => lines.push(l) });
    const pngs = () => fs.readdirSync(path.join(run, 'target-frames')).filter((f) => f.endsWith('.png'));
    assert.equal(pngs().length, 4);
    assert.ok(lines.some((l) => l.includes('sampling target frames')));
    // Replaced with other settings (--force): sampled again, not the old run's frames.
    lines.length = 0;
    await train({ task: 'synth-drive', method: 'full', out: run, force: true, overrides: data({ steps: 1, data: { targetVideos: vids, targetRoot: undefined, videoFps: 5, videoMaxFrames: 2 } }), progress: (l) => lines.push(l) });
    assert.equal(pngs().length, 2);
    assert.ok(lines.some((l) => l.includes('sampling target frames')));
    // A sampling that did not finish (no marker) is redone; a finished one is reused on --resume.
    fs.rmSync(path.join(run, 'target-frames', '.sampled.json'));
    fs.rmSync(path.join(run, 'target-frames', pngs()[1]));
    lines.length = 0;
    await train({ out: run, resume: true, overrides: { steps: 2 }, progress: (l) => lines.push(l) });
    assert.equal(pngs().length, 2);
    assert.ok(lines.some((l) => l.includes('sampling target frames')));
    lines.length = 0;
    await train({ out: run, resume: true, overrides: { steps: 3 }, progress: (l) => lines.push(l) });
    assert.ok(!lines.some((l) => l.includes('sampling target frames')), 'reused');
  });

  it('a frame smaller than the crop is named with the fix', async () => {
    await assert.rejects(train({ task: 'synth-drive', method: 'source-only', out: path.join(root, 'big'), overrides: data({ steps: 1, data: { imageSize: 64 } }), progress: quiet }), /smaller than the 64x64 training crop/);
  });

  it('dilated ResNet34: output stride 8, 512 context channels, gradients reach the dilated stages', () => {
    const enc = dilatedResNet('f', 1, 3, RESNET34);
    try {
      const x = tf.randomNormal([1, 32, 32, 3]) as tf.Tensor4D;
      const vars = ['f/res5c_branch2b/w', 'f/res4a_branch2a/w', 'f/context1/conv/w'].map((k) => enc.store.trainable.get(k)!);
      const { value, grads } = tf.variableGrads(() => tf.sum(enc.apply(x, 'train')) as tf.Scalar, vars);
      for (const v of vars) assert.ok(tf.max(tf.abs(grads[v.name])).dataSync()[0] > 0, v.name);
      assert.equal(enc.outStride, 8);
      const y = enc.apply(x, 'eval');
      assert.deepEqual(y.shape, [1, 4, 4, 512]);
      tf.dispose([x, value, y, ...Object.values(grads)]);
      enc.store.dropUpdates();
    } finally { enc.store.dispose(); }
  });

  it('the I2I model builds resnet50 and densenet121 segmenters', () => {
    for (const encoder of ['resnet50', 'densenet121'] as const) {
      const m = new I2IModel(buildConfig('gta5-cityscapes', 'full', { model: { encoder } }), 19);
      assert.equal(m.f.outShape[2], 512);
      m.dispose();
    }
  });
});
