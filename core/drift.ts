/**
 * Drift: a per-frame score of how far a frame lies from the target domain a model was adapted to,
 * from the encoder features the model computes anyway (pooled per channel, a second model output).
 * Calibrated at convert time on target frames: distance = RMS over channels of the features'
 * z-scores against the calibration frames' per-channel mean and std; score = (distance - median) /
 * (q95 - median) of the calibration distances, clipped at 0. So a typical target frame scores 0,
 * 1 is the calibration frames' 95th percentile, and a score of several means "unlike anything the
 * model was adapted to".
 */
import type { DriftCalibration } from './bundle';

const STD_FLOOR = 1e-6;

export function driftDistance(features: ArrayLike<number>, mean: ArrayLike<number>, std: ArrayLike<number>): number {
  let s = 0;
  for (let c = 0; c < mean.length; c++) {
    const z = (features[c] - mean[c]) / Math.max(std[c], STD_FLOOR);
    s += z * z;
  }
  return Math.sqrt(s / mean.length);
}

export function driftScore(features: ArrayLike<number>, cal: DriftCalibration): number {
  const d = driftDistance(features, cal.mean, cal.std);
  return Math.max(0, (d - cal.median) / Math.max(cal.q95 - cal.median, STD_FLOOR));
}

const quantile = (sorted: number[], q: number) => {
  const i = (sorted.length - 1) * q, lo = Math.floor(i), hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
};

/** Per-channel mean and spread of feature vectors (at least 2). */
function moments(features: ArrayLike<number>[]): { mean: number[]; std: number[] } {
  const k = features[0].length, n = features.length;
  const mean = new Array<number>(k).fill(0), v = new Array<number>(k).fill(0);
  for (const f of features) for (let c = 0; c < k; c++) mean[c] += f[c] / n;
  for (const f of features) for (let c = 0; c < k; c++) v[c] += (f[c] - mean[c]) ** 2 / (n - 1);
  // Channels constant over the calibration frames (dead ReLUs) get the mean spread of the others,
  // so that they neither dominate the distance nor vanish from it.
  const sd = v.map(Math.sqrt);
  const live = sd.filter((x) => x > STD_FLOOR);
  const fallback = live.length ? live.reduce((a, b) => a + b, 0) / live.length : 1;
  return { mean, std: sd.map((x) => (x > STD_FLOOR ? x : fallback)) };
}

/**
 * Calibration from the pooled features of target frames (at least 3). The median and 95th
 * percentile are of held-out distances (each frame against the moments of the others): a frame's
 * distance to moments it helped set is smaller than a new frame's, so in-sample quantiles made new
 * in-domain frames score well above 0 (0.72 on average, measured on a served bundle).
 */
export function calibrateDrift(features: ArrayLike<number>[], feature: string): DriftCalibration {
  if (features.length < 3) throw new Error('drift calibration needs at least 3 frames');
  const n = features.length, k = features[0].length;
  const { mean, std } = moments(features);
  // Leave-one-out moments from the sums in closed form: O(n k), not n passes over the frames.
  const s1 = new Float64Array(k), s2 = new Float64Array(k);
  for (const f of features) for (let c = 0; c < k; c++) { s1[c] += f[c]; s2[c] += f[c] * f[c]; }
  const m = new Float64Array(k), sd = new Float64Array(k);
  const d = features.map((f) => {
    let live = 0, liveSum = 0;
    for (let c = 0; c < k; c++) {
      m[c] = (s1[c] - f[c]) / (n - 1);
      sd[c] = Math.sqrt(Math.max(0, (s2[c] - f[c] * f[c] - (n - 1) * m[c] * m[c]) / (n - 2)));
      if (sd[c] > STD_FLOOR) { live++; liveSum += sd[c]; }
    }
    const fallback = live ? liveSum / live : 1;
    for (let c = 0; c < k; c++) if (!(sd[c] > STD_FLOOR)) sd[c] = fallback;
    return driftDistance(f, m, sd);
  }).sort((a, b) => a - b);
  return {
    feature, mean, std, median: quantile(d, 0.5), q95: quantile(d, 0.95), frames: n,
    meaning: '0: as typical as the median target calibration frame; 1: as far as their 95th percentile; above 1: farther than 95% of the target frames the model was calibrated on',
  };
}

/** Area under the ROC curve of scores where `positive` should score higher (ties count half). */
export function auroc(negative: number[], positive: number[]): number {
  let s = 0;
  for (const p of positive) for (const q of negative) s += p > q ? 1 : p === q ? 0.5 : 0;
  return s / (positive.length * negative.length);
}
