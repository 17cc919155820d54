/**
 * Keras Applications' published ImageNet weights for our encoders (keras/applications/densenet.py
 * and resnet.py: BASE_WEIGHTS_PATH + file name, and the `file_hash` Keras' get_file checks, an MD5
 * for a 32-digit hash), and where they live here: the weights cache, `.cache/weights/` in the
 * checkout (I2I_WEIGHTS_DIR overrides it), one flat file each, as Keras keeps ~/.keras/models/.
 * No TensorFlow.js here: the configuration resolves paths through this module.
 */
import * as path from 'node:path';

export interface PublishedWeights {
  file: string;
  url: string;
  md5: string;
  /** For the user before a download: sizes of the float32 tensors plus HDF5 overhead. */
  approxMB: number;
}

const DENSENET_BASE = 'https://storage.googleapis.com/tensorflow/keras-applications/densenet/';
const RESNET_BASE = 'https://storage.googleapis.com/tensorflow/keras-applications/resnet/';

export const IMAGENET: Record<'densenet121' | 'resnet50', PublishedWeights> = {
  densenet121: {
    file: 'densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5',
    url: `${DENSENET_BASE}densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5`,
    md5: '30ee3e1110167f948a6b9946edeeb738',
    approxMB: 29,
  },
  resnet50: {
    file: 'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5',
    url: `${RESNET_BASE}resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`,
    md5: '4d473c1dd8becc155b73f8504c6f6626',
    approxMB: 94,
  },
};

export type ImagenetEncoder = keyof typeof IMAGENET;

/** `model.init`'s keywords: Keras' published weights of the encoder, or deliberately none. */
export const INIT_IMAGENET = 'imagenet';
export const INIT_NONE = 'none';

export function hasImagenet(encoder: string): encoder is ImagenetEncoder {
  return Object.hasOwn(IMAGENET, encoder);
}

export function weightsDir(): string {
  return process.env.I2I_WEIGHTS_DIR ? path.resolve(process.env.I2I_WEIGHTS_DIR) : path.resolve(__dirname, '../../.cache/weights');
}

/** Where `i2i weights <encoder>` installs the file (it may not be there yet). */
export function imagenetPath(encoder: ImagenetEncoder): string {
  return path.join(weightsDir(), IMAGENET[encoder].file);
}

/** The download URL: Keras' own, or under I2I_WEIGHTS_BASE_URL (a mirror, or a test's local server). */
export function imagenetUrl(encoder: ImagenetEncoder): string {
  const base = process.env.I2I_WEIGHTS_BASE_URL;
  return base ? `${base.replace(/\/?$/, '/')}${IMAGENET[encoder].file}` : IMAGENET[encoder].url;
}

/** The encoder whose published file `file` is named after, if any. */
export function publishedEncoderOf(file: string): ImagenetEncoder | undefined {
  return (Object.keys(IMAGENET) as ImagenetEncoder[]).find((e) => path.basename(file) === IMAGENET[e].file);
}
