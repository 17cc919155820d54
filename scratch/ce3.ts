import * as tf from '../core/tf';
import { initBackend } from '../core/backend';
async function main() {
  await initBackend({ force: 'wasm' });
  const lab = tf.tensor1d([0, 1, 255, 2], 'int32');
  const valid = tf.notEqual(lab, tf.scalar(255, 'int32')); console.log('valid', valid.dtype, Array.from(valid.dataSync()));
  const safe = tf.where(valid, lab, tf.zerosLike(lab)); console.log('safe', safe.dtype, Array.from(safe.dataSync()));
  const w = tf.cast(valid, 'float32'); console.log('w', w.dtype, Array.from(w.dataSync()));
  const s = tf.sum(w); console.log('sum', s.dtype, s.dataSync()[0]);
  const m = tf.maximum(s, tf.scalar(1)); console.log('max', m.dtype, m.dataSync()[0]);
  const oh = tf.oneHot(safe, 3, 1, 0, 'float32'); console.log('oh', oh.dtype, Array.from(oh.dataSync()));
  const r = tf.reshape(lab, [-1]).toInt(); console.log('r', r.dtype, Array.from(r.dataSync()));
}
main();
