import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { openRun } from '../../train/run';
import { UserError } from '../../core/errors';
import { readCheckpoint, saveCheckpoint, disposeCheckpoint } from '../../train/checkpoint';
import { buildConfig, validateConfig, type Config } from '../../train/config';
import { I2IModel } from '../../train/i2i';
import { createEncoder, ENCODER_NAMES, encoderEntry } from '../../train/models/registry';
import { modelState, restoreModel } from '../../train/state';
import { tmpDir } from '../helpers';

describe('the encoder registry', () => {
  const digits = buildConfig('mnist-optdigits', 'source-only', { model: { encoder: 'densenet-digits' } });
  /** A configuration as runs wrote it before the digits DenseNet had its own name. */
  const legacy = (c: Config, dropKind = false): unknown => {
    const { kind, ...rest } = c;
    return { ...(dropKind ? rest : { ...rest, kind }), model: { ...c.model, encoder: 'densenet-small' } };
  };

  it("reads a digits config naming 'densenet-small' as densenet-digits (with or without kind); a segmenter's densenet-small stays", () => {
    assert.equal(validateConfig(legacy(digits)).model.encoder, 'densenet-digits');
    assert.equal(validateConfig(legacy(digits, true)).model.encoder, 'densenet-digits');  // kind defaults to classify
    assert.equal(buildConfig('mnist-optdigits', 'full', { model: { encoder: 'densenet-small' } }).model.encoder, 'densenet-digits');
    assert.equal(buildConfig('synth-drive', 'full').model.encoder, 'densenet-small');
  });

  it('an old digits DenseNet checkpoint restores into the same network, parameter for parameter', () => {
    const m = new I2IModel(digits, 10);
    const run = tmpDir();
    const st = modelState(m);
    saveCheckpoint(run, { config: legacy(digits) as Config, step: 0, classes: [], networks: st.networks, optimizerSteps: st.optimizerSteps, samplers: {} }, st.tensors);
    const ckpt = readCheckpoint(run);
    assert.equal(ckpt.meta.config.model.encoder, 'densenet-digits');
    const again = new I2IModel(ckpt.meta.config, 10);
    assert.deepEqual([...again.f.store.trainable.keys()], [...m.f.store.trainable.keys()]);
    assert.ok(again.f.store.trainable.has('f/block3/l4/conv/w') && again.f.store.buffers.has('f/final/bn/var'));
    restoreModel(again, ckpt);
    for (const [k, v] of m.f.store.trainable) assert.deepEqual(again.f.store.trainable.get(k)!.dataSync(), v.dataSync(), k);
    disposeCheckpoint(ckpt); m.dispose(); again.dispose();
  });

  it('a digits DenseNet checkpoint written by the code before the registry (28d362c) restores and predicts as it did', () => {
    // test/fixtures/digits-densenet-28d362c: `i2i train --method source-only --set model.encoder=densenet-small`
    // (2 steps) by commit 28d362c, and that code's logits for a fixed input (logits.json).
    const dir = path.resolve(__dirname, '../fixtures/digits-densenet-28d362c');
    const { model, meta } = openRun(dir);
    try {
      assert.equal(meta.config.model.encoder, 'densenet-digits');
      const want = JSON.parse(fs.readFileSync(path.join(dir, 'logits.json'), 'utf8')) as number[];
      const x = tf.tensor4d(Float32Array.from({ length: 2 * 32 * 32 }, (_, i) => Math.sin(i)), [2, 32, 32, 1]);
      const got = Array.from(tf.tidy(() => model.predict(x).dataSync()));
      x.dispose();
      assert.equal(got.length, want.length);
      got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) <= 1e-6, `logit ${i}: ${v} vs ${want[i]}`));
    } finally { model.dispose(); }
  });

  it('refuses an encoder for a task kind it does not serve, naming the ones that do', () => {
    const cfg = buildConfig('synth-drive', 'source-only', { model: { encoder: 'lenet' } });
    assert.throws(() => createEncoder(cfg, 'f', 0), (e: unknown) => e instanceof UserError && /lenet encoder does not serve segment/.test(e.message) && e.fix === 'Use --encoder densenet-small | densenet121 | fastseg | resnet34 | resnet50.');
  });

  it("inputNorm 'auto' with --init is the entry's ImageNet preprocessing", () => {
    for (const name of ENCODER_NAMES) {
      const entry = encoderEntry(name)!;
      const cfg = buildConfig(entry.kinds[0] === 'segment' ? 'synth-drive' : 'mnist-optdigits', 'source-only', { model: { encoder: name, init: 'x.json' } });
      assert.equal(cfg.model.inputNorm, entry.pretrainedNorm ?? 'none', name);
    }
    assert.equal(buildConfig('synth-drive', 'source-only', { model: { encoder: 'resnet50', init: 'x.json' } }).model.inputNorm, 'caffe');
    assert.equal(buildConfig('synth-drive', 'source-only', { model: { encoder: 'resnet50' } }).model.inputNorm, 'none');
  });
});
