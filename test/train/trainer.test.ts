import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import type { ConfigPatch } from '../../train/config';
import { readCheckpoint, disposeCheckpoint } from '../../train/checkpoint';
import { evaluateRun } from '../../train/evaluate-run';
import { OBJECTIVE_VERSION } from '../../train/i2i';
import { train } from '../../train/trainer';
import { checkpointValues as weights, OPTDIGITS, tmpDir, runBin } from '../helpers';
import { TINY } from './i2i.test';

const SMALL: ConfigPatch = {
  ...TINY,
  data: { sourceLimit: 64, targetLimit: 64, targetRoot: OPTDIGITS },
  logEvery: 1,
  checkpointEvery: 2,
};
const quiet = () => undefined;

const cli = runBin;

describe('trainer, checkpoints and CLI', function () {
  this.timeout(300000);

  it('--resume continues to the same result as an uninterrupted run (full method, both optimisers)', async () => {
    const dir = tmpDir();
    const a = path.join(dir, 'straight'), b = path.join(dir, 'resumed');
    await train({ task: 'mnist-optdigits', method: 'full', out: a, overrides: { ...SMALL, steps: 6, seed: 3 }, progress: quiet });
    await train({ task: 'mnist-optdigits', method: 'full', out: b, overrides: { ...SMALL, steps: 4, seed: 3 }, progress: quiet });
    assert.equal(readCheckpoint(b).meta.step, 4);
    const r = await train({ out: b, resume: true, overrides: { steps: 6 }, progress: quiet });
    assert.equal(r.step, 6);
    const wa = weights(a), wb = weights(b);
    assert.deepEqual([...wa.keys()].sort(), [...wb.keys()].sort());
    assert.ok([...wa.keys()].some((k) => k.startsWith('optD:')) && [...wa.keys()].some((k) => k.startsWith('buf:')));
    for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, `${k} differs after resume`);
    const lines = fs.readFileSync(path.join(b, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.step), [1, 2, 3, 4, 5, 6]);
    assert.ok(lines.every((l) => Number.isFinite(l.c) && Number.isFinite(l.D_x) && l.stepsPerSec > 0));
  });

  it('ADDA resumes across its phase switch (the untied f_t is saved and restored)', async () => {
    const dir = tmpDir();
    const a = path.join(dir, 'a'), b = path.join(dir, 'b');
    const o = { ...SMALL, steps: 5, pretrainSteps: 2 };
    await train({ task: 'mnist-optdigits', method: 'adda', out: a, overrides: o, progress: quiet });
    await train({ task: 'mnist-optdigits', method: 'adda', out: b, overrides: { ...o, steps: 3 }, progress: quiet });
    await train({ out: b, resume: true, overrides: { steps: 5 }, progress: quiet });
    const wa = weights(a), wb = weights(b);
    assert.ok([...wa.keys()].some((k) => k.startsWith('var:f_t/')));
    for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, k);
  });

  it('a checkpoint interrupted mid-swap still loads; damaged ones are named', async () => {
    const dir = tmpDir();
    await train({ task: 'mnist-optdigits', method: 'source-only', out: dir, overrides: { ...SMALL, steps: 2 }, progress: quiet });
    // A kill between the two renames of a save leaves only checkpoint.prev (plus a partial tmp).
    fs.renameSync(path.join(dir, 'checkpoint'), path.join(dir, 'checkpoint.prev'));
    fs.mkdirSync(path.join(dir, 'checkpoint.tmp-999'));
    fs.writeFileSync(path.join(dir, 'checkpoint.tmp-999', 'weights.bin'), 'partial');
    const c = readCheckpoint(dir);
    assert.equal(c.meta.step, 2);
    disposeCheckpoint(c);
    const r = await train({ out: dir, resume: true, overrides: { steps: 3 }, progress: quiet });
    assert.equal(r.step, 3);
    fs.truncateSync(path.join(dir, 'checkpoint', 'weights.bin'), 10);
    assert.throws(() => readCheckpoint(dir), /truncated/);
    assert.throws(() => readCheckpoint(tmpDir()), /No checkpoint in/);
  });

  it("checkpoints record the objective's revision; resuming an older one says it continues under the new", async () => {
    const dir = tmpDir();
    await train({ task: 'mnist-optdigits', method: 'source-only', out: dir, overrides: { ...SMALL, steps: 2 }, progress: quiet });
    const file = path.join(dir, 'checkpoint', 'checkpoint.json');
    const meta = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(meta.objective, OBJECTIVE_VERSION);
    const lines: string[] = [];
    await train({ out: dir, resume: true, overrides: { steps: 3 }, progress: (l) => lines.push(l) });
    assert.ok(!lines.some((l) => l.includes('revision')), lines.join('\n'));
    // A checkpoint written before the revision existed is revision 1.
    const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    delete saved.objective;
    fs.writeFileSync(file, JSON.stringify(saved));
    await train({ out: dir, resume: true, overrides: { steps: 4 }, progress: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.includes(`trained with revision 1 of the objective; it continues with revision ${OBJECTIVE_VERSION}`)), lines.join('\n'));
  });

  it('evaluates target accuracy and the confusion matrix', async () => {
    const dir = tmpDir();
    await train({ task: 'mnist-optdigits', method: 'source-only', out: dir, overrides: { ...SMALL, steps: 2 }, progress: quiet });
    const r = await evaluateRun(dir);
    assert.equal(r.report!.n, 1797);
    assert.equal(r.report!.confusion.flat().reduce((a, b) => a + b, 0), 1797);
    assert.ok(r.report!.accuracy >= 0 && r.report!.accuracy <= 1);
    assert.match(r.text, /accuracy \d+\.\d+% on 1797 images/);
  });

  it('evalEvery logs the accuracy i2i eval would report, without changing training (and survives --resume)', async () => {
    const dir = tmpDir();
    const plain = path.join(dir, 'plain'), watched = path.join(dir, 'watched');
    const o = { ...SMALL, steps: 3, seed: 5 };
    await train({ task: 'mnist-optdigits', method: 'revgrad', out: plain, overrides: o, progress: quiet });
    const lines: string[] = [];
    const r = await train({ task: 'mnist-optdigits', method: 'revgrad', out: watched, overrides: { ...o, evalEvery: 2 }, progress: (l) => lines.push(l) });
    const wa = weights(plain), wb = weights(watched);
    for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, `${k} differs when evaluating during training`);
    const logged = () => fs.readFileSync(path.join(watched, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => 'targetAccuracy' in l);
    // Every 2 steps and at the last; the whole optdigits set although training saw 64 target images.
    assert.deepEqual(logged().map((l) => [l.step, l.evalImages]), [[2, 1797], [3, 1797]]);
    const final = await evaluateRun(watched);
    assert.equal(logged()[1].targetAccuracy, final.report!.accuracy);
    assert.equal(r.targetAccuracy, final.report!.accuracy);
    assert.ok(lines.some((l) => /step 3: target accuracy \d+\.\d\d% on 1797 images/.test(l)));
    // The schedule may change on resume: monitoring can be switched off.
    await train({ out: watched, resume: true, overrides: { steps: 4, evalEvery: 0 }, progress: quiet });
    assert.equal(logged().length, 2);
    // Segmenters are measured by i2i eval; the monitor refuses them before reading any frame.
    await assert.rejects(train({ task: 'synth-drive', method: 'full', out: path.join(dir, 'seg'), overrides: { evalEvery: 10 }, progress: quiet }), /classification runs only[\s\S]*i2i eval/);
  });

  it('the i2i command: help, train, eval --json, and errors that name the fix (exit 2)', async () => {
    const help = await cli(['--help']);
    assert.equal(help.code, 0);
    for (const c of ['train', 'eval']) assert.match(help.stdout, new RegExp(`^  ${c} `, 'm'));
    const dir = tmpDir();
    const t = await cli(['train', '--task', 'mnist-optdigits', '--method', 'revgrad', '--out', dir, '--steps', '2', '--target-root', OPTDIGITS,
      '--set', 'batchSize=4', '--set', 'data.sourceLimit=32', '--set', 'model.encoderWidths=[8,8,16,16]']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stderr, /backend: \w+/);
    assert.match(t.stderr, /step 2\/2 .*steps\/s ETA/);
    const e = await cli(['eval', '--checkpoint', dir, '--json']);
    assert.equal(e.code, 0, e.stderr);
    const j = JSON.parse(e.stdout);
    assert.ok(j.accuracy >= 0 && j.accuracy <= 1 && j.n === 1797);
    // A run in --out is never overwritten by accident, and --resume says what it cannot do.
    const again = await cli(['train', '--task', 'mnist-optdigits', '--method', 'revgrad', '--out', dir, '--steps', '2', '--target-root', OPTDIGITS]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already holds a run.*--resume to continue it, --force to replace it/s);
    const nothing = await cli(['train', '--out', path.join(dir, 'missing'), '--resume', '--steps', '3']);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /holds no run to continue/);
    const back = await cli(['train', '--out', dir, '--resume', '--steps', '1']);
    assert.equal(back.code, 2);
    assert.match(back.stderr, /is at step 2; --steps 1 would end before it/);
    const forced = await cli(['train', '--task', 'mnist-optdigits', '--method', 'revgrad', '--out', dir, '--steps', '1', '--target-root', OPTDIGITS, '--force',
      '--set', 'batchSize=4', '--set', 'data.sourceLimit=32', '--set', 'model.encoderWidths=[8,8,16,16]', '--set', 'logEvery=1']);
    assert.equal(forced.code, 0, forced.stderr);
    const steps = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    assert.deepEqual(steps, [1], 'the replaced run\'s metrics are gone');
    const bad = await cli(['train', '--task', 'nope', '--method', 'full', '--out', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown task "nope".*Use one of: mnist-usps/);
    const noRoot = await cli(['train', '--task', 'mnist-optdigits', '--method', 'full', '--out', tmpDir()]);
    assert.equal(noRoot.code, 2);
    assert.match(noRoot.stderr, /Pass --target-root/);
    const badKey = await cli(['train', '--task', 'mnist-optdigits', '--method', 'full', '--out', tmpDir(), '--set', 'weights.q=1']);
    assert.equal(badKey.code, 2);
    assert.match(badKey.stderr, /Invalid configuration: weights/);
  });

  it('training keeps tensor memory flat across steps', async () => {
    const dir = tmpDir();
    const n0 = tf.memory().numTensors;
    await train({ task: 'mnist-optdigits', method: 'full', out: dir, overrides: { ...SMALL, steps: 2 }, progress: quiet });
    assert.equal(tf.memory().numTensors, n0, 'a finished run leaves no tensors behind');
  });
});
