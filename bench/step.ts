/**
 * Benchmark (not a test): seconds per full I2I digits step on the wasm backend (with the project's
 * gradient kernels) against the pure-JS cpu backend, side by side in one run.
 *
 *   npm run bench:step -- [--method full] [--batch 32] [--paper]   (--paper: section 5.1 widths)
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { median } from '../core/stats';
import { buildConfig } from '../train/config';
import { I2IModel } from '../train/i2i';

const { values } = parseArgs({
  options: {
    method: { type: 'string', default: 'full' }, batch: { type: 'string', default: '32' },
    paper: { type: 'boolean', default: false }, steps: { type: 'string', default: '3' }, child: { type: 'string' },
  },
});
const model = values.paper ? {} : { decoderWidths: [64, 32, 16], imageCriticWidths: [16, 32, 64] };

async function child(backend: string): Promise<void> {
  await initBackend({ force: backend, quiet: true });
  const bs = Number(values.batch);
  const m = new I2IModel(buildConfig('mnist-optdigits', values.method!, { batchSize: bs, model }), 10);
  const b = {
    x: tf.randomUniform([bs, 32, 32, 1], -1, 1, 'float32', 1) as tf.Tensor4D,
    y: tf.randomUniform([bs, 32, 32, 1], -1, 1, 'float32', 2) as tf.Tensor4D,
    labels: tf.tensor1d(Array.from({ length: bs }, (_, i) => i % 10), 'int32'),
  };
  m.step(b, 0); // warm-up: kernel setup, first allocations
  const times: number[] = [];
  for (let i = 1; i <= Number(values.steps); i++) {
    const t0 = performance.now();
    m.step(b, i);
    times.push((performance.now() - t0) / 1000);
  }
  process.stdout.write(JSON.stringify({ backend, median: median(times), times }) + '\n');
}

function main(): void {
  const run = (backend: string, steps: string) => JSON.parse(execFileSync(process.execPath, [require.resolve('tsx/cli'), __filename, '--child', backend,
    '--method', values.method!, '--batch', values.batch!, '--steps', steps, ...(values.paper ? ['--paper'] : [])], { encoding: 'utf8' }).trim().split('\n').pop()!);
  const wasm = run('wasm', values.steps!);
  const cpu = run('cpu', '1');
  const widths = values.paper ? 'paper widths (decoders 512/256/128, critics 64/128/256)' : 'bench widths (decoders 64/32/16, critics 16/32/64)';
  process.stdout.write(`${values.method} I2I digits step, batch ${values.batch} per domain, ${widths}\n`);
  process.stdout.write(`| backend | s/step |\n|---|---|\n| wasm + core/wasm-kernels | ${wasm.median.toFixed(2)} (median of ${wasm.times.length}) |\n| cpu (pure JS) | ${cpu.median.toFixed(2)} (1 step) |\n`);
  process.stdout.write(`speed-up wasm vs cpu: ${(cpu.median / wasm.median).toFixed(1)}x\n`);
}

if (values.child) child(values.child).catch((e) => { console.error(e); process.exit(1); });
else main();
