/**
 * Parity: the check frames through the reference (the training model's inference function,
 * convert/reference.ts) and through every written file as the deployment runtime loads it, one
 * frame at a time (a 512x1024 frame's logits are 40 MB; only one frame's are held).
 */
import type { ModelFile } from '../core/bundle';
import { outputLabels, type LoadedModel, type ModelSpec } from '../runtime/bundle';
import { accumulateConfusion } from '../train/eval-seg';
import type { CheckFrame } from './frames';
import type { Reference } from './reference';

/** A written file, loaded by the deployment runtime itself: parity measures the code that serves. */
export interface Runner { file: ModelFile; model: LoadedModel; threads: number }

export interface ParityStats { maxDiff: number; range: number; agree: number; total: number; times: number[]; conf: Float64Array }

const label = (rn: Runner) => `${rn.file.format} ${rn.file.precision}`;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

/**
 * `afterFrame(i, detail)` is awaited after each frame (progress, interruption); `detail` gives the
 * reference's and each runner's time on that frame.
 */
export async function measureParity(reference: Reference, runners: Runner[], checks: CheckFrame[], o: { spec: ModelSpec; stride: number; argmax?: boolean; afterFrame?: (i: number, detail: string) => Promise<void> | void }): Promise<{ stats: ParityStats[]; refConf: Float64Array }> {
  const k = o.spec.classes;
  // The reference's logits become labels as the deployed files' do (upsampled at the output stride).
  const refFile = { file: 'the reference', output: 'logits' as const, outputStride: o.stride };
  const stats: ParityStats[] = runners.map(() => ({ maxDiff: 0, range: 0, agree: 0, total: 0, times: [], conf: new Float64Array(k * k) }));
  const refConf = new Float64Array(k * k);
  for (const [i, { x, labels }] of checks.entries()) {
    let t0 = process.hrtime.bigint();
    const ref = reference.run(x);
    const times = [`reference ${(ms(t0) / 1000).toFixed(1)} s`];
    const refLabels = outputLabels(o.spec, refFile, ref);
    if (labels) accumulateConfusion(refConf, k, labels, refLabels);
    runners.forEach((rn, j) => {
      // Timed to the labels at the input size: a file that ends at the output stride pays the
      // runtime's upsampling here, as one with the resize inside pays it in the model.
      t0 = process.hrtime.bigint();
      const got = rn.model.run([x])[0].output;
      const gotLabels = outputLabels(o.spec, rn.file, got);
      const s = stats[j];
      s.times.push(ms(t0));
      times.push(`${label(rn)} ${(s.times[s.times.length - 1] / 1000).toFixed(1)} s`);
      for (let p = 0; p < refLabels.length; p++) s.agree += refLabels[p] === gotLabels[p] ? 1 : 0;
      s.total += refLabels.length;
      if (labels) accumulateConfusion(s.conf, k, labels, gotLabels);
      if (!o.argmax) for (let q = 0; q < ref.length; q++) { s.maxDiff = Math.max(s.maxDiff, Math.abs(ref[q] - got[q])); s.range = Math.max(s.range, Math.abs(ref[q])); }
    });
    await o.afterFrame?.(i, times.join(', '));
  }
  return { stats, refConf };
}
