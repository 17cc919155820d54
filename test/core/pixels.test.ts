import { strict as assert } from 'node:assert';
import { pixelsToSigned, toSigned } from '../../core/pixels';
import { mulberry32 } from '../../core/rng';

describe('pixels to [-1, 1] (core/pixels)', () => {
  it('8-bit values: bit for bit v / 127.5 - 1, the bundle manifest\'s normalisation', () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, v) => v);
    const got = pixelsToSigned(bytes);
    assert.ok(got instanceof Float32Array);
    const want = Float32Array.from(bytes, (v) => v / 127.5 - 1);
    assert.deepEqual(Array.from(got), Array.from(want));
    assert.deepEqual([got[0], got[255]], [-1, 1]);
  });
  it('[0, 1] values: bit for bit x * 2 - 1, as the digits were scaled before', () => {
    // The readers' float32 v / 255 and arbitrary resized values.
    const r = mulberry32(7);
    const xs = Float32Array.from([...Array.from({ length: 256 }, (_, v) => v / 255), ...Array.from({ length: 4096 }, () => r())]);
    for (const x of xs) assert.equal(Math.fround(toSigned(x, 1)), Math.fround(x * 2 - 1), `x = ${x}`);
    assert.deepEqual([toSigned(0, 1), toSigned(1, 1)], [-1, 1]);
  });
});
