import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { listCityscapes, listGta5, readTrainIds } from '../../train/data/segmentation';
import { tmpDir } from '../helpers';

async function png(file: string, w: number, h: number, channels: 1 | 3, fill: (i: number) => number) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const data = Buffer.alloc(w * h * channels);
  for (let i = 0; i < data.length; i++) data[i] = fill(i);
  await sharp(data, { raw: { width: w, height: h, channels } }).png().toFile(file);
}

describe('segmentation dataset trees (GTA5, Cityscapes)', () => {
  it('GTA5: pairs images/ with labels/, reports ids without a pair', async () => {
    const root = tmpDir();
    await png(path.join(root, 'images/00001.png'), 8, 4, 3, () => 10);
    await png(path.join(root, 'images/00002.png'), 8, 4, 3, () => 10);
    await png(path.join(root, 'labels/00001.png'), 8, 4, 1, (i) => [7, 26, 0, 33][i % 4]);
    const list = listGta5(root);
    assert.deepEqual(list.items.map((x) => x.id), ['00001']);
    assert.deepEqual(list.skipped, ['00002']);
    const { ids, width, height } = await readTrainIds(list.items[0].label!);
    assert.deepEqual([width, height], [8, 4]);
    assert.deepEqual(Array.from(ids.subarray(0, 4)), [0, 13, 255, 18]); // road, car, ignore, bicycle
    assert.throws(() => listGta5(tmpDir()), /Pass --source-root/);
  });
  it('Cityscapes: leftImg8bit/<split>/<city>/ with gtFine labelIds, pixel-exact', async () => {
    const root = tmpDir();
    const ids = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33, 1, 255, 6];
    await png(path.join(root, 'leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png'), 11, 2, 3, () => 0);
    await png(path.join(root, 'gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png'), 11, 2, 1, (i) => ids[i]);
    await png(path.join(root, 'leftImg8bit/val/bonn/bonn_000001_000019_leftImg8bit.png'), 11, 2, 3, () => 0);
    const all = listCityscapes(root, 'val');
    assert.deepEqual(all.items.map((x) => x.id), ['aachen_000000_000019', 'bonn_000001_000019']);
    const labelled = listCityscapes(root, 'val', { labels: true });
    assert.deepEqual(labelled.skipped, ['bonn_000001_000019']);
    const t = await readTrainIds(labelled.items[0].label!);
    assert.deepEqual(Array.from(t.ids), [...Array(19).keys(), 255, 255, 255]);
    assert.throws(() => listCityscapes(root, 'train'), /leftImg8bit\/train/);
  });
});
