/**
 * The encoders, one entry each: the task kinds it serves, the input normalisation its ImageNet
 * weights expect, and its builder. Training (train/i2i.ts) and export (convert/graph.ts) both build
 * f here, so a new encoder is one file and one line below.
 */
import { UserError } from '../../core/errors';
import type * as tf from '../../core/tf';
import type { Config } from '../config';
import { denseNetDigitsEncoder } from './densenet-digits';
import { DENSENET121, DENSENET_SMALL, dilatedDenseNet } from './densenet';
import { withInputNorm } from './input-norm';
import { FASTSEG, fastSeg } from './fastseg';
import { lenetEncoder } from './lenet';
import type { Encoder, ExportNet } from './net';
import { gapClassifier, linearClassifier, pixelClassifier } from './nets';
import { dilatedResNet, RESNET34, RESNET50, undilated, type ResNetOptions } from './resnet';

export type TaskKind = 'classify' | 'segment';

/** What a builder reads of the run's configuration. */
export interface EncoderOptions {
  /** The task kind the encoder is built for (a family may take a different form per kind). */
  kind: TaskKind;
  channels: number;
  /** Side of the (square) training image. */
  imageSize: number;
  /** config.model.encoderWidths (LeNet's four conv widths). */
  widths: number[];
  /** Gradient checkpointing of dense blocks (config.model.recompute). */
  recompute: boolean;
  /** DenseNet stem padding (config.model.stemPadding; default 'keras'). */
  stemPadding?: 'keras' | 'same';
}

export interface EncoderEntry {
  kinds: readonly TaskKind[];
  /** What inputNorm 'auto' means with --init (the family's ImageNet preprocessing); absent where no
   *  ImageNet weights exist (the 1-channel digits encoders). */
  pretrainedNorm?: 'caffe' | 'torch';
  build(o: EncoderOptions, name: string, seed: number): Encoder;
}

/**
 * ResNet: dilated (output stride 8, context head) for segmentation; for classification the same
 * definition undilated (output stride 32), with the feature map's size fixed by the input's.
 */
function resNet(o: EncoderOptions, name: string, seed: number, opts: ResNetOptions): Encoder {
  if (o.kind === 'segment') return dilatedResNet(name, seed, o.channels, opts);
  const enc = dilatedResNet(name, seed, o.channels, undilated(opts));
  const side = Math.ceil(o.imageSize / enc.outStride);
  return { ...enc, outShape: [side, side, enc.outShape[2]] };
}

export const ENCODERS = {
  lenet: { kinds: ['classify'], build: (o, name, seed) => lenetEncoder(name, seed, [o.imageSize, o.imageSize, o.channels], o.widths) },
  'densenet-digits': { kinds: ['classify'], build: (o, name, seed) => denseNetDigitsEncoder(name, seed, [o.imageSize, o.imageSize, o.channels]) },
  'densenet-small': { kinds: ['segment'], pretrainedNorm: 'torch', build: (o, name, seed) => dilatedDenseNet(name, seed, o.channels, { ...DENSENET_SMALL, recompute: o.recompute, stemPadding: o.stemPadding }) },
  densenet121: { kinds: ['segment'], pretrainedNorm: 'torch', build: (o, name, seed) => dilatedDenseNet(name, seed, o.channels, { ...DENSENET121, recompute: o.recompute, stemPadding: o.stemPadding }) },
  // The real-time student of i2i distill (no ImageNet weights: Keras publishes none for it).
  fastseg: { kinds: ['segment'], build: (o, name, seed) => fastSeg(name, seed, o.channels, FASTSEG) },
  resnet34: { kinds: ['segment', 'classify'], pretrainedNorm: 'caffe', build: (o, name, seed) => resNet(o, name, seed, RESNET34) },
  resnet50: { kinds: ['segment', 'classify'], pretrainedNorm: 'caffe', build: (o, name, seed) => resNet(o, name, seed, RESNET50) },
} satisfies Record<string, EncoderEntry>;

export type EncoderName = keyof typeof ENCODERS;
export const ENCODER_NAMES = Object.keys(ENCODERS) as [EncoderName, ...EncoderName[]];

/** Names that older configurations gave a network which now has its own: digits runs called their DenseNet 'densenet-small'. */
const FORMER_NAMES: Record<TaskKind, Record<string, EncoderName>> = { classify: { 'densenet-small': 'densenet-digits' }, segment: {} };

/** The current name of the encoder a configuration of `kind` calls `name`. */
export function currentEncoderName(kind: TaskKind, name: string): string {
  return FORMER_NAMES[kind][name] ?? name;
}

export function encoderEntry(name: string): EncoderEntry | undefined {
  return Object.hasOwn(ENCODERS, name) ? ENCODERS[name as EncoderName] : undefined;
}

export function encodersFor(kind: TaskKind): EncoderName[] {
  return ENCODER_NAMES.filter((n) => (ENCODERS[n] as EncoderEntry).kinds.includes(kind));
}

/** f (or ADDA's f_t) for a run: config.model.encoder behind config.model.inputNorm. */
export function createEncoder(config: Config, name: string, seed: number): Encoder {
  const encoder = config.model.encoder;
  const entry: EncoderEntry = ENCODERS[encoder];
  if (!entry.kinds.includes(config.kind)) {
    throw new UserError(`The ${encoder} encoder does not serve ${config.kind} tasks.`, `Use --encoder ${encodersFor(config.kind).join(' | ')}.`);
  }
  const o: EncoderOptions = { kind: config.kind, channels: config.data.channels, imageSize: config.data.imageSize, widths: config.model.encoderWidths, recompute: config.model.recompute, stemPadding: config.model.stemPadding };
  return withInputNorm(entry.build(o, name, seed), config.model.inputNorm);
}

/**
 * h on f's features (config.model.classifier): per-pixel logits (1x1 conv) for segmentation; class
 * logits from the flattened map (digits) or after global average pooling (Office).
 */
export function createClassifier(config: Config, name: string, f: Encoder, classes: number, seed: number): ExportNet<tf.Tensor4D, tf.Tensor> {
  const kind = config.model.classifier === 'auto' ? (config.kind === 'segment' ? 'pixel' : 'flatten') : config.model.classifier;
  switch (kind) {
    case 'pixel': return pixelClassifier(name, seed, f.outShape[2], classes);
    case 'gap': return gapClassifier(name, seed, f.outShape[2], classes);
    case 'flatten': return linearClassifier(name, seed, f.outShape, classes);
  }
}
