import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
async function main() {
  await initBackend();
  const cases: [number[], number[], number, 'same'|'valid'][] = [
    [[2,9,9,3],[4,4,3,5],2,'same'], [[2,8,8,3],[3,3,3,4],1,'same'], [[3,11,7,2],[4,4,2,3],2,'valid'], [[1,10,10,2],[3,3,2,2],3,'same'],[[2,8,8,3],[4,4,3,5],2,'same'],[[2,12,8,3],[3,3,3,5],2,'same'],[[2,8,8,3],[2,2,3,5],2,'valid'],[[2,16,16,4],[5,5,4,3],2,'same'],[[2,16,16,4],[4,4,4,3],2,'valid']];
  for (const [xs, ws, s, pad] of cases) {
    const x = tf.randomNormal(xs, 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal(ws, 0, 1, 'float32', 2) as tf.Tensor4D;
    const f = (x: tf.Tensor4D, w: tf.Tensor4D) => tf.conv2d(x, w, s, pad).square().sum();
    await tf.setBackend('wasm');
    const xv = x.arraySync(), wv = w.arraySync();
    const g1 = tf.grads(f as any)([tf.tensor(xv), tf.tensor(wv)]).map(t => t.arraySync());
    await tf.setBackend('cpu');
    const g2 = tf.grads(f as any)([tf.tensor(xv), tf.tensor(wv)]).map(t => t.arraySync());
    const d = g1.map((a, i) => tf.tensor(a as any).sub(tf.tensor(g2[i] as any)).abs().max().dataSync()[0] / (tf.tensor(g2[i] as any).abs().max().dataSync()[0]));
    console.log(xs, ws, s, pad, d);
    await tf.setBackend('wasm');
  }
}
main();
