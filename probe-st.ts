import sharp from 'sharp';
import { startServer } from './serve/server';
import { listImages } from './convert/frames';
(async () => {
  const s = await startServer({ bundle: '/tmp/bs-debug/bundle-small', port: 0, runtime: 'tflite', precision: process.argv[2] as 'int8', workers: 2, threads: 1, log: { info() {}, warn() {}, error() {} } });
  const body = await sharp(listImages('/tmp/bs-debug/data/requests/leftImg8bit', 1)[0]).jpeg({ quality: 90 }).toBuffer();
  const rows: string[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const r = await fetch(`${s.url}/segment?format=${process.argv[3] ?? 'png'}`, { method: 'POST', body, headers: { 'Content-Type': 'image/jpeg' } });
    await r.arrayBuffer();
    if (i >= 20) rows.push(`${(performance.now() - t0).toFixed(1)} ${r.headers.get('server-timing')}`);
  }
  console.log(rows.join('\n'));
  await s.close();
  process.exit(0);
})();
