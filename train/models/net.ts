/** What a network is to the objective (train/i2i.ts), to checkpoints and to the exporters. */
import * as tf from '../../core/tf';
import { upsampleBilinear } from '../../core/upsample';
import type { GraphBuilder } from './ir';
import type { ExportLayer, Mode, Store } from './layers';

export interface Net<I extends tf.Tensor = tf.Tensor4D, O extends tf.Tensor = tf.Tensor> {
  name: string;
  store: Store;
  apply(x: I, mode: Mode): O;
}

/** A network of the inference path (f, h): it writes itself into the inference IR after tensor `x`. */
export interface ExportNet<I extends tf.Tensor = tf.Tensor4D, O extends tf.Tensor = tf.Tensor> extends Net<I, O> {
  emit(g: GraphBuilder, x: number): number;
}

/** f: images to a latent map of `outShape` (height and width 0 where they follow the input). */
export type Encoder = ExportNet<tf.Tensor4D, tf.Tensor4D> & { outShape: [number, number, number] };

/** An encoder whose whole body is one layer. */
export function encoderOf(name: string, store: Store, body: ExportLayer, outShape: [number, number, number]): Encoder {
  return { name, store, apply: (x, mode) => body.apply(x, mode), emit: (g, x) => body.emit(g, x), outShape };
}

/**
 * h(f(images)) with running statistics, per pixel upsampled to `outHW` when given: how a frozen
 * network predicts (the self-training teacher, a distillation teacher). No gradient is taken here.
 */
export function evalLogits(f: Encoder, h: ExportNet<tf.Tensor4D, tf.Tensor>, images: tf.Tensor4D, outHW?: [number, number]): tf.Tensor {
  return tf.tidy(() => {
    const z = h.apply(f.apply(images, 'eval'), 'eval');
    return outHW && z.rank === 4 ? upsampleBilinear(z as tf.Tensor4D, outHW) : z;
  });
}
