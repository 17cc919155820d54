/**
 * /segment's full-resolution work runs in worker threads and computes exactly what the runtime/image
 * functions compute on the main thread.
 */
import { strict as assert } from 'node:assert';
import { blendOverlay, classFractions, palettePng, resizeLabels } from '../../runtime/image';
import { mulberry32 } from '../../core/rng';
import { PostProcessor } from '../../serve/postprocess';

describe('serve: post-processing threads', function () {
  this.timeout(60000);
  const r = mulberry32(5);
  const sw = 64, sh = 32, dw = 333, dh = 171, k = 19;
  const labels = Uint8Array.from({ length: sw * sh }, () => (r() < 0.1 ? 255 : Math.floor(r() * k)));
  const palette = Array.from({ length: k }, () => [0, 0, 0].map(() => Math.floor(r() * 256)) as [number, number, number]);
  const frame = Buffer.from(Uint8Array.from({ length: dw * dh * 3 }, () => Math.floor(r() * 256)));
  const full = resizeLabels(labels, sw, sh, dw, dh);
  const pp = new PostProcessor(2);
  after(() => pp.close());

  it('png, labels, json and overlay equal the main-thread functions, computed off the main thread', async () => {
    const results = await Promise.all((['png', 'labels', 'json', 'overlay'] as const).map((format) =>
      pp.run({ labels, sw, sh, dw, dh, format, palette, classes: k, frame: format === 'overlay' ? frame : undefined, alpha: 0.4 })));
    const [png, raw, json, overlay] = results;
    for (const x of results) assert.notEqual(x.threadId, 0, 'not the main thread');
    assert.deepEqual(Array.from(json.fractions!), Array.from(classFractions(full, k)));
    assert.equal(png.fractions, undefined, 'computed only where answered');
    assert.deepEqual(Buffer.from(png.png!), palettePng(full, dw, dh, palette));
    assert.deepEqual(Buffer.from(json.png!), palettePng(full, dw, dh, palette));
    assert.deepEqual(Buffer.from(raw.labels!), Buffer.from(full));
    assert.deepEqual(Buffer.from(overlay.overlayRgb!), blendOverlay({ data: frame, width: dw, height: dh, channels: 3 }, full, palette, 0.4));
  });

  it('a job that fails is an error for its caller; the pool keeps working; closed, it refuses', async () => {
    await assert.rejects(pp.run({ labels, sw: sw + 1, sh, dw, dh, format: 'png', palette, classes: k }), /labels hold/);
    const ok = await pp.run({ labels, sw, sh, dw, dh, format: 'png', palette, classes: k });
    assert.ok(ok.png!.length > 0);
    const closed = new PostProcessor(1);
    await closed.close();
    await assert.rejects(closed.run({ labels, sw, sh, dw, dh, format: 'png', palette, classes: k }), /closed/);
  });
});
