import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
import { buildConfig } from '../train/config';
import { I2IModel } from '../train/i2i';
async function main() {
  await initBackend();
  const method = process.argv[2] ?? 'full';
  const bs = Number(process.argv[3] ?? 64);
  const cfg = buildConfig('mnist-optdigits', method, { batchSize: bs, model: JSON.parse(process.argv[4] ?? '{}') });
  const m = new I2IModel(cfg, 10);
  const b = { x: tf.randomUniform([bs, 32, 32, 1], -1, 1) as tf.Tensor4D, y: tf.randomUniform([bs, 32, 32, 1], -1, 1) as tf.Tensor4D, labels: tf.tensor1d(Array.from({ length: bs }, (_, i) => i % 10), 'int32') };
  m.step(b, 0);
  const t0 = Date.now();
  const p = await tf.profile(() => { m.step(b, 1); });
  console.log('step ms', Date.now() - t0);
  const agg = new Map<string, [number, number]>();
  for (const k of p.kernels) {
    const t = await k.kernelTimeMs as number;
    const key = k.name + ' ' + JSON.stringify(k.inputShapes);
    const a = agg.get(key) ?? [0, 0]; a[0] += t; a[1]++; agg.set(key, a);
  }
  let tot = 0, cnt = 0; for (const [, [t, n]] of agg) { tot += t; cnt += n; } console.log('kernel total ms', tot.toFixed(0), 'kernels', cnt);
  const byName = new Map<string, number>(); for (const [k, [t]] of agg) { const nm = k.split(' ')[0]; byName.set(nm, (byName.get(nm) ?? 0) + t); } console.log([...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) => k + ':' + v.toFixed(0)).join(' '));
  const rows = [...agg.entries()].sort((a, b) => b[1][0] - a[1][0]).slice(0, 25);
  for (const [k, [t, n]] of rows) console.log(t.toFixed(0).padStart(7), n, k.slice(0, 150));
}
main().catch((e) => { console.error(e.stack.slice(0, 2000)); process.exit(1); });
