import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { readManifest } from '../../core/bundle';
import { convert } from '../../convert/convert';
import { loadTflite } from '../../runtime/tflite';
import { readCheckpointMeta } from '../../train/checkpoint';
import { recalibrateBatchNorm, sourceBatches } from '../../train/bn-recalibrate';
import { loadEvalSet } from '../../train/evaluate-run';
import { openRun } from '../../train/run';
import { train } from '../../train/trainer';
import { OPTDIGITS, tmpDir } from '../helpers';

describe('convert --bn-frames (precise BN before export)', function () {
  this.timeout(300000);

  it('records the frames in the manifest, and the TFLite file and the parity reference both carry the re-estimated statistics', async () => {
    const root = tmpDir();
    const run = path.join(root, 'run');
    await train({ task: 'mnist-optdigits', method: 'source-only', out: run, progress: () => undefined,
      overrides: { steps: 2, batchSize: 8, model: { encoderWidths: [8, 8, 16, 16] }, data: { sourceLimit: 64, targetLimit: 64, targetRoot: OPTDIGITS } } });
    const out = path.join(root, 'bundle');
    const before = tf.memory().numTensors;
    const m = await convert({ checkpoint: run, out, precisions: ['fp32'], calibrate: OPTDIGITS, calibrationFrames: 4, checkFrames: 4, bnFrames: 48, progress: () => undefined });
    assert.equal(tf.memory().numTensors, before, 'convert leaves tensors behind');
    assert.deepEqual([m.training.bnFrames, m.training.bnSource], [48, OPTDIGITS]);
    assert.deepEqual(readManifest(out).training.bnFrames, 48);
    const [tfl] = m.parity;
    assert.ok(tfl.maxRelDiffVsTfjs! < 1e-4 && tfl.labelAgreement === 1, `parity ${tfl.maxRelDiffVsTfjs} ${tfl.labelAgreement}`);

    // The file against the training model with and without the new statistics, on a check frame.
    const set = await loadEvalSet(readCheckpointMeta(run).config, { root: OPTDIGITS, split: 'train', limit: 48 });
    const x = set.slice(0, 1);
    const file = loadTflite(fs.readFileSync(path.join(out, 'model.tflite')));
    const got = Array.from(file.run(x));
    file.dispose();
    const { model } = openRun(run);
    try {
      const logits = () => tf.tidy(() => Array.from(model.predict(tf.tensor4d(x, [1, set.height, set.width, set.channels])).dataSync()));
      const old = logits();
      await recalibrateBatchNorm(model, sourceBatches(set, 8));
      const recal = logits();
      const diff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / Math.max(...b.map(Math.abs));
      assert.ok(diff(got, recal) < 1e-4, `TFLite vs the recalibrated model: ${diff(got, recal)}`);
      assert.ok(diff(got, old) > 1e-2, `TFLite vs the run's own statistics: ${diff(got, old)} (the recalibration must matter here)`);
    } finally { model.dispose(); }

    // Without --bn-frames nothing is recorded; without --calibrate it is refused with the fix.
    const plain = await convert({ checkpoint: run, out: path.join(root, 'plain'), precisions: ['fp32'], calibrate: OPTDIGITS, checkFrames: 2, progress: () => undefined });
    assert.equal(plain.training.bnFrames, undefined);
    await assert.rejects(convert({ checkpoint: run, out: path.join(root, 'x'), precisions: ['fp32'], bnFrames: 8, progress: () => undefined }), /--bn-frames needs --calibrate/);
    assert.equal(tf.memory().numTensors, before);
  });
});
