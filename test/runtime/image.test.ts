import { strict as assert } from 'node:assert';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import {
  argmaxLabels, blendOverlay, classFractions, decodeFrame, decodeToInput, ImageError, overlayJpeg, palettePng, probeImage, readIndexedPng, resizeLabels,
  type Frame,
} from '../../runtime/image';

type RGB = [number, number, number];
const RED: RGB = [255, 0, 0], BLUE: RGB = [0, 0, 255], GREEN: RGB = [0, 255, 0];
const LIMITS = { maxPixels: 1 << 24 };

function rgb(width: number, height: number, colour: (x: number, y: number) => RGB): Buffer {
  const b = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) b.set(colour(x, y), (y * width + x) * 3);
  return b;
}
const raw = (data: Buffer, width: number, height: number, channels: 1 | 3 = 3) => sharp(data, { raw: { width, height, channels } });
const at = (f: { data: Buffer; width: number }, x: number, y: number): RGB => {
  const i = (y * f.width + x) * 3;
  return [f.data[i], f.data[i + 1], f.data[i + 2]];
};
function near(got: number[], want: number[], tol: number, what: string): void {
  assert.ok(got.every((v, i) => Math.abs(v - want[i]) <= tol), `${what}: got ${got}, want ${want} (±${tol})`);
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body));
  return Buffer.concat([len, body, crc]);
}
const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
function ihdr(width: number, height: number, depth: number, colour: number): Buffer {
  const d = Buffer.alloc(13);
  d.writeUInt32BE(width, 0);
  d.writeUInt32BE(height, 4);
  d[8] = depth;
  d[9] = colour;
  return chunk('IHDR', d);
}

/** Filter bytes of an 8-bit, one-channel PNG's rows. */
function rowFilters(png: Buffer): Set<number> {
  const { width, height } = readIndexedPng(png);
  const idat: Buffer[] = [];
  for (let o = 8; o < png.length;) {
    const len = png.readUInt32BE(o);
    if (png.toString('latin1', o + 4, o + 8) === 'IDAT') idat.push(png.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  const scan = zlib.inflateSync(Buffer.concat(idat));
  return new Set(Array.from({ length: height }, (_, y) => scan[y * (width + 1)]));
}

/** A greyscale PNG whose row y uses filter y % 5 (None, Sub, Up, Average, Paeth), encoded here by the spec. */
function filteredGreyPng(v: Uint8Array, width: number, height: number): Buffer {
  const scan = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) {
    const f = y % 5;
    scan[y * (width + 1)] = f;
    for (let x = 0; x < width; x++) {
      const a = x ? v[y * width + x - 1] : 0, b = y ? v[(y - 1) * width + x] : 0, c = x && y ? v[(y - 1) * width + x - 1] : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][f];
      scan[y * (width + 1) + 1 + x] = (v[y * width + x] - pred) & 255;
    }
  }
  return Buffer.concat([PNG_SIG, ihdr(width, height, 8, 0), chunk('IDAT', zlib.deflateSync(scan)), chunk('IEND', Buffer.alloc(0))]);
}

async function imageError(p: Promise<unknown>, status: number, message: RegExp): Promise<ImageError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  assert.ok(e instanceof ImageError, `expected an ImageError, got ${e instanceof Error ? e.stack : String(e)}`);
  assert.equal(e.status, status, e.message);
  assert.match(e.message, message);
  assert.ok(e.hint.length > 0);
  return e;
}

describe('runtime/image: decoding', () => {
  it('applies EXIF orientation 6: a 40x20 JPEG comes out 20x40, turned clockwise', async () => {
    // Left half red, right half blue, a green marker in the top-left corner tells a turn from a transpose.
    const src = rgb(40, 20, (x, y) => (x < 8 && y < 8 ? GREEN : x < 20 ? RED : BLUE));
    const jpg = await raw(src, 40, 20).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).withMetadata({ orientation: 6 }).toBuffer();
    assert.equal((await sharp(jpg).metadata()).orientation, 6);
    assert.deepEqual(await probeImage(jpg, LIMITS), { format: 'jpeg', width: 20, height: 40 });
    const f = await decodeFrame(jpg, LIMITS);
    assert.deepEqual([f.width, f.height, f.channels, f.data.length], [20, 40, 3, 20 * 40 * 3]);
    // Clockwise: source (x, y) lands at (19 - y, x), so the left half is on top.
    near(at(f, 10, 14), RED, 40, 'top half');
    near(at(f, 10, 30), BLUE, 40, 'bottom half');
    near(at(f, 16, 3), GREEN, 60, 'marker top right');
    near(at(f, 3, 3), RED, 40, 'top left');
    const d = await decodeToInput(jpg, { height: 40, width: 20 }, LIMITS);
    assert.deepEqual([d.width, d.height], [20, 40]);
    near(at({ data: d.pixels, width: 20 }, 10, 30), BLUE, 40, 'decodeToInput bottom');
    near(at({ data: d.pixels, width: 20 }, 16, 3), GREEN, 60, 'decodeToInput marker');
  });

  it('decodeToInput resizes 300x200 to 64x128 with the red/blue boundary at the middle column', async () => {
    const png = await raw(rgb(300, 200, (x) => (x < 150 ? RED : BLUE)), 300, 200).png().toBuffer();
    const d = await decodeToInput(png, { height: 64, width: 128 }, LIMITS);
    assert.deepEqual([d.width, d.height, d.pixels.length], [300, 200, 64 * 128 * 3]);
    const img = { data: d.pixels, width: 128 };
    for (let y = 0; y < 64; y++) {
      let edge = -1;
      for (let x = 0; x < 128 && edge < 0; x++) if (at(img, x, y)[2] > at(img, x, y)[0]) edge = x;
      assert.ok(Math.abs(edge - 64) <= 1, `row ${y}: blue starts at column ${edge}`);
      near(at(img, 0, y), RED, 0, 'left column');
      near(at(img, 62, y), RED, 2, 'left of the middle');
      near(at(img, 66, y), BLUE, 2, 'right of the middle');
      near(at(img, 127, y), BLUE, 0, 'right column');
    }
  });

  it('decodeToInput gives the bytes of convert/\'s calibration resize (removeAlpha, fill, linear), not a crop', async () => {
    // Noise shows the kernel; the green top strip would be cut off by fit 'cover'.
    const src = rgb(300, 200, (x, y) => (y < 20 ? GREEN : [(x * 37 + y * 11) & 255, (x * y) & 255, (x ^ y) & 255]));
    const png = await raw(src, 300, 200).png().toBuffer();
    const d = await decodeToInput(png, { height: 64, width: 128 }, LIMITS);
    const want = await sharp(png).removeAlpha().resize(128, 64, { kernel: 'linear', fit: 'fill' }).raw().toBuffer();
    assert.ok(d.pixels.equals(want), 'pixels differ from sharp resize(fill, linear)');
    for (let x = 0; x < 128; x++) near(at({ data: d.pixels, width: 128 }, x, 2), GREEN, 0, `strip column ${x}`);
  });

  it('greyscale and alpha inputs come out as 3-channel RGB', async () => {
    const grey = await raw(Buffer.from([0, 100, 200, 255]), 2, 2, 1).toColourspace('b-w').png().toBuffer();
    assert.equal((await sharp(grey).metadata()).channels, 1);
    const g = await decodeFrame(grey, LIMITS);
    assert.deepEqual([...g.data], [0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]);
    const rgba = await sharp(Buffer.from([10, 20, 30, 0, 40, 50, 60, 255]), { raw: { width: 2, height: 1, channels: 4 } }).webp({ lossless: true }).toBuffer();
    const a = await decodeFrame(rgba, LIMITS);
    assert.equal(a.data.length, 6);
    near([...a.data.subarray(3)], [40, 50, 60], 0, 'opaque pixel');
  });
});

describe('runtime/image: errors', () => {
  it('a JPEG cut in half is a 400 with sharp\'s reason', async () => {
    const src = rgb(300, 200, (x, y) => [(x * 7) & 255, (y * 5) & 255, (x * y) & 255]);
    const jpg = await raw(src, 300, 200).jpeg().toBuffer();
    const half = jpg.subarray(0, jpg.length >> 1);
    await imageError(decodeFrame(half, LIMITS), 400, /^the image is truncated or corrupt: .*premature end/i);
    await imageError(decodeToInput(half, { height: 32, width: 32 }, LIMITS), 400, /truncated or corrupt/);
    const png = await raw(src, 300, 200).png().toBuffer();
    await imageError(decodeFrame(png.subarray(0, png.length >> 1), LIMITS), 400, /truncated or corrupt/);
    const webp = await raw(src, 300, 200).webp().toBuffer();
    await imageError(decodeFrame(webp.subarray(0, webp.length >> 1), LIMITS), 400, /truncated or corrupt/);
    // Damaged entropy-coded data past a valid header.
    const garbled = Buffer.from(jpg);
    for (let i = 1000; i < 1400; i++) garbled[i] = (i * 31) & 255;
    await imageError(decodeFrame(garbled, LIMITS), 400, /truncated or corrupt: .*corrupt JPEG data/i);
  });

  it('empty input is a 400 "empty body"; a few bytes of a signature are a 400, not a 415', async () => {
    await imageError(probeImage(Buffer.alloc(0), LIMITS), 400, /^empty body/);
    await imageError(decodeFrame(Buffer.alloc(0), LIMITS), 400, /^empty body/);
    await imageError(decodeFrame(Buffer.from([0xff, 0xd8]), LIMITS), 400, /truncated/);
  });

  it('other formats are a 415 naming the type and the accepted ones', async () => {
    const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } }).gif().toBuffer();
    await imageError(decodeFrame(gif, LIMITS), 415, /unsupported image type: GIF .*JPEG, PNG, WebP/);
    const tiff = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } }).tiff().toBuffer();
    await imageError(probeImage(tiff, LIMITS), 415, /TIFF/);
    const svg = Buffer.from('\n  <?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><image href="http://example.invalid/x.png"/></svg>');
    await imageError(decodeFrame(svg, LIMITS), 415, /unsupported image type: SVG .*accepted: JPEG, PNG, WebP/);
    await imageError(decodeFrame(Buffer.from('hello, this is not an image at all'), LIMITS), 415, /unrecognised data \(starts 68 65 6c 6c\)/);
    await imageError(decodeFrame(Buffer.from([0x13, 0x37, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), LIMITS), 415, /unrecognised data/);
  });

  it('a PNG header claiming 100000x100000 is a 413 before anything is allocated', async () => {
    const bomb = Buffer.concat([PNG_SIG, ihdr(100000, 100000, 8, 2), chunk('IEND', Buffer.alloc(0))]);
    const withData = Buffer.concat([PNG_SIG, ihdr(100000, 100000, 8, 2), chunk('IDAT', zlib.deflateSync(Buffer.alloc(1 << 16))), chunk('IEND', Buffer.alloc(0))]);
    const rss = process.memoryUsage().rss;
    for (const b of [bomb, withData]) {
      await imageError(probeImage(b, LIMITS), 413, /100000x100000 \(10000000000 pixels\), over the limit of 16777216 pixels/);
      await imageError(decodeFrame(b, LIMITS), 413, /100000x100000/);
      await imageError(decodeToInput(b, { height: 8, width: 8 }, LIMITS), 413, /100000x100000/);
    }
    // 30 GB of RGB would not go unnoticed; allow for ordinary heap growth.
    assert.ok(process.memoryUsage().rss - rss < 200e6, 'memory grew while refusing a bomb header');
  });

  it('a JPEG whose header claims 10000x10000 is refused by sharp\'s limitInputPixels as a 413', async () => {
    // 1e8 pixels: over our limit but under sharp's default (0x3FFF squared), so this needs our limitInputPixels.
    const jpg = await sharp({ create: { width: 16, height: 16, channels: 3, background: 'red' } }).jpeg().toBuffer();
    let sof = -1;
    for (let o = 2; o < jpg.length && sof < 0; o += 2 + jpg.readUInt16BE(o + 2)) if (jpg[o + 1] === 0xc0 || jpg[o + 1] === 0xc2) sof = o;
    assert.ok(sof > 0, 'no SOF marker');
    jpg.writeUInt16BE(10000, sof + 5);
    jpg.writeUInt16BE(10000, sof + 7);
    await imageError(probeImage(jpg, LIMITS), 413, /more than 16777216 pixels/);
    await imageError(decodeFrame(jpg, LIMITS), 413, /more than 16777216 pixels/);
  });

  it('real 100x100 images over maxPixels 5000 are a 413; at exactly the limit they decode', async () => {
    const img = sharp({ create: { width: 100, height: 100, channels: 3, background: 'blue' } });
    for (const buf of [await img.clone().png().toBuffer(), await img.clone().jpeg().toBuffer(), await img.clone().webp().toBuffer()]) {
      await imageError(decodeFrame(buf, { maxPixels: 5000 }), 413, /(100x100 \(10000 pixels\)|more than 5000 pixels)/);
      await imageError(decodeToInput(buf, { height: 10, width: 10 }, { maxPixels: 5000 }), 413, /5000 pixels/);
      const f = await decodeFrame(buf, { maxPixels: 10000 });
      assert.deepEqual([f.width, f.height], [100, 100]);
    }
    await assert.rejects(decodeFrame(Buffer.from([1]), { maxPixels: 0 }), RangeError);
  });
});

describe('runtime/image: label maps', () => {
  it('resizeLabels: hand values with pixel centres aligned', () => {
    assert.deepEqual([...resizeLabels(Uint8Array.from([1, 2, 3, 4]), 2, 2, 4, 4)], [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    // 3 -> 7 columns: floor((x + 0.5) * 3 / 7) = 0 0 1 1 1 2 2 (the middle source pixel is at 1.5 exactly: 3.5 * 3 / 7).
    assert.deepEqual([...resizeLabels(Uint8Array.from([5, 6, 7]), 3, 1, 7, 1)], [5, 5, 6, 6, 6, 7, 7]);
    // 7 -> 3 columns: floor((x + 0.5) * 7 / 3) = 1 3 5.
    assert.deepEqual([...resizeLabels(Uint8Array.from([0, 1, 2, 3, 4, 5, 6]), 7, 1, 3, 1)], [1, 3, 5]);
    // 4 -> 2 rows: floor((y + 0.5) * 2) = 1 3.
    assert.deepEqual([...resizeLabels(Uint8Array.from([0, 1, 2, 3]), 1, 4, 1, 2)], [1, 3]);
    assert.deepEqual([...resizeLabels(Uint8Array.from([9]), 1, 1, 3, 2)], [9, 9, 9, 9, 9, 9]);
    assert.throws(() => resizeLabels(new Uint8Array(3), 2, 2, 4, 4), RangeError);
  });

  it('resizeLabels: a half/half map keeps its boundary through down- and upscaling', () => {
    const [w, h] = [320, 180];
    const src = Uint8Array.from({ length: w * h }, (_, i) => ((i % w) < w / 2 ? 3 : 7));
    const small = resizeLabels(src, w, h, 64, 36);
    for (let y = 0; y < 36; y++) for (let x = 0; x < 64; x++) assert.equal(small[y * 64 + x], x < 32 ? 3 : 7, `small (${x}, ${y})`);
    const back = resizeLabels(small, 64, 36, w, h);
    assert.deepEqual(back, src);
    // An odd ratio: the boundary moves by under one target pixel.
    const odd = resizeLabels(src, w, h, 97, 51);
    for (let y = 0; y < 51; y++) {
      const edge = Array.from(odd.subarray(y * 97, (y + 1) * 97)).indexOf(7);
      assert.ok(Math.abs(edge - 97 / 2) <= 1, `row ${y}: edge at ${edge}`);
    }
  });

  it('argmaxLabels: hand values, ties to the lower id', () => {
    const logits = Float32Array.from([0.1, 0.9, 0.3, /**/ 5, -1, 2, /**/ -3, -2, -1, /**/ 1, 1, 0]);
    assert.deepEqual([...argmaxLabels(logits, 3)], [1, 0, 2, 0]);
    assert.deepEqual([...argmaxLabels([0, 1, 1, 0], 2)], [1, 0]);
    assert.throws(() => argmaxLabels([1, 2, 3], 2), RangeError);
  });

  it('classFractions: shares among labelled pixels, void ignored', () => {
    const f = classFractions(Uint8Array.from([0, 0, 1, 255, 2, 2, 2, 255]), 4);
    assert.deepEqual([...f], [2 / 6, 1 / 6, 3 / 6, 0]);
    assert.deepEqual([...classFractions(Uint8Array.from([255, 255]), 2)], [0, 0]);
  });
});

describe('runtime/image: palette PNGs', () => {
  const palette: RGB[] = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [0, 0, 142]];

  for (const [w, h] of [[1, 1], [7, 3], [322, 182]]) {
    it(`palettePng ${w}x${h}: reads back exactly, and sharp decodes the palette colours`, async () => {
      const labels = Uint8Array.from({ length: w * h }, (_, i) => [0, 1, 2, 3, 255, 9][(i * 7 + Math.floor(i / w)) % 6]);
      const png = palettePng(labels, w, h, palette);
      const back = readIndexedPng(png);
      assert.deepEqual([back.width, back.height], [w, h]);
      assert.deepEqual(back.indices, labels);
      assert.equal(back.palette.length, 256);
      assert.deepEqual(back.palette.slice(0, 4), palette);
      assert.deepEqual(back.palette[255], [0, 0, 0]);
      assert.deepEqual(back.palette[9], [0, 0, 0]);
      const meta = await sharp(png).metadata();
      assert.deepEqual([meta.width, meta.height, meta.isPalette, meta.bitsPerSample], [w, h, true, 8]);
      const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      assert.equal(info.channels, 3);
      for (let p = 0; p < w * h; p++) {
        const want = palette[labels[p]] ?? [0, 0, 0];
        assert.deepEqual([data[p * 3], data[p * 3 + 1], data[p * 3 + 2]], want, `pixel ${p} (id ${labels[p]})`);
      }
    });
  }

  it('readIndexedPng reads sharp\'s palette PNGs', async () => {
    const src = rgb(50, 30, (x, y) => [x < 25 ? 200 : 20, y < 15 ? 30 : 220, (x * 5) & 255]);
    const png = await raw(src, 50, 30).png({ palette: true, colours: 64 }).toBuffer();
    const { width, height, indices, palette: pal } = readIndexedPng(png);
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([width, height], [50, 30]);
    for (let p = 0; p < width * height; p++) assert.deepEqual(pal[indices[p]], [data[p * 3], data[p * 3 + 1], data[p * 3 + 2]], `pixel ${p}`);
  });

  it('readIndexedPng undoes every row filter: sharp\'s adaptive filtering (Sub, Paeth) and all five by hand', async () => {
    const [w, h] = [64, 40];
    const grad = Uint8Array.from({ length: w * h }, (_, i) => (Math.round(127 + 60 * Math.sin((i % w) / 9) + 60 * Math.cos(Math.floor(i / w) / 7 + (i % w) / 23))));
    // sharp 0.35 filters only with adaptiveFiltering: true (its default writes filter 0 on every row).
    const png = await raw(Buffer.from(grad), w, h, 1).toColourspace('b-w').png({ adaptiveFiltering: true }).toBuffer();
    const filters = rowFilters(png);
    assert.ok([...filters].some((f) => f !== 0), `sharp used filters ${[...filters]}`);
    const got = readIndexedPng(png);
    assert.deepEqual(got.palette, []);
    assert.deepEqual(got.indices, grad);
    const mine = filteredGreyPng(grad, w, h);
    assert.deepEqual(rowFilters(mine), new Set([0, 1, 2, 3, 4]));
    assert.deepEqual(readIndexedPng(mine).indices, grad);
    // The hand encoder is right by sharp too.
    assert.deepEqual(new Uint8Array(await sharp(mine).extractChannel(0).raw().toBuffer()), grad);
  });

  it('readIndexedPng refuses damaged and unsupported PNGs', async () => {
    const png = palettePng(new Uint8Array(12), 4, 3, palette);
    const flipped = Buffer.from(png);
    flipped[40] ^= 1;
    assert.throws(() => readIndexedPng(flipped), (e: unknown) => e instanceof ImageError && e.status === 400 && /bad CRC/.test(e.message));
    assert.throws(() => readIndexedPng(png.subarray(0, png.length - 20)), (e: unknown) => e instanceof ImageError && e.status === 400);
    const rgbPng = await sharp({ create: { width: 2, height: 2, channels: 3, background: 'red' } }).png().toBuffer();
    assert.throws(() => readIndexedPng(rgbPng), (e: unknown) => e instanceof ImageError && e.status === 415 && /colour type 2/.test(e.message));
  });
});

describe('runtime/image: blendOverlay', () => {
  it('is (1 - alpha) * frame + alpha * colour, rounded, per channel; void and ids without a colour keep the frame', () => {
    const [w, h] = [37, 23];
    let seed = 7;
    const rand = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
    const palette: RGB[] = Array.from({ length: 19 }, () => [0, 0, 0].map(() => Math.floor(rand() * 256)) as RGB);
    const data = Buffer.from(Array.from({ length: w * h * 3 }, () => Math.floor(rand() * 256)));
    // Every class, void, and ids past the palette.
    const labels = Uint8Array.from({ length: w * h }, (_, i) => [i % 19, 255, 19, 200][i % 7 === 0 ? 1 + (i % 3) : 0]);
    for (const alpha of [0, 0.3, 0.5, 1]) {
      const out = blendOverlay({ data, width: w, height: h, channels: 3 }, labels, palette, alpha);
      for (let p = 0; p < w * h; p++) {
        for (let j = 0; j < 3; j++) {
          const v = data[p * 3 + j], id = labels[p];
          const want = id < palette.length ? Math.round((1 - alpha) * v + alpha * palette[id][j]) : v;
          assert.equal(out[p * 3 + j], want, `alpha ${alpha} pixel ${p} channel ${j} (label ${id})`);
        }
      }
    }
  });
});

describe('runtime/image: overlayJpeg', () => {
  const [w, h] = [48, 32];
  const palette: RGB[] = [[255, 255, 0], [0, 255, 255]];
  const frame: Frame = { data: rgb(w, h, (x) => (x < w / 2 ? [200, 40, 40] : [40, 40, 200])), width: w, height: h, channels: 3 };
  // Quadrant labels: class 0 top left, class 1 top right, void along the bottom.
  const labels = Uint8Array.from({ length: w * h }, (_, i) => (Math.floor(i / w) >= h / 2 ? 255 : (i % w) < w / 2 ? 0 : 1));
  const decode = async (jpg: Buffer) => {
    assert.deepEqual([...jpg.subarray(0, 3)], [0xff, 0xd8, 0xff]);
    return decodeFrame(jpg, LIMITS);
  };

  it('alpha 0 returns the frame', async () => {
    const out = await decode(await overlayJpeg(frame, labels, palette, 0));
    assert.deepEqual([out.width, out.height], [w, h]);
    near(at(out, 8, 8), [200, 40, 40], 8, 'top left');
    near(at(out, 40, 8), [40, 40, 200], 8, 'top right');
  });

  it('alpha 1 paints class colours and void keeps the frame', async () => {
    const out = await decode(await overlayJpeg(frame, labels, palette, 1));
    near(at(out, 8, 6), palette[0], 8, 'class 0');
    near(at(out, 40, 6), palette[1], 8, 'class 1');
    near(at(out, 8, 26), [200, 40, 40], 8, 'void left');
    near(at(out, 40, 26), [40, 40, 200], 8, 'void right');
  });

  it('alpha 0.5 blends half way', async () => {
    const out = await decode(await overlayJpeg(frame, labels, palette, 0.5));
    near(at(out, 8, 6), [228, 148, 20], 8, 'class 0 over red');
    near(at(out, 40, 6), [20, 148, 228], 8, 'class 1 over blue');
  });
});
