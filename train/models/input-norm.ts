/**
 * What an encoder's first layer sees. Images are [-1, 1] RGB everywhere else; ImageNet-initialised
 * backbones expect what they were trained on: 'caffe' = BGR 0..255 minus the ImageNet means (Keras
 * ResNet50), 'torch' = RGB 0..1 standardised (Keras DenseNet). Written once, for training and export.
 */
import * as tf from '../../core/tf';
import type { GraphBuilder } from './ir';
import type { Mode } from './layers';
import type { Encoder } from './net';

/** config.model.inputNorm; 'auto' is resolved by buildConfig and means 'none' if it survives. */
export type InputNorm = 'auto' | 'none' | 'caffe' | 'torch';

const MEAN_RGB_255 = [123.68, 116.779, 103.939];
const MEAN_RGB = [0.485, 0.456, 0.406];
const STD_RGB = [0.229, 0.224, 0.225];

/** [-1, 1] RGB -> what an ImageNet backbone was trained on (Keras' 'caffe' and 'torch' modes). */
export function normalizeInput(x: tf.Tensor4D, mode: 'caffe' | 'torch'): tf.Tensor4D {
  return tf.tidy(() => {
    if (mode === 'caffe') {
      const bgr = tf.reverse(tf.mul(tf.add(x, 1), 127.5), 3);
      return tf.sub(bgr, tf.tensor1d([...MEAN_RGB_255].reverse())) as tf.Tensor4D;
    }
    const v = tf.div(tf.add(x, 1), 2);
    return tf.div(tf.sub(v, tf.tensor1d(MEAN_RGB)), tf.tensor1d(STD_RGB)) as tf.Tensor4D;
  });
}

/**
 * The same as one per-channel affine on RGB; for 'caffe' a channel reversal follows, which
 * convert/ folds into the first conv's input channels.
 */
function emitNorm(g: GraphBuilder, x: number, mode: 'caffe' | 'torch'): number {
  if (mode === 'caffe') {
    const y = g.affine(x, Float32Array.from([127.5, 127.5, 127.5]), Float32Array.from(MEAN_RGB_255.map((m) => 127.5 - m)));
    return g.reverseChannels(y);
  }
  return g.affine(x, Float32Array.from(STD_RGB.map((s) => 0.5 / s)), Float32Array.from(MEAN_RGB.map((m, i) => (0.5 - m) / STD_RGB[i])));
}

/** `enc` behind the input normalisation `mode`, in training and in its exported graph. */
export function withInputNorm(enc: Encoder, mode: InputNorm): Encoder {
  if (mode === 'none' || mode === 'auto') return enc;
  return {
    ...enc,
    apply: (x: tf.Tensor4D, m: Mode) => enc.apply(normalizeInput(x, mode), m),
    emit: (g, x) => enc.emit(g, emitNorm(g, x, mode)),
  };
}
