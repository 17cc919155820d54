import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '../../core/rng';
import { listCityscapes, listGta5, loadSegSample, readTrainIds } from '../../train/data/segmentation';
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

describe('segmentation samples: scale, crop, flip keep image and labels aligned', () => {
  it('a crop of a downsampled frame matches its labels pixel for pixel', async () => {
    const root = tmpDir();
    // 8x8 blocks of one class each; the image encodes the same class in its red channel.
    const W = 64, H = 32, ids = [7, 8, 11, 21, 23, 26];
    const cls = (i: number) => ids[(Math.floor((i % W) / 8) + Math.floor(Math.floor(i / W) / 8)) % ids.length];
    await png(path.join(root, 'images/00000.png'), W, H, 3, (j) => (j % 3 === 0 ? cls(Math.floor(j / 3)) * 7 : 0));
    await png(path.join(root, 'labels/00000.png'), W, H, 1, cls);
    const item = listGta5(root).items[0];
    let checked = 0;
    for (let t = 0; t < 4; t++) {
      const s = await loadSegSample(item, { scale: 0.5, crop: 8, flip: true, rand: mulberry32(t) });
      assert.deepEqual([s.height, s.width], [8, 8]);
      for (let p = 0; p < 64; p++) {
        // Block interiors survive bilinear downsampling; compare where the 2x2 neighbourhood agrees.
        const exact = ((s.image[p * 3] + 1) * 127.5) / 7;
        const red = Math.round(exact);
        if (Math.abs(exact - red) > 0.02) continue; // a blend across a block edge
        const trainOf = new Map(ids.map((id, k) => [id, [0, 1, 2, 8, 10, 13][k]]));
        if (ids.includes(red)) { assert.equal(s.labels![p], trainOf.get(red)); checked++; }
      }
    }
    assert.ok(checked > 50, `only ${checked} of 256 pixels were unambiguous`);
  });
});
