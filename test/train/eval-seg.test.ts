import { strict as assert } from 'node:assert';
import { CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, LABEL_TO_TRAIN, labelIdsToTrainIds } from '../../core/labels';
import { accumulateConfusion, iouFromConfusion } from '../../train/eval-seg';

describe('segmentation metrics and label sets', () => {
  it('IoU and mIoU on a hand-made confusion matrix', () => {
    // truth\pred: class0: 3 right, 1 as class1; class1: 2 right; class2: never seen, never predicted.
    const conf = Float64Array.from([3, 1, 0, 0, 2, 0, 0, 0, 0]);
    const r = iouFromConfusion(conf, 3);
    assert.equal(r.perClass[0], 3 / 4);         // TP 3, FN 1, FP 0
    assert.equal(r.perClass[1], 2 / 3);         // TP 2, FP 1
    assert.ok(Number.isNaN(r.perClass[2]));
    assert.equal(r.mIoU, (3 / 4 + 2 / 3) / 2);  // absent classes are left out
    assert.equal(r.pixelAccuracy, 5 / 6);
  });
  it('a class predicted but absent from the ground truth is left out of mIoU; its pixels are misses of the true class', () => {
    // truth\pred: class0: 2 right, 2 as class2; class1: 4 right; class2: no ground truth.
    const conf = Float64Array.from([2, 0, 2, 0, 4, 0, 0, 0, 0]);
    const r = iouFromConfusion(conf, 3);
    assert.equal(r.perClass[0], 2 / 4);
    assert.ok(Number.isNaN(r.perClass[2]));
    assert.equal(r.mIoU, (2 / 4 + 1) / 2);
  });
  it('accumulates pixels and skips the ignore label 255', () => {
    const conf = new Float64Array(4);
    accumulateConfusion(conf, 2, Uint8Array.from([0, 1, 255, 1]), Uint8Array.from([0, 0, 1, 1]));
    assert.deepEqual(Array.from(conf), [1, 0, 1, 1]);
    assert.throws(() => accumulateConfusion(conf, 2, Uint8Array.from([7]), Uint8Array.from([0])), /outside 0..1/);
  });
  it('labelId -> trainId: the 19 Cityscapes classes, everything else 255', () => {
    assert.equal(CITYSCAPES_CLASSES.length, 19);
    assert.equal(CITYSCAPES_PALETTE.length, 19);
    assert.deepEqual(Array.from(labelIdsToTrainIds(Uint8Array.from([7, 8, 11, 23, 26, 33, 0, 6, 34, 255]))), [0, 1, 2, 10, 13, 18, 255, 255, 255, 255]);
    assert.equal([...LABEL_TO_TRAIN].filter((v) => v !== 255).length, 19);
  });
});
