/**
 * Label maps as the real datasets ship them (test/fixtures/real-labels, written by Pillow through
 * make.py, not by this project): GTA5's palette PNGs, Cityscapes' greyscale labelIds, labelTrainIds
 * and RGBA colours, low bit depths, and GTA5's known quirks.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { readCheckpointMeta } from '../../train/checkpoint';
import { DamagedFileError, decodePng } from '../../train/data/png-decode';
import { listCityscapes, listGta5, readTrainIds } from '../../train/data/segmentation';
import { train } from '../../train/trainer';
import { tmpDir } from '../helpers';

const FIX = path.resolve(__dirname, '../fixtures/real-labels');
const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const W = 24;
const at = (ids: Uint8Array, x: number, y: number) => ids[y * W + x];

describe('label maps in the encodings the datasets ship', () => {
  it('a zeroed or overwritten label file is damage (skipped by name), and a small file cannot inflate past its header\'s size', async () => {
    const dir = tmpDir();
    const zeroed = path.join(dir, 'zeroed.png');
    fs.writeFileSync(zeroed, Buffer.alloc(4096));
    await assert.rejects(readTrainIds(zeroed), (e: Error) => e instanceof DamagedFileError && /zeroed\.png.*no PNG signature/s.test(e.message));
    // A 1x1 greyscale PNG whose IDAT inflates to 1 MB.
    const zlib = await import('node:zlib');
    const chunk = (type: string, data: Buffer) => {
      const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
      const crc = Buffer.alloc(4); crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type, 'latin1'), data])) >>> 0);
      return Buffer.concat([len, Buffer.from(type, 'latin1'), data, crc]);
    };
    const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(1, 0); ihdr.writeUInt32BE(1, 4); ihdr[8] = 8; ihdr[9] = 0;
    const bomb = Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(1 << 20))), chunk('IEND', Buffer.alloc(0))]);
    assert.throws(() => decodePng(bomb, 'bomb.png'), (e: Error) => e instanceof DamagedFileError && /does not inflate within its size/.test(e.message));
  });

  it('GTA5 palette labels: the indices are labelIds (not the colours sharp expands them to)', async () => {
    const { ids, width, height } = await readTrainIds(path.join(FIX, 'gta5-palette/labels/00001.png'));
    assert.deepEqual([width, height], [24, 16]);
    // Row 0: index 0 (unlabeled), 18 (polegroup), 40 (beyond labelId 33), then 23 (sky).
    assert.deepEqual(Array.from(ids.subarray(0, 4)), [255, 255, 255, 10]);
    assert.equal(at(ids, 0, 1), 18, 'index 33 (bicycle)');
    assert.equal(at(ids, 23, 15), 0, 'index 7 (road)');
    assert.equal(at(ids, 0, 15), 1, 'index 8 (sidewalk)');
    assert.ok(ids.filter((v) => v === 13).length > 0, 'car');
  });

  it('greyscale labelIds, RGB colours and Cityscapes trees give the same trainIds as the palette file', async () => {
    const palette = (await readTrainIds(path.join(FIX, 'gta5-palette/labels/00002.png'))).ids;
    const grey = (await readTrainIds(path.join(FIX, 'gta5-grey/labels/00002.png'))).ids;
    assert.deepEqual(grey, palette);
    const rgb = (await readTrainIds(path.join(FIX, 'gta5-rgb/labels/00002.png'))).ids;
    // Colours: (128,64,128) is road; polegroup shares pole's colour (153,153,153), so it reads as
    // pole; make.py's index 40 has the unknown colour (1,2,3): ignored.
    assert.equal(at(rgb, 23, 15), 0);
    assert.equal(at(rgb, 1, 0), 5);
    assert.equal(at(rgb, 2, 0), 255);
    assert.deepEqual(rgb.filter((_, i) => i !== 1), palette.filter((_, i) => i !== 1));
    for (const [tree, suffix] of [['cityscapes-ids', 'labelIds'], ['cityscapes-trainids', 'labelTrainIds'], ['cityscapes-color', 'color']]) {
      const list = listCityscapes(path.join(FIX, tree), 'train', { labels: true });
      assert.equal(list.items.length, 4, tree);
      assert.ok(list.items[1].label!.endsWith(`_gtFine_${suffix}.png`), list.items[1].label);
      const ids = (await readTrainIds(list.items[1].label!)).ids;
      if (suffix === 'color') assert.deepEqual(ids.filter((_, i) => i !== 1), palette.filter((_, i) => i !== 1), tree);
      else assert.deepEqual(ids, palette, tree);
    }
  });

  it('Cityscapes: labelIds are preferred to labelTrainIds, which are preferred to colours', () => {
    const root = tmpDir();
    fs.cpSync(path.join(FIX, 'cityscapes-color'), root, { recursive: true });
    const gt = path.join(root, 'gtFine/train/aachen');
    fs.copyFileSync(path.join(FIX, 'cityscapes-trainids/gtFine/train/aachen/aachen_000001_000019_gtFine_labelTrainIds.png'), path.join(gt, 'aachen_000001_000019_gtFine_labelTrainIds.png'));
    fs.copyFileSync(path.join(FIX, 'cityscapes-trainids/gtFine/train/aachen/aachen_000001_000019_gtFine_labelTrainIds.png'), path.join(gt, 'aachen_000002_000019_gtFine_labelTrainIds.png'));
    fs.copyFileSync(path.join(FIX, 'cityscapes-ids/gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png'), path.join(gt, 'aachen_000001_000019_gtFine_labelIds.png'));
    const labels = listCityscapes(root, 'train', { labels: true }).items.map((i) => path.basename(i.label!).replace(/^aachen_\d+_000019_gtFine_/, ''));
    assert.deepEqual(labels, ['labelIds.png', 'labelTrainIds.png', 'color.png', 'color.png']);
  });

  it('low bit depths and 16-bit greyscale', async () => {
    const p4 = (await readTrainIds(path.join(FIX, 'depth/palette4.png'))).ids;
    // 4-bit palette, indices [7, 8, 11, 12, 13, 0, 1, 15][(x + y) % 8] as labelIds.
    const want4 = [0, 1, 2, 3, 4, 255, 255, 255];
    for (let y = 0; y < 16; y++) for (let x = 0; x < W; x++) assert.equal(at(p4, x, y), want4[(x + y) % 8], `(${x}, ${y})`);
    const p2 = (await readTrainIds(path.join(FIX, 'depth/x_gtFine_labelTrainIds.png'))).ids;
    // 2-bit palette in a labelTrainIds file: the indices 0..3 are trainIds.
    for (let y = 0; y < 16; y++) for (let x = 0; x < W; x++) assert.equal(at(p2, x, y), (Math.floor(x / 3) + y) % 4, `(${x}, ${y})`);
    const g16 = (await readTrainIds(path.join(FIX, 'depth/grey16.png'))).ids;
    assert.deepEqual(Array.from(g16.subarray(0, 4)), [0, 13, 18, 255]);
  });

  it('Adam7-interlaced files (written by libvips) read as their non-interlaced twins', async () => {
    const dir = tmpDir();
    const w = 37, h = 11;
    const grey = Buffer.from(Array.from({ length: w * h }, (_, i) => [7, 26, 11, 23, 0][(i * 7) % 5]));
    await sharp(grey, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png({ progressive: true }).toFile(path.join(dir, 'grey.png'));
    const buf = fs.readFileSync(path.join(dir, 'grey.png'));
    assert.equal(buf[28], 1, 'the file is interlaced');
    const t = await readTrainIds(path.join(dir, 'grey.png'));
    assert.deepEqual(Array.from(t.ids), Array.from(grey, (v) => ({ 7: 0, 26: 13, 11: 2, 23: 10 } as Record<number, number>)[v] ?? 255));
    // An interlaced RGB colour file too.
    const rgb = Buffer.alloc(w * h * 3);
    for (let i = 0; i < w * h; i++) rgb.set(i % 3 ? [128, 64, 128] : [0, 0, 142], i * 3);
    await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).png({ progressive: true }).toFile(path.join(dir, 'c.png'));
    assert.deepEqual(Array.from((await readTrainIds(path.join(dir, 'c.png'))).ids), Array.from({ length: w * h }, (_, i) => (i % 3 ? 0 : 13)));
    // A 2-bit interlaced palette file: its indices through its palette are the colours libvips decodes.
    const noise = Buffer.from(Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256));
    const p2 = await sharp(noise, { raw: { width: w, height: h, channels: 3 } }).png({ progressive: true, palette: true, colours: 4, dither: 0 }).toBuffer();
    const d = decodePng(p2, 'p2.png');
    assert.deepEqual([d.colorType, d.bitDepth, d.interlaced], [3, 2, true]);
    const expanded = await sharp(p2).removeAlpha().raw().toBuffer();
    assert.deepEqual(Array.from(d.samples).flatMap((k) => Array.from(d.palette!.subarray(k * 3, k * 3 + 3))), Array.from(expanded));
  });

  it('a greyscale map stored as RGB (libvips writes one channel so) reads as its values', async () => {
    const dir = tmpDir();
    const ids = Buffer.from([7, 8, 26, 0, 33, 255]);
    await sharp(ids, { raw: { width: 3, height: 2, channels: 1 } }).png().toFile(path.join(dir, 'l.png'));
    assert.equal(fs.readFileSync(path.join(dir, 'l.png'))[25], 2, 'written as RGB');
    assert.deepEqual(Array.from((await readTrainIds(path.join(dir, 'l.png'))).ids), [0, 1, 13, 255, 18, 255]);
  });

  it('damaged and foreign files are named', async () => {
    await assert.rejects(readTrainIds(path.join(FIX, 'gta5-quirks/labels/00004.png')), /00004\.png is damaged \(truncated/);
    const dir = tmpDir();
    const good = fs.readFileSync(path.join(FIX, 'gta5-palette/labels/00001.png'));
    const flipped = Buffer.from(good); flipped[good.length - 20] ^= 0xff;
    fs.writeFileSync(path.join(dir, 'crc.png'), flipped);
    await assert.rejects(readTrainIds(path.join(dir, 'crc.png')), /crc\.png is damaged \(CRC mismatch in its IDAT chunk\)/);
    await assert.rejects(readTrainIds(path.join(FIX, 'gta5-palette/images/00001.png').replace('.png', '.jpg')), /not a PNG/);
  });
});

describe('GTA5 quirks: reported, never fatal', function () {
  this.timeout(120000);
  it('lists labels without images as well as images without labels', () => {
    const list = listGta5(path.join(FIX, 'gta5-quirks'));
    assert.deepEqual(list.skipped, ['00005']);
    assert.deepEqual(list.unpairedLabels, ['00006']);
    assert.deepEqual(list.items.map((i) => i.id), ['00001', '00002', '00003', '00004', '00007']);
  });

  it('training resizes a label a few pixels off, skips damaged files by name, and reports both', async () => {
    const lines: string[] = [];
    const out = path.join(tmpDir(), 'run');
    await train({
      task: 'synth-drive', method: 'source-only', out, progress: (l) => lines.push(l),
      overrides: { steps: 3, batchSize: 2, logEvery: 1, data: { imageSize: 16, scale: 1, sourceRoot: path.join(FIX, 'gta5-quirks'), targetRoot: path.join(FIX, 'cityscapes-ids') } },
    });
    const text = lines.join('\n');
    assert.match(text, /skipped 1 image\(s\) without a label map: 00005/);
    assert.match(text, /skipped 1 label map\(s\) without an image: 00006/);
    assert.match(text, /skipped damaged file .*labels\/00004\.png/);
    assert.match(text, /skipped damaged file .*images\/00007\.png/);
    const resized = lines.filter((l) => /differed from their image's size/.test(l));
    assert.equal(resized.length, 1, 'reported once');
    assert.match(resized[0], /1 label map\(s\) .*labels\/00003\.png \(23x16 for a 24x16 image\)/);
    const c = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).c as number);
    assert.equal(c.length, 3);
    assert.ok(c.every((v) => v > 0), `L_c ${c}`);
  });

  it('source batches with no labelled pixel stop training with the cause, and the last checkpoint stays readable', async () => {
    const root = tmpDir();
    const src = path.join(root, 'gta5');
    fs.cpSync(path.join(FIX, 'gta5-palette'), src, { recursive: true });
    const out = path.join(root, 'run');
    const o = { steps: 4, batchSize: 2, logEvery: 1, checkpointEvery: 2, data: { imageSize: 16, scale: 1, sourceRoot: src, targetRoot: path.join(FIX, 'cityscapes-ids') } };
    await train({ task: 'synth-drive', method: 'source-only', out, overrides: { ...o, steps: 2 }, progress: () => undefined });
    // The labels go blank (all index 0) under the run: resuming meets only unlabelled batches.
    fs.cpSync(path.join(FIX, 'gta5-blank/labels'), path.join(src, 'labels'), { recursive: true });
    await assert.rejects(
      train({ out, resume: true, overrides: { steps: 40 }, progress: () => undefined, unlabelledBatchLimit: 3 }),
      (e: Error) => {
        assert.match(e.message, /last 3 source batches had no labelled pixel/);
        assert.match(e.message, /8-bit palette\).* indices are 0: none of the labelIds of the 19 classes/);
        assert.match(e.message, /likely cause is the label format/);
        return true;
      });
    assert.equal(readCheckpointMeta(out).step, 2, 'the checkpoint from before the unlabelled batches');
    // The default limit: 20 batches in a row.
    const fresh = path.join(root, 'blank-run');
    fs.cpSync(path.join(FIX, 'gta5-blank/labels'), path.join(src, 'labels'), { recursive: true });
    await assert.rejects(train({ task: 'synth-drive', method: 'source-only', out: fresh, overrides: { ...o, steps: 30, checkpointEvery: 1000 }, progress: () => undefined }), /last 20 source batches had no labelled pixel/);
  });
});

describe('the palette fixture trains exactly as the greyscale one (i2i train, as a user runs it)', function () {
  this.timeout(180000);
  const run = (source: string, out: string) => new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [BIN, 'train', '--task', 'gta5-cityscapes', '--method', 'source-only',
      '--source-root', path.join(FIX, source), '--target-root', path.join(FIX, 'cityscapes-ids'), '--out', out,
      '--steps', '3', '--encoder', 'densenet-small', '--set', 'data.imageSize=16', '--set', 'data.scale=1', '--set', 'logEvery=1'],
    (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stderr)));
  });
  const lc = (out: string) => fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).c as number);

  it('same L_c at every step, and L_c > 0', async () => {
    const root = tmpDir();
    const a = path.join(root, 'palette'), b = path.join(root, 'grey');
    const [logA] = await Promise.all([run('gta5-palette', a), run('gta5-grey', b)]);
    const ca = lc(a), cb = lc(b);
    assert.equal(ca.length, 3);
    assert.deepEqual(ca, cb);
    assert.ok(ca.every((v) => Number.isFinite(v) && v > 0), `L_c ${ca}`);
    // What the trainer logs agrees with metrics.jsonl.
    const logged = [...logA.matchAll(/step (\d)\/3 .*\| c ([\d.]+)/g)].map((m) => Number(m[2]));
    assert.deepEqual(logged, ca.map((v) => Number(v.toFixed(3))));
  });
});
