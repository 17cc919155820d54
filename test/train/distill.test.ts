import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import * as tf from '../../core/tf';
import { ffmpegPath, ffprobePath } from '../../core/ffmpeg';
import { openBundle } from '../../runtime/bundle';
import { decodeToInput, resizeLabels } from '../../runtime/image';
import { buildConfig } from '../../train/config';
import { disposeCheckpoint, readCheckpoint } from '../../train/checkpoint';
import { listCityscapes } from '../../train/data/segmentation';
import { sceneDomain } from '../../train/data/domain';
import { writeSynth } from '../../train/data/synth';
import { distillationLoss, DistillTeacher } from '../../train/distill';
import { I2IModel, type Batch, type Kept } from '../../train/i2i';
import { restoreModel } from '../../train/state';
import { CITYSCAPES_CLASSES } from '../../core/labels';
import { checkpointValues, tmpDir, runBin } from '../helpers';

const cli = runBin;
const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const softmax = (v: number[]) => { const e = v.map(Math.exp); const s = e.reduce((a, b) => a + b, 0); return e.map((x) => x / s); };
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('distillation (train/distill.ts, i2i distill)', function () {
  this.timeout(600000);

  it('L_kd = T^2 * mean over weighted pixels of KL(softmax(t/T) || softmax(s/T)); its gradient is T (softmax(s/T) - softmax(t/T))', () => {
    const s = [[1, 2, 0.5], [0, -1, 3], [4, 4, 4]], t = [[2, 0, 1], [1, 1, 1], [0, 9, 0]];
    const T = 2;
    const kl = (a: number[], b: number[]) => { const p = softmax(a.map((v) => v / T)), q = softmax(b.map((v) => v / T)); return p.reduce((acc, pi, i) => acc + pi * Math.log(pi / q[i]), 0); };
    // The third pixel has weight 0 (ignored): the mean is over the first two.
    const want = T * T * (kl(t[0], s[0]) + kl(t[1], s[1])) / 2;
    const st = tf.tensor2d(s), tt = tf.tensor2d(t), w = tf.tensor1d([1, 1, 0]);
    const got = distillationLoss(st, tt, T, w).dataSync()[0];
    assert.ok(Math.abs(got - want) < 1e-5, `${got} vs ${want}`);
    const g = tf.grad((x: tf.Tensor) => distillationLoss(x, tt, T, w))(st).arraySync() as number[][];
    for (let i = 0; i < 2; i++) {
      const ps = softmax(s[i].map((v) => v / T)), pt = softmax(t[i].map((v) => v / T));
      ps.forEach((p, c) => assert.ok(Math.abs(g[i][c] - T * (p - pt[c]) / 2) < 1e-5, `grad [${i}][${c}]`));
    }
    assert.ok(g[2].every((v) => v === 0), 'an ignored pixel gets no gradient');
    // Without weights every pixel counts; identical logits cost nothing.
    assert.ok(Math.abs(distillationLoss(tt, tt, 4).dataSync()[0]) < 1e-6);
    tf.dispose([st, tt, w]);
  });

  it("the teacher's variables get no gradient from L_kd; only the student's f and h do", () => {
    const cfg = (method: string, extra = {}) => buildConfig('synth-drive', method, { batchSize: 2, data: { imageSize: 16 }, ...extra });
    const teacherModel = new I2IModel(cfg('source-only'), 19);
    const student = new I2IModel(cfg('distill', { model: { encoder: 'fastseg' }, distill: { teacher: '(in memory)' } }), 19);
    const teacher = DistillTeacher.of(teacherModel);
    student.attachTeacher(teacher);
    const b: Batch = {
      x: tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 1) as tf.Tensor4D, y: tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 2) as tf.Tensor4D,
      labels: tf.fill([2, 16, 16], 3, 'int32'),
    };
    try {
      const studentVars = [student.f, student.h].flatMap((n) => n.store.variables());
      const teacherVars = teacherModel.networks().flatMap((n) => n.store.variables());
      const keep: Kept = {};
      const teacherLogits = student.teacherLogits(b)!;
      const { grads, value } = tf.variableGrads(() => student.generatorLoss(b, 'joint', keep, { teacherLogits }).terms.kd!, [...studentVars, ...teacherVars]);
      assert.ok(value.dataSync()[0] > 0);
      const names = new Set(Object.keys(grads));
      assert.ok(studentVars.every((v) => names.has(v.name)), 'every student variable learns from L_kd');
      assert.ok(teacherVars.every((v) => !names.has(v.name)), 'no teacher variable gets a gradient');
      tf.dispose([...Object.values(grads), value, teacherLogits]);
      student.networks().forEach((n) => n.store.dropUpdates());
    } finally { student.dispose(); teacher.dispose(); b.x.dispose(); b.y.dispose(); b.labels.dispose(); }
  });

  describe('runs through the bin', () => {
    const root = tmpDir();
    const src = path.join(root, 'source'), tgt = path.join(root, 'target');
    const teacher = path.join(root, 'teacher');
    // A faster rate than the preset's so that 120 steps make a confident teacher and 60 a student that follows it.
    const tiny = ['--set', 'data.imageSize=32', '--set', 'batchSize=2', '--set', 'logEvery=1', '--set', 'optim.lr=1e-3'];
    before(async () => {
      await writeSynth({ out: src, domain: 'source', count: 6, height: 64, width: 128, seed: 1 });
      await writeSynth({ out: tgt, domain: 'target', count: 6, height: 64, width: 128, seed: 2 });
      const r = await cli(['train', '--task', 'synth-drive', '--method', 'source-only', '--source-root', src, '--target-root', tgt, '--out', teacher, '--steps', '120', ...tiny]);
      assert.equal(r.code, 0, r.stderr);
    });

    /** Share of target pixels where the run's arg-max equals the teacher's (6 target crops). */
    async function agreement(run: string): Promise<number> {
      const classes = [...CITYSCAPES_CLASSES];
      const frames = await sceneDomain(listCityscapes(tgt, 'train'), classes, { scale: 0.5, crop: 32, flip: false, labels: false, seed: 9 }).load(Int32Array.from([0, 1, 2, 3, 4, 5]), 0);
      const y = tf.tensor4d(frames.images, frames.shape);
      const labelsOf = (dir: string) => {
        const ckpt = readCheckpoint(dir);
        const m = new I2IModel(ckpt.meta.config, 19);
        try { restoreModel(m, ckpt, { optimizer: false }); return tf.tidy(() => tf.argMax(m.predict(y, 'target', [32, 32]), -1).dataSync()); } finally { m.dispose(); disposeCheckpoint(ckpt); }
      };
      const a = labelsOf(run), b = labelsOf(teacher);
      y.dispose();
      return Array.from(a).reduce((n: number, v, i) => n + (v === b[i] ? 1 : 0), 0) / a.length;
    }

    // L_kd alone (no source labels, so agreement can come only from the teacher), the same seed
    // before and after; step 1 at learning rate ~0 is the student as initialised.
    const kdOnly = ['--seed', '3', '--set', 'weights.c=0'];
    /** The 60-step student, distilled once for the tests that read it (each also runs alone, --grep). */
    let distilled: ReturnType<typeof cli> | undefined;
    const student = () => (distilled ??= cli(['distill', '--teacher', teacher, '--out', path.join(root, 'student'), '--steps', '60', ...tiny, ...kdOnly]));

    it('i2i distill trains a fastseg student that agrees with its teacher on more target pixels; the teacher run is not changed; resume is bit-exact', async () => {
      const files = ['checkpoint/checkpoint.json', 'checkpoint/weights.bin', 'metrics.jsonl'].map((f) => path.join(teacher, f));
      const before = files.map(sha);
      const at0 = path.join(root, 'student0'), a = path.join(root, 'student'), b = path.join(root, 'student-resumed');
      let r = await cli(['distill', '--teacher', teacher, '--out', at0, '--steps', '1', ...tiny, ...kdOnly, '--set', 'optim.lr=1e-12']);
      assert.equal(r.code, 0, r.stderr);
      r = await student();
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /distilling .*teacher \(synth-drive \/ source-only, densenet-small, step 120\) into fastseg at temperature 2/);
      assert.match(r.stderr, /step 60\/60 .*kd [\d.]+/);
      assert.deepEqual(files.map(sha), before, 'the teacher run is unchanged');
      const [start, end] = [await agreement(at0), await agreement(a)];
      assert.ok(end > start + 0.2, `agreement with the teacher ${(start * 100).toFixed(1)}% -> ${(end * 100).toFixed(1)}%`);

      r = await cli(['distill', '--teacher', teacher, '--out', b, '--steps', '30', ...tiny, ...kdOnly]);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['distill', '--out', b, '--resume', '--steps', '60']);
      assert.equal(r.code, 0, r.stderr);
      const wa = checkpointValues(a), wb = checkpointValues(b);
      for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, `${k} differs after resume`);
      // --resume keeps the run's teacher and settings; a flag that would be ignored is refused.
      r = await cli(['distill', '--out', b, '--resume', '--steps', '61', '--teacher', teacher]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--teacher would be ignored/);
    });

    it('the student never overwrites its teacher, and does not resume against a teacher that changed', async () => {
      let r = await cli(['distill', '--teacher', teacher, '--out', teacher, '--force', '--steps', '1']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /same folder or one holds the other/);
      // Nor through a symbolic link to it.
      const link = path.join(root, 'teacher-link');
      fs.symlinkSync(teacher, link);
      r = await cli(['distill', '--teacher', teacher, '--out', path.join(link, 'student'), '--steps', '1']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /same folder or one holds the other/);
      assert.ok(!fs.existsSync(path.join(teacher, 'student')));
      assert.ok(fs.existsSync(path.join(teacher, 'checkpoint', 'weights.bin')));
      // A teacher trained on after the student started: resuming would distil another model.
      const t2 = path.join(root, 'teacher2'), s2 = path.join(root, 'student2');
      r = await cli(['train', '--task', 'synth-drive', '--method', 'source-only', '--source-root', src, '--target-root', tgt, '--out', t2, '--steps', '2', ...tiny]);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['distill', '--teacher', t2, '--out', s2, '--steps', '1', ...tiny]);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['train', '--out', t2, '--resume', '--steps', '3']);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['distill', '--out', s2, '--resume', '--steps', '2']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /changed since this student started distilling it \(step 2, .*now step 3/);
      // The same when the teacher is named by its checkpoint folder: it is recorded as its run (it
      // used to be fingerprinted as nothing, which switched the check off).
      const t3 = path.join(root, 'teacher3'), s3 = path.join(root, 'student3');
      r = await cli(['train', '--task', 'synth-drive', '--method', 'source-only', '--source-root', src, '--target-root', tgt, '--out', t3, '--steps', '2', ...tiny]);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['distill', '--teacher', path.join(t3, 'checkpoint'), '--out', s3, '--steps', '1', ...tiny]);
      assert.equal(r.code, 0, r.stderr);
      const recorded = readCheckpoint(s3);
      try {
        assert.equal(recorded.meta.config.distill.teacher, t3);
        assert.match(recorded.meta.config.distill.teacherFingerprint ?? '', /^[0-9a-f]{16}$/);
      } finally { disposeCheckpoint(recorded); }
      r = await cli(['train', '--out', t3, '--resume', '--steps', '3']);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['distill', '--out', s3, '--resume', '--steps', '2']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /changed since this student started distilling it \(step 2, .*now step 3/);
      // The bundle names the teacher as it was when distillation started, also once its folder is gone.
      fs.renameSync(t3, `${t3}-moved`);
      const b3 = path.join(root, 'bundle3');
      r = await cli(['convert', '--checkpoint', s3, '--out', b3, '--precision', 'fp32']);
      assert.equal(r.code, 0, r.stderr);
      const { fingerprint: _f, ...named } = JSON.parse(fs.readFileSync(path.join(b3, 'manifest.json'), 'utf8')).training.teacher;
      assert.deepEqual(named, { run: t3, step: 2, task: 'synth-drive', method: 'source-only', encoder: 'densenet-small' });
    });

    it('the student converts to fp32 (within 1e-4 of tfjs) and int8 TFLite, and its manifest names its teacher', async () => {
      const a = path.join(root, 'student');
      assert.equal((await student()).code, 0);
      const out = path.join(root, 'bundle');
      const r = await cli(['convert', '--checkpoint', a, '--out', out, '--precision', 'fp32,int8', '--calibrate', path.join(tgt, 'leftImg8bit', 'train')]);
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
      const { fingerprint, ...named } = m.training.teacher;
      assert.deepEqual(named, { run: teacher, step: 120, task: 'synth-drive', method: 'source-only', encoder: 'densenet-small' });
      assert.equal(fingerprint, createHash('sha256').update(fs.readFileSync(path.join(teacher, 'checkpoint', 'weights.bin'))).digest('hex').slice(0, 16), "the teacher's weights");
      assert.equal(m.training.config.model.encoder, 'fastseg');
      const fp32 = m.parity.find((p: { precision: string; format: string }) => p.precision === 'fp32' && p.format === 'tflite');
      const int8 = m.parity.find((p: { precision: string }) => p.precision === 'int8');
      assert.ok(fp32.maxRelDiffVsTfjs <= 1e-4, JSON.stringify(fp32));
      assert.ok(int8 && int8.labelAgreement > 0.8, JSON.stringify(int8));
      // Like every bundle: logits at the output stride by default, upsampled by the runtime ...
      assert.ok(m.models.every((f: { outputStride?: number }) => f.outputStride === 8), JSON.stringify(m.models));
      const { height: h, width: w } = m.input;
      // ... served by i2i serve (default flags) ...
      const server = spawn(process.execPath, [BIN, 'serve', '--bundle', out, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
      try {
        let err = '';
        server.stderr!.on('data', (d) => { err += d; });
        for (const t0 = Date.now(); !/listening on (\S+)/.test(err) && server.exitCode === null && Date.now() - t0 < 60000;) await new Promise((res) => setTimeout(res, 50));
        const url = /listening on (\S+)/.exec(err)?.[1];
        assert.ok(url, err);
        const frame = await sharp(listCityscapes(tgt, 'train').items[0].image).jpeg().toBuffer();
        const res = await fetch(`${url}/segment?format=labels`, { method: 'POST', body: frame, headers: { 'Content-Type': 'image/jpeg' } });
        assert.equal(res.status, 200, await res.clone().text());
        const meta = await sharp(frame).metadata();
        assert.deepEqual([res.headers.get('x-width'), res.headers.get('x-height')], [String(meta.width), String(meta.height)]);
        const labels = new Uint8Array(await res.arrayBuffer());
        // Exactly what the bundle's runtime computes for the frame (the model the server chose, the
        // same decoding, the labels upsampled from stride 8, then mapped to the frame's size).
        const b = await openBundle(out);
        try {
          const { pixels } = await decodeToInput(frame, b.manifest.input, { maxPixels: 1e8 });
          assert.deepEqual(labels, resizeLabels(b.segment([pixels])[0].labels, w, h, meta.width!, meta.height!));
        } finally { b.dispose(); }
      } finally { server.kill('SIGTERM'); await new Promise((res) => server.once('exit', res)); }
      // ... and through segment-video (ffmpeg in and out).
      const clip = path.join(root, 'clip.mp4'), seg = path.join(root, 'clip.seg.mp4');
      execFileSync(ffmpegPath(), ['-v', 'error', '-f', 'lavfi', '-i', `testsrc=size=${w}x${h}:rate=5:duration=1`, '-pix_fmt', 'yuv420p', '-c:v', 'libx264', clip]);
      const v = await cli(['segment-video', clip, '--bundle', out, '--out', seg]);
      assert.equal(v.code, 0, v.stderr);
      const probe = execFileSync(ffprobePath(), ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'csv=p=0', seg]).toString().trim();
      assert.equal(probe, `${w},${h},5`, 'every frame, at the clip\'s size');
    });

    it('errors name the fix: no --teacher, a teacher of another task kind', async () => {
      let r = await cli(['distill', '--out', path.join(root, 'x')]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /distill needs --teacher RUN/);
      const digits = path.join(root, 'digits');
      r = await cli(['train', '--task', 'mnist-optdigits', '--method', 'source-only', '--target-root', path.resolve(__dirname, '../../data/optdigits'), '--out', digits, '--steps', '1', '--set', 'batchSize=8', '--set', 'data.sourceLimit=16', '--set', 'data.targetLimit=16']);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['distill', '--teacher', digits, '--student', 'fastseg', '--out', path.join(root, 'y'), '--steps', '1']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /is a classify run \(mnist-optdigits\); the fastseg encoder does not serve classify tasks.*--student lenet/);
      r = await cli(['distill', '--teacher', teacher, '--student', 'nope', '--out', path.join(root, 'z'), '--steps', '1']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /There is no encoder named "nope"\. Use --student .*fastseg/);
      r = await cli(['distill', '--teacher', teacher, '--out', path.join(root, 'z'), '--steps', '0']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--steps must be an integer >= 1, got "0"/);
      r = await cli(['distill', '--teacher', teacher, '--out', path.join(root, 'z'), '--steps', '0x10']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--steps must be an integer >= 1, got "0x10"/);
      r = await cli(['distill', '--teacher', teacher, '--out', path.join(root, 'z'), '--target-root', tgt, '--set', `data.targetFrames=${root}`]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--target-root and --target-frames both name the target domain/);
      r = await cli(['distill', '--teacher', teacher, '--out', path.join(root, 'z'), '--target-root', tgt, '--target-videos', root]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--target-root and --target-videos both name the target domain/);
      assert.ok(!fs.existsSync(path.join(root, 'z')), 'nothing written');
    });

    it('--resume refuses every flag it would ignore (train and distill); the schedule may change', async () => {
      const a = path.join(root, 'student');
      assert.equal((await student()).code, 0);
      const before = sha(path.join(a, 'checkpoint', 'weights.bin'));
      for (const [flag, key] of [[['--seed', '5'], /seed 5 would be ignored \(the run has 3\)/], [['--batch-size', '4'], /batchSize 4 would be ignored \(the run has 2\)/], [['--set', 'distill.temperature=3'], /distill.temperature 3 would be ignored \(the run has 2\)/]] as const) {
        const r = await cli(['distill', '--out', a, '--resume', '--steps', '61', ...flag]);
        assert.equal(r.code, 2, `${flag.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, key);
      }
      for (const [flag, key] of [[['--set', 'data.scale=0.25'], /data.scale 0.25 would be ignored \(the run has 0.5\)/], [['--method', 'full'], /method "full" would be ignored \(the run has "source-only"\)/], [['--set', 'weights.c=2'], /weights.c 2 would be ignored/]] as const) {
        const r = await cli(['train', '--out', teacher, '--resume', '--steps', '121', ...flag]);
        assert.equal(r.code, 2, `${flag.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, key);
        assert.match(r.stderr, /only steps, logEvery, evalEvery, checkpointEvery may change/);
      }
      assert.equal(sha(path.join(a, 'checkpoint', 'weights.bin')), before, 'a refused resume writes nothing');
      // The run's own values and the schedule are not changes.
      // Nor are flags whose value the run resolved when it started ('auto', --init none without an init).
      const r = await cli(['distill', '--out', a, '--resume', '--steps', '61', '--seed', '3', '--batch-size', '2', '--set', 'logEvery=5', '--set', 'model.inputNorm=auto', '--set', 'pretrainSteps=-1', '--init', 'none']);
      assert.equal(r.code, 0, r.stderr);
    });
  });
});
