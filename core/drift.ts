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

/** Calibration from the pooled features of target frames (at least 2). */
export function calibrateDrift(features: ArrayLike<number>[], feature: string): DriftCalibration {
  if (features.length < 2) throw new Error('drift calibration needs at least 2 frames');
  const k = features[0].length, n = features.length;
  const mean = new Array<number>(k).fill(0), std = new Array<number>(k).fill(0);
  for (const f of features) for (let c = 0; c < k; c++) mean[c] += f[c] / n;
  for (const f of features) for (let c = 0; c < k; c++) std[c] += (f[c] - mean[c]) ** 2 / (n - 1);
  // Channels constant over the calibration frames (dead ReLUs) get the mean spread of the others,
  // so that they neither dominate the distance nor vanish from it.
  const sd = std.map(Math.sqrt);
  const live = sd.filter((v) => v > STD_FLOOR);
  const fallback = live.length ? live.reduce((a, b) => a + b, 0) / live.length : 1;
  const stdOut = sd.map((v) => (v > STD_FLOOR ? v : fallback));
  const d = features.map((f) => driftDistance(f, mean, stdOut)).sort((a, b) => a - b);
  return {
    feature, mean, std: stdOut, median: quantile(d, 0.5), q95: quantile(d, 0.95), frames: n,
    meaning: '0: as typical as the median target calibration frame; 1: as far as their 95th percentile; above 1: farther than 95% of the target frames the model was calibrated on',
  };
}

/** Area under the ROC curve of scores where `positive` should score higher (ties count half). */
export function auroc(negative: number[], positive: number[]): number {
  let s = 0;
  for (const p of positive) for (const q of negative) s += p > q ? 1 : p === q ? 0.5 : 0;
  return s / (positive.length * negative.length);
}
