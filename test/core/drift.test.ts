/**
 * Drift calibration means what the manifest says: a new frame from the calibration frames' own
 * distribution scores about 0 at the median and exceeds 1 about 5% of the time.
 */
import { strict as assert } from 'node:assert';
import { calibrateDrift, driftScore } from '../../core/drift';
import { mulberry32 } from '../../core/rng';

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

describe('core/drift: calibration on held-out distances', () => {
  it('new in-domain frames score a median near 0 and exceed 1 about 5% of the time (k=256 channels, 32 calibration frames)', () => {
    const r = mulberry32(11), k = 256;
    // Channels with their own means and spreads, as pooled encoder features have.
    const mu = Array.from({ length: k }, () => 2 * r()), sigma = Array.from({ length: k }, () => 0.1 + r());
    const frame = () => Float32Array.from({ length: k }, (_, c) => mu[c] + sigma[c] * gaussian(r));
    const cal = calibrateDrift(Array.from({ length: 32 }, frame), 'test');
    const scores = Array.from({ length: 2000 }, () => driftScore(frame(), cal)).sort((a, b) => a - b);
    const median = scores[1000], above1 = scores.filter((x) => x > 1).length / scores.length;
    assert.ok(median < 0.2, `median score of new in-domain frames ${median.toFixed(3)} (0 means typical)`);
    assert.ok(above1 > 0.01 && above1 < 0.12, `${(above1 * 100).toFixed(1)}% of new in-domain frames above 1 (about 5% expected)`);
    // A frame from elsewhere stands out.
    const away = Float32Array.from({ length: k }, (_, c) => mu[c] + sigma[c] * (gaussian(r) + 1.5));
    assert.ok(driftScore(away, cal) > 3);
  });

  it('needs 3 frames (held-out distances need 2 others)', () => {
    assert.throws(() => calibrateDrift([[1, 2], [2, 3]], 'test'), /at least 3 frames/);
  });
});
