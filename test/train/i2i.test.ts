import { strict as assert } from 'node:assert';
import * as tf from '../../core/tf';
import { buildConfig, type ConfigPatch, type TermName } from '../../train/config';
import { I2IModel, stopGradient, type Batch, type Kept } from '../../train/i2i';
import { disposePrepared } from '../../train/self-training';
import { DistillTeacher } from '../../train/distill';
import { learningRateScale } from '../../train/optim';
import { randomiseStatistics } from '../helpers';

/** A tiny full model on 32x32 digits (the section 5.1 structure at small widths). */
export const TINY: ConfigPatch = {
  batchSize: 4,
  model: { encoderWidths: [8, 8, 16, 16], decoderWidths: [16, 8, 8], imageCriticWidths: [8, 8, 8], featureCriticWidths: [32, 32] },
};

function batch(n = 4, seed = 1): Batch {
  return {
    x: tf.randomUniform([n, 32, 32, 1], -1, 1, 'float32', seed) as tf.Tensor4D,
    y: tf.randomUniform([n, 32, 32, 1], -1, 1, 'float32', seed + 1) as tf.Tensor4D,
    labels: tf.tensor1d(Array.from({ length: n }, (_, i) => i % 10), 'int32'),
  };
}

function disposeBatch(b: Batch) { b.x.dispose(); b.y.dispose(); b.labels.dispose(); }

/** Sum of |gradient| per network for one term of the generator objective (all terms weighted 1). */
function gradientReach(model: I2IModel, term: TermName, b: Batch): Record<string, number> {
  // The generator step's variables: the critics are fixed there (they have their own step).
  const critics = new Set(model.critics());
  const vars = model.networks().filter((n) => !critics.has(n)).flatMap((n) => n.store.variables());
  const owner = new Map<string, string>();
  for (const n of model.networks()) for (const v of n.store.variables()) owner.set(v.name, n.name);
  const keep: Kept = {};
  const st = model.prepareSelfTraining(b, 0);
  const teacherLogits = model.teacherLogits(b);
  const { grads, value } = tf.variableGrads(() => model.generatorLoss(b, 'joint', keep, { st, teacherLogits }).terms[term]!, vars);
  teacherLogits?.dispose();
  disposePrepared(st);
  const reach: Record<string, number> = {};
  for (const [name, g] of Object.entries(grads)) {
    const net = owner.get(name)!;
    reach[net] = (reach[net] ?? 0) + tf.sum(tf.abs(g)).dataSync()[0];
    g.dispose();
  }
  value.dispose();
  Object.values(keep).forEach((t) => t?.dispose());
  for (const n of model.networks()) n.store.dropUpdates();
  return reach;
}

const reached = (r: Record<string, number>) => Object.keys(r).filter((k) => r[k] > 0).sort();

describe('I2I objective', () => {
  let model: I2IModel;
  let teacher: DistillTeacher;
  let b: Batch;
  before(() => {
    model = new I2IModel(buildConfig('mnist-optdigits', 'full', { ...TINY, weights: { c: 1, id: 1, z: 1, tr: 1, cyc: 1, trc: 1, st: 1, mic: 1, kd: 1 }, selfTraining: { threshold: 0 }, distill: { teacher: '(in memory)' } }), 10);
    teacher = DistillTeacher.of(new I2IModel(buildConfig('mnist-optdigits', 'source-only', TINY), 10));
    model.attachTeacher(teacher);
    b = batch();
  });
  after(() => { model.dispose(); teacher.dispose(); disposeBatch(b); });

  it('declares the networks of the paper: f, h, g_shared, g_x, g_y, D_z, D_x, D_y (and the self-training teacher f_ema, h_ema)', () => {
    assert.deepEqual(model.networks().map((n) => n.name), ['f', 'h', 'g_shared', 'g_x', 'g_y', 'D_z', 'D_x', 'D_y', 'f_ema', 'h_ema']);
  });

  describe('gradient routing: which networks each term trains', () => {
    const expect: Record<TermName, string[]> = {
      c: ['f', 'h'],
      id: ['f', 'g_shared', 'g_x', 'g_y'],
      z: ['f'],                        // critics are fixed in the generator step
      tr: ['f', 'g_shared', 'g_x', 'g_y'],
      cyc: ['f', 'g_shared', 'g_x', 'g_y'],
      trc: ['f', 'h'],                 // stopped at the translated image: no decoder
      st: ['f', 'h'],                  // the teacher (f_ema, h_ema) is never differentiated
      mic: ['f', 'h'],
      kd: ['f', 'h'],                  // the distillation teacher is another model, run outside the tape
    };
    for (const [term, nets] of Object.entries(expect)) {
      it(`L_${term} reaches ${nets.join(', ')}`, () => {
        assert.deepEqual(reached(gradientReach(model, term as TermName, b)), [...nets].sort());
      });
    }
  });

  it('L_z reaches the encoder only through target features', () => {
    const keep: Kept = {};
    const lz = (x: tf.Tensor4D, y: tf.Tensor4D) => model.generatorLoss({ x, y, labels: b.labels }, 'joint', keep).terms.z!;
    // No path at all from the source images to L_z (tfjs refuses to differentiate along none).
    assert.throws(() => tf.grad((x: tf.Tensor) => lz(x as tf.Tensor4D, b.y))(b.x), /Cannot compute gradient/);
    const gy = tf.grad((y: tf.Tensor) => lz(b.x, y as tf.Tensor4D))(b.y);
    assert.ok(tf.sum(tf.abs(gy)).dataSync()[0] > 0);
    gy.dispose();
    Object.values(keep).forEach((t) => t?.dispose());
    model.networks().forEach((n) => n.store.dropUpdates());
  });

  it('stopGradient passes the value and blocks the gradient', () => {
    const x = tf.tensor([1, 2, 3]);
    assert.deepEqual(Array.from(stopGradient(x).dataSync()), [1, 2, 3]);
    assert.deepEqual(Array.from(tf.grad((t: tf.Tensor) => tf.sum(tf.square(stopGradient(t))))(x).dataSync()), [0, 0, 0]);
  });

  it('critic step: D_z, D_x, D_y learn; no critic gradient reaches f or the decoders', () => {
    const keep: Kept = {};
    const gen = tf.variableGrads(() => model.generatorLoss(b, 'joint', keep).total, model.f.store.variables());
    Object.values(gen.grads).forEach((g) => g.dispose()); gen.value.dispose();
    model.networks().forEach((n) => n.store.dropUpdates());
    const critics = model.critics().flatMap((n) => n.store.variables());
    const others = [model.f, model.dec!.shared, model.dec!.gx, model.dec!.gy].flatMap((n) => n.store.variables());
    const eps = tf.tensor1d([0.1, 0.4, 0.6, 0.9]);
    const { grads, value } = tf.variableGrads(() => model.criticLoss(b, keep, eps).total, [...critics, ...others]);
    const names = new Set(Object.keys(grads));
    assert.ok(critics.every((v) => names.has(v.name)), 'every critic variable gets a gradient');
    assert.ok(others.every((v) => !names.has(v.name)), 'no generator variable gets a critic gradient');
    Object.values(grads).forEach((g) => g.dispose()); value.dispose(); eps.dispose();
    Object.values(keep).forEach((t) => t?.dispose());
  });

  it('L_cyc is |x - g_x(f(g_y(f(x))))|_1 + |y - g_y(f(g_x(f(y))))|_1, on the scale of L_id', () => {
    // Composed from the networks' own apply (each call one batch-norm population), not from the
    // objective's internals; a sum of two means like L_id, as the header of train/i2i.ts says.
    const { f, dec } = model;
    const { gx, gy } = dec!;
    const m = 'train-no-stats' as const;
    const [expected, got] = tf.tidy(() => {
      const backX = gx.apply(f.apply(gy.apply(f.apply(b.x, m), m), m), m);
      const backY = gy.apply(f.apply(gx.apply(f.apply(b.y, m), m), m), m);
      const want = tf.add(tf.mean(tf.abs(tf.sub(b.x, backX))), tf.mean(tf.abs(tf.sub(b.y, backY))));
      const keep: Kept = {};
      const term = model.generatorLoss(b, 'joint', keep).terms.cyc!;
      Object.values(keep).forEach((k) => k?.dispose());
      return [want.dataSync()[0], term.dataSync()[0]];
    });
    for (const net of model.networks()) net.store.dropUpdates();
    assert.ok(expected > 0.2, `cycle error ${expected}`);
    assert.ok(Math.abs(got - expected) < 1e-5, `L_cyc ${got} vs ${expected}`);
  });

  it('no term reaches the source images through the target batch: every network normalises each domain on its own', () => {
    // Every term reads x and y through separate paths (L_z, L_tr's D_x term and the y halves of
    // L_id and L_cyc only y), so the whole objective's gradient at x cannot depend on y. A decode
    // or second encoding over concat([x-side, y-side]) shares batch statistics and breaks this.
    const gradAtX = (y: tf.Tensor4D) => {
      const keep: Kept = {};
      const g = tf.grad((x: tf.Tensor) => model.generatorLoss({ x: x as tf.Tensor4D, y, labels: b.labels }, 'joint', keep).total)(b.x);
      Object.values(keep).forEach((t) => t?.dispose());
      model.networks().forEach((n) => n.store.dropUpdates());
      return g;
    };
    const y2 = tf.randomUniform(b.y.shape, -1, 1, 'float32', 77) as tf.Tensor4D;
    const g1 = gradAtX(b.y), g2 = gradAtX(y2);
    const scale = tf.max(tf.abs(g1)).dataSync()[0];
    const diff = tf.max(tf.abs(tf.sub(g1, g2))).dataSync()[0];
    assert.ok(scale > 0 && diff <= 1e-6 * scale, `dL/dx changes with y by ${diff} (of ${scale})`);
    tf.dispose([y2, g1, g2]);
  });

  it("DRCN's target-only L_id has no path to the source images", () => {
    const m = new I2IModel(buildConfig('mnist-optdigits', 'drcn', TINY), 10);
    const keep: Kept = {};
    const lid = (x: tf.Tensor) => m.generatorLoss({ x: x as tf.Tensor4D, y: b.y, labels: b.labels }, 'joint', keep).terms.id!;
    assert.throws(() => tf.grad(lid)(b.x), /Cannot compute gradient/);
    m.networks().forEach((n) => n.store.dropUpdates());
    m.dispose();
  });

  it('L_trc is computed whenever asked for, and refused where nothing trains the decoder it reads', () => {
    // {c, trc}: the decoders were built and L_trc silently never computed; g_y would stay random.
    assert.throws(() => buildConfig('mnist-optdigits', 'source-only', { ...TINY, weights: { c: 1, id: 0, z: 0, tr: 0, cyc: 0, trc: 1 } }), /no term trains the decoder g_y.*weights\.tr/s);
    assert.throws(() => buildConfig('mnist-optdigits', 'source-only', { ...TINY, weights: { c: 1, id: 1, z: 0, tr: 0, cyc: 0, trc: 1 }, idDomains: ['source'] }), /no term trains the decoder g_y/);
    // The target's reconstruction trains g_y: L_trc is computed and reaches f and h only.
    const m = new I2IModel(buildConfig('mnist-optdigits', 'drcn', { ...TINY, weights: { c: 1, id: 1, z: 0, tr: 0, cyc: 0, trc: 1 } }), 10);
    assert.deepEqual(reached(gradientReach(m, 'trc', b)), ['f', 'h']);
    const l = m.step(b, 0);
    assert.ok(Number.isFinite(l.trc) && l.trc! > 0, JSON.stringify(l));
    m.dispose();
  });

  it('ImageNet input normalisation is refused for 1-channel digits, naming the fix', () => {
    assert.throws(() => buildConfig('mnist-optdigits', 'source-only', { model: { inputNorm: 'torch' } }), /inputNorm torch .* 1 channel/);
  });

  it('the segmentation full preset (L_trc on, no cycle) encodes each translation once', () => {
    const m = new I2IModel(buildConfig('synth-drive', 'full', { batchSize: 2, data: { imageSize: 32 } }), 19);
    assert.equal(m.config.weights.cyc, 0);
    assert.ok(m.config.weights.trc > 0);
    const n = 2;
    const sb: Batch = {
      x: tf.randomUniform([n, 32, 32, 3], -1, 1, 'float32', 3) as tf.Tensor4D,
      y: tf.randomUniform([n, 32, 32, 3], -1, 1, 'float32', 4) as tf.Tensor4D,
      labels: tf.randomUniform([n, 32, 32], 0, 19, 'int32', 5),
    };
    // Rows through f per generator pass: x, y and g_y(f(x)) (for L_trc), n each.
    let rows = 0;
    const apply = m.f.apply;
    m.f.apply = (x, mode) => { rows += x.shape[0]; return apply(x, mode); };
    const keep: Kept = {};
    tf.tidy(() => { m.generatorLoss(sb, 'joint', keep); });
    Object.values(keep).forEach((t) => t?.dispose());
    m.networks().forEach((net) => net.store.dropUpdates());
    assert.equal(rows, 3 * n);
    m.f.apply = apply;
    disposeBatch(sb); m.dispose();
  });

  it('g_x and g_y share their first two layers: one variable, two users', () => {
    const shared = model.dec!.shared.store.variables();
    assert.ok(shared.length > 0);
    const own = new Set([...model.dec!.gx.store.variables(), ...model.dec!.gy.store.variables()]);
    assert.ok(shared.every((v) => !own.has(v)));
    // Changing a shared weight changes both decoders' outputs.
    const z = tf.randomNormal([2, 2, 2, 16], 0, 1, 'float32', 3) as tf.Tensor4D;
    const before = [model.dec!.gx.apply(z, 'eval'), model.dec!.gy.apply(z, 'eval')];
    const w = model.dec!.shared.store.trainable.get('g_shared/deconv1/w')!;
    const w0 = tf.clone(w);
    w.assign(tf.add(w, 0.5));
    const after = [model.dec!.gx.apply(z, 'eval'), model.dec!.gy.apply(z, 'eval')];
    for (let i = 0; i < 2; i++) assert.ok(tf.max(tf.abs(tf.sub(before[i], after[i]))).dataSync()[0] > 1e-3);
    w.assign(w0);
    // Both reconstruction halves send gradient into the same shared variable.
    for (const dom of ['source', 'target'] as const) {
      const m2 = new I2IModel(buildConfig('mnist-optdigits', 'drcn', { ...TINY, idDomains: [dom] }), 10);
      const r = gradientReach(m2, 'id', b);
      assert.ok(r.g_shared > 0 && (dom === 'source' ? r.g_x > 0 && !r.g_y : r.g_y > 0 && !r.g_x), JSON.stringify(r));
      m2.dispose();
    }
    [z, w0, ...before, ...after].forEach((t) => t.dispose());
  });
});

describe('training steps', () => {
  it('a few steps lower the loss (source-only L_c, DRCN L_c + L_id)', () => {
    for (const method of ['source-only', 'drcn']) {
      const m = new I2IModel(buildConfig('mnist-optdigits', method, { ...TINY, optim: { lr: 2e-3, beta1: 0.5, beta2: 0.999 } }), 10);
      const b = batch(8, 5);
      const first = m.step(b, 0).total!;
      let last = first;
      for (let i = 1; i < 15; i++) last = m.step(b, i).total!;
      assert.ok(last < 0.7 * first, `${method}: ${first} -> ${last}`);
      m.dispose(); disposeBatch(b);
    }
  });

  it('every method steps without leaking tensors (full, adda across its phase switch)', () => {
    for (const [method, extra] of [['full', {}], ['adda', { steps: 4, pretrainSteps: 2 }], ['cyclegan', {}], ['revgrad', {}]] as const) {
      const m = new I2IModel(buildConfig('mnist-optdigits', method, { ...TINY, ...extra }), 10);
      const b = batch(4, 9);
      m.step(b, 0); m.step(b, 1); m.step(b, 2); // ADDA unties f_t at step 2
      const n0 = tf.memory().numTensors;
      for (let i = 3; i < 6; i++) {
        const l = m.step(b, i);
        assert.ok(Object.values(l).every(Number.isFinite), `${method}: ${JSON.stringify(l)}`);
      }
      assert.equal(tf.memory().numTensors, n0, `${method} leaked tensors`);
      m.dispose(); disposeBatch(b);
    }
  });

  it("the encoder's running statistics follow the target batches when the method sees them, else the source", () => {
    const stats = (m: I2IModel) => [...m.f.store.buffers.values()].map((v) => Array.from(v.dataSync()));
    const after = (method: string, seed: number, ySeed: number) => {
      const m = new I2IModel(buildConfig('mnist-optdigits', method, TINY), 10);
      const b = batch(4, seed);
      b.y.dispose(); b.y = tf.randomUniform([4, 32, 32, 1], -1, 1, 'float32', ySeed) as tf.Tensor4D;
      m.step(b, 0);
      const s = stats(m);
      m.dispose(); disposeBatch(b);
      return s;
    };
    for (const method of ['revgrad', 'full']) {
      // Different source batches, the same target batch: the same running statistics.
      assert.deepEqual(after(method, 21, 40), after(method, 31, 40), method);
      assert.notDeepEqual(after(method, 21, 40), after(method, 21, 50), method);
    }
    assert.notDeepEqual(after('source-only', 21, 40), after('source-only', 31, 40));
  });

  it('each running statistic is updated exactly once per step, by the networks the step uses', () => {
    // Which networks' batch-norm buffers one step updates (nets without buffers: h, the critics).
    const cases: [string, ConfigPatch, string[], number?][] = [
      ['full', {}, ['f', 'g_shared', 'g_x', 'g_y']],
      ['cyclegan', {}, ['f', 'g_shared', 'g_x', 'g_y']],
      ['drcn', {}, ['f', 'g_shared', 'g_y']],
      ['revgrad', {}, ['f']],
      ['source-only', { weights: { c: 1, id: 1, z: 1, tr: 0, cyc: 0, trc: 0 }, idDomains: ['source'] }, ['f', 'g_shared', 'g_x']],
      ['adda', { steps: 4, pretrainSteps: 2 }, ['f'], 0],
      ['adda', { steps: 4, pretrainSteps: 2 }, ['f_t'], 2],
    ];
    for (const [method, patch, want, step] of cases) {
      const m = new I2IModel(buildConfig('mnist-optdigits', method, { ...TINY, ...patch }), 10);
      if (step) m.untie();
      const counts = new Map<string, number>();
      for (const n of m.networks()) {
        const queue = n.store.queueUpdate.bind(n.store);
        n.store.queueUpdate = (v, value) => { counts.set(v.name, (counts.get(v.name) ?? 0) + 1); queue(v, value); };
      }
      const b = batch(4, 23);
      m.step(b, step ?? 0);
      const tag = `${method} ${JSON.stringify(patch)}`;
      for (const n of m.networks()) {
        const got = [...n.store.buffers.values()].map((v) => counts.get(v.name) ?? 0);
        const expected = want.includes(n.name) ? 1 : 0;
        assert.ok(got.every((c) => c === expected), `${tag}: ${n.name} buffers updated ${JSON.stringify(got)} times, want ${expected}`);
      }
      m.dispose(); disposeBatch(b);
    }
  });

  it('lrDecayFrom: both optimisers keep the rate, then decay linearly to zero at `steps`', () => {
    assert.deepEqual([0, 4, 5, 6, 9].map((s) => learningRateScale(s, 10, 0.5)), [1, 1, 1, 0.8, 0.2]);
    assert.deepEqual([0, 9].map((s) => learningRateScale(s, 10, 1)), [1, 1]);
    assert.deepEqual([0, 9].map((s) => learningRateScale(s, 10, 0)), [1, 0.1]);
    // Adam's first update moves each weight by ~lr (m/sqrt(v) = sign(g)): a step at a scaled rate moves
    // a generator weight (h) and a critic weight (D_z) by that fraction of the constant schedule's move.
    const moves = (decayFrom: number, step: number) => {
      const m = new I2IModel(buildConfig('mnist-optdigits', 'revgrad', { ...TINY, steps: 10, lrDecayFrom: decayFrom }), 10);
      const pick = [m.h.store.variables()[0], m.Dz!.store.variables()[0]];
      const before = pick.map((v) => Array.from(v.dataSync()));
      const b = batch(4, 17);
      m.step(b, step);
      const out = pick.map((v, i) => Array.from(v.dataSync()).reduce((a, x, j) => a + Math.abs(x - before[i][j]), 0));
      m.dispose(); disposeBatch(b);
      return out;
    };
    const full = moves(1, 8), decayed = moves(0.5, 8); // step 8 of 10 from 5: 2/5 of the rate
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(decayed[i] / full[i] - 0.4) < 0.01, `${i}: ${decayed[i]} / ${full[i]}`);
  });

  it('the digits DenseNet encoder (densenet-digits) trains in the full objective', () => {
    const m = new I2IModel(buildConfig('mnist-optdigits', 'full', { ...TINY, model: { ...TINY.model, encoder: 'densenet-digits' } }), 10);
    assert.deepEqual(m.f.outShape.slice(0, 2), [2, 2]);
    const b = batch(4, 13);
    const before = Array.from(m.f.store.trainable.get('f/block2/l1/conv/w')!.dataSync());
    const l = m.step(b, 0);
    assert.ok(Object.values(l).every(Number.isFinite));
    assert.notDeepEqual(Array.from(m.f.store.trainable.get('f/block2/l1/conv/w')!.dataSync()), before);
    m.dispose(); disposeBatch(b);
  });

  it('ADDA: f_t starts as a copy of f (weights and running statistics), in variables of its own', () => {
    const m = new I2IModel(buildConfig('mnist-optdigits', 'adda', { ...TINY, steps: 4, pretrainSteps: 2 }), 10);
    randomiseStatistics(m);
    m.untie();
    const fT = m.targetEncoder();
    const named = (s: Map<string, tf.Variable>, net: string) => new Map([...s].map(([k, v]) => [k.slice(net.length + 1), Array.from(v.dataSync())]));
    for (const kind of ['trainable', 'buffers'] as const) {
      const a = named(m.f.store[kind], 'f'), c = named(fT.store[kind], 'f_t');
      assert.deepEqual([...c.keys()], [...a.keys()]);
      for (const [k, v] of a) assert.deepEqual(c.get(k), v, `${kind} ${k}`);
    }
    const w = fT.store.variables()[0];
    w.assign(tf.add(w, 1));
    assert.notDeepEqual(Array.from(w.dataSync()), Array.from(m.f.store.variables()[0].dataSync()));
    m.dispose();
  });

  it("ADDA's feature critic sees both domains under batch statistics (not source under running statistics)", () => {
    const m = new I2IModel(buildConfig('mnist-optdigits', 'adda', { ...TINY, steps: 4, pretrainSteps: 2 }), 10);
    randomiseStatistics(m);
    m.untie();
    const b = batch(4, 19);
    const keep: Kept = {};
    tf.tidy(() => { m.generatorLoss(b, 'adapt', keep); });
    const [batchStats, running] = [m.f.apply(b.x, 'train-no-stats'), m.f.apply(b.x, 'eval')];
    const d = (a: tf.Tensor, c: tf.Tensor) => tf.max(tf.abs(tf.sub(a, c))).dataSync()[0];
    assert.ok(d(running, batchStats) > 1e-2, 'running and batch statistics should differ here');
    assert.ok(d(keep.zx!, batchStats) < 1e-6, `source features differ from batch-normalised ones by ${d(keep.zx!, batchStats)}`);
    Object.values(keep).forEach((t) => t?.dispose());
    m.networks().forEach((n) => n.store.dropUpdates());
    tf.dispose([batchStats, running]); disposeBatch(b); m.dispose();
  });

  it('ADDA freezes f and h after pre-training and adapts an untied f_t', () => {
    const m = new I2IModel(buildConfig('mnist-optdigits', 'adda', { ...TINY, steps: 4, pretrainSteps: 2 }), 10);
    const b = batch(4, 11);
    m.step(b, 0); m.step(b, 1);
    assert.equal(m.targetEncoder(), m.f);
    m.step(b, 2);
    assert.notEqual(m.targetEncoder(), m.f);
    const snap = (vars: tf.Variable[]) => vars.map((v) => Array.from(v.dataSync()));
    const f0 = snap(m.f.store.variables()), h0 = snap(m.h.store.variables()), t0 = snap(m.targetEncoder().store.variables());
    m.step(b, 3);
    assert.deepEqual(snap(m.f.store.variables()), f0);
    assert.deepEqual(snap(m.h.store.variables()), h0);
    assert.notDeepEqual(snap(m.targetEncoder().store.variables()), t0);
    m.dispose(); disposeBatch(b);
  });
});
