/**
 * Benchmark (not a test): one training step of the full-size segmenter (dilated DenseNet121 by
 * default, or --encoder resnet50/resnet34) with all networks of the full method (f, h, g_shared,
 * g_x, g_y, D_x, D_y), batch 1 per domain, 256x256 crops, on this machine's backend. Reports the
 * median step time and the memory: tensor bytes held by tfjs and the process's peak RSS.
 *
 *   npm run bench:seg-step -- [--encoder densenet121] [--steps 3] [--size 256]
 */
import { parseArgs } from 'node:util';
import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { median } from '../core/stats';
import { buildConfig } from '../train/config';
import { I2IModel } from '../train/i2i';

const { values } = parseArgs({ options: { encoder: { type: 'string', default: 'densenet121' }, steps: { type: 'string', default: '3' }, size: { type: 'string', default: '256' } } });

async function main() {
  const backend = await initBackend();
  const size = Number(values.size);
  // Random weights (speed does not depend on them): no ImageNet file needed.
  const config = buildConfig('gta5-cityscapes', 'full', { batchSize: 1, model: { encoder: values.encoder as 'densenet121', init: 'none' }, data: { imageSize: size } });
  const model = new I2IModel(config, 19);
  const params = model.networks().map((n) => [n.name, n.store.variables().reduce((a, v) => a + v.size, 0)] as const);
  const x = tf.randomUniform([1, size, size, 3], -1, 1) as tf.Tensor4D;
  const y = tf.randomUniform([1, size, size, 3], -1, 1) as tf.Tensor4D;
  const labels = tf.randomUniform([1, size, size], 0, 19, 'int32');
  const times: number[] = [];
  let peakRss = 0, peakBytes = 0;
  for (let s = 0; s < Number(values.steps); s++) {
    const t0 = Date.now();
    let l;
    try {
      l = model.step({ x, y, labels }, s);
    } catch (e) {
      if (backend.choice === 'wasm' && /memory access out of bounds|Out of memory/i.test(String(e))) {
        process.stdout.write(`${values.encoder} at ${size}x${size}: the step does not fit in the wasm backend's heap (about 2 GiB addressable; peak RSS so far ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB).\n` +
          'Use a smaller crop (--size 128), or tfjs-node / tfjs-node-gpu, which have no such limit.\n');
        process.exit(3);
      }
      throw e;
    }
    times.push((Date.now() - t0) / 1000);
    peakRss = process.resourceUsage().maxRSS * 1024;  // the OS's high-water mark, inside the step too
    peakBytes = Math.max(peakBytes, tf.memory().numBytes);
    process.stderr.write(`[bench] step ${s + 1}: ${times[s].toFixed(1)} s | ${Object.entries(l).map(([k, v]) => `${k} ${(v as number).toFixed(3)}`).join(' ')}\n`);
  }
  const lines = [
    `${values.encoder} segmenter, full method (no D_z, no cycle), batch 1 per domain, ${size}x${size}, backend ${backend.choice}`,
    `parameters: ${params.map(([n, p]) => `${n} ${(p / 1e6).toFixed(2)}M`).join(', ')}`,
    `step time: median ${median(times).toFixed(1)} s of ${times.length} (${times.map((t) => t.toFixed(1)).join(', ')})`,
    `memory: tfjs tensors ${(tf.memory().numBytes / 2 ** 20).toFixed(0)} MiB after the steps (largest between steps ${(peakBytes / 2 ** 20).toFixed(0)} MiB), process peak RSS ${(peakRss / 2 ** 30).toFixed(2)} GiB`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  tf.dispose([x, y, labels]);
  model.dispose();
}

main().then(() => process.exit(0), (e) => { process.stderr.write(String(e.stack ?? e) + '\n'); process.exit(1); });
