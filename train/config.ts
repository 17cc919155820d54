/**
 * A run's configuration: one typed object, validated once (zod), composed from a task's base, a
 * method preset and the user's overrides (in that order, later wins), and written into every
 * checkpoint. Presets are the special cases of the paper's Table 1; they only set weights/flags.
 */
import { z } from 'zod';
import { UserError } from '../core/errors';
import { isOfficeDomain, OFFICE_DOMAINS } from './data/office';
import { currentEncoderName, encoderEntry, ENCODER_NAMES } from './models/registry';
import { hasImagenet, imagenetPath, INIT_IMAGENET, INIT_NONE } from './weights/imagenet';

export const TERM_NAMES = ['c', 'id', 'z', 'tr', 'cyc', 'trc', 'st', 'mic', 'kd'] as const;
export type TermName = (typeof TERM_NAMES)[number];

const weight = z.number().min(0);
/** st and mic (self-training, train/self-training.ts) and kd (distillation, train/distill.ts) came later: configurations without them have them off. */
export const WeightsSchema = z.object({ c: weight, id: weight, z: weight, tr: weight, cyc: weight, trc: weight, st: weight.default(0), mic: weight.default(0), kd: weight.default(0) }).strict();

/** Self-training's settings (train/self-training.ts); they act only when weights.st or weights.mic > 0. */
export const SelfTrainingSchema = z.object({
  /** The teacher's moving-average rate (DACS 0.99, DAFormer 0.999 over 40k steps), warmed up as min(1 - 1/(t+1), ema). */
  ema: z.number().min(0).max(1),
  /** A pixel is confident when the teacher's max probability exceeds this (DACS/DAFormer: 0.968). */
  threshold: z.number().min(0).max(1),
  /** 0 = one threshold; p in (0, 100] = per class, min(threshold, p-th percentile of the class's confidences in the batch). */
  classPercentile: z.number().min(0).max(100),
  /** How confidence weighs a target pixel: 'image' = its image's share q of confident pixels (DACS,
   *  DAFormer); 'pixel' = 1 when the pixel itself is confident, else 0 (FixMatch, CBST). Saved runs
   *  without the key are 'image'. */
  weighting: z.enum(['image', 'pixel']).default('image'),
  /** 'classmix' pastes half of a source crop's classes onto the target crop; 'none' trains on the target crop alone. */
  mix: z.enum(['classmix', 'none']),
  /** What is pasted: 'auto' = the translated source g_y(f(x)) when a term trains g_y, else x. */
  mixSource: z.enum(['auto', 'source', 'translated']),
  /** Colour-jitter strength (brightness, contrast, saturation) of the mixed image; 0 = none. */
  jitter: z.number().min(0).max(1),
  /** Gaussian blur of the mixed image with probability 0.5. */
  blur: z.boolean(),
  /** MIC: side of the masked patches (pixels of the crop) and the share of patches masked. */
  micPatch: z.number().int().positive(),
  micRatio: z.number().min(0).max(1),
}).strict();
export const SELF_TRAINING_DEFAULTS: z.infer<typeof SelfTrainingSchema> = {
  ema: 0.99, threshold: 0.968, classPercentile: 0, weighting: 'image', mix: 'classmix', mixSource: 'auto', jitter: 0.2, blur: true, micPatch: 32, micRatio: 0.7,
};
/**
 * Segmentation selects pseudo-labels per pixel, with per-class thresholds at the median of each
 * class's confidences (CBST's class-balanced selection) instead of DACS's per-image weight, and
 * ClassMix pastes the source x itself, not its translation: on the synthetic shift each was at
 * least as good on three seeds out of three (README, "Measured").
 */
export const SEGMENT_SELF_TRAINING: z.infer<typeof SelfTrainingSchema> = { ...SELF_TRAINING_DEFAULTS, weighting: 'pixel', classPercentile: 50, mixSource: 'source' };

export const DIGIT_DOMAINS = ['mnist', 'usps', 'svhn', 'optdigits', 'folder'] as const;
/** Driving-scene dataset layouts (both hold Cityscapes labelIds). */
export const SCENE_DOMAINS = ['gta5', 'cityscapes'] as const;
/** Office-31's domains (train/data/office.ts). */
export { OFFICE_DOMAINS };
/** The registry's encoders (train/models/registry.ts). */
export const ENCODERS = ENCODER_NAMES;

/** The generator-side networks of train/i2i.ts (optim) and the critics (criticOptim). */
const NETWORK_NAMES = ['f', 'f_t', 'h', 'g_shared', 'g_x', 'g_y', 'D_z', 'D_x', 'D_y'] as const;
const rate = z.number().positive();
const AdamSchema = z.object({
  lr: rate, beta1: z.number().min(0).max(1), beta2: z.number().min(0).max(1),
  /** A multiplier of `lr` per network (default 1): a pretrained encoder fine-tunes slower than the
   *  networks trained from scratch. ADDA's f_t follows f's unless named. */
  lrScale: z.object(Object.fromEntries(NETWORK_NAMES.map((n) => [n, z.number().min(0).optional()])) as Record<(typeof NETWORK_NAMES)[number], z.ZodOptional<z.ZodNumber>>).strict().optional(),
}).strict();

/** Renamed values of older configurations, brought up to date before validation. */
function upgrade(raw: unknown): unknown {
  // Configurations from before self-training take their task base's settings (MIC's patch suits its image size).
  if (isObject(raw) && raw.selfTraining === undefined && typeof raw.task === 'string' && Object.hasOwn(TASKS, raw.task)) raw = { ...raw, selfTraining: taskSelfTraining(raw.task) };
  if (!isObject(raw) || !isObject(raw.model) || typeof raw.model.encoder !== 'string') return raw;
  const kind = raw.kind ?? 'classify';
  if (kind !== 'classify' && kind !== 'segment') return raw;
  const encoder = currentEncoderName(kind, raw.model.encoder);
  return encoder === raw.model.encoder ? raw : { ...raw, model: { ...raw.model, encoder } };
}

/** Whether a configuration self-trains: a term that reads the teacher (st, mic) has weight. */
export function selfTrains(c: Pick<Config, 'weights'>): boolean {
  return c.weights.st + c.weights.mic > 0;
}

/** A task's self-training settings today (its base's block; no preset changes them). */
export function taskSelfTraining(task: string): Config['selfTraining'] {
  return (TASKS[task]?.base ?? DIGITS_BASE).selfTraining;
}

/** Keys added after the first release carry defaults, so that older checkpoints still load. */
export const ConfigSchema = z.preprocess(upgrade, z.object({
  task: z.string(),
  /** Image-level classification (digits, Office) or per-pixel segmentation (driving scenes). */
  kind: z.enum(['classify', 'segment']).default('classify'),
  method: z.string(),
  seed: z.number().int().min(0),
  steps: z.number().int().positive(),
  /** Fine-tuning: every network starts from this run's last checkpoint (fresh optimisers, step 0). */
  fromRun: z.string().optional(),
  batchSize: z.number().int().positive(),
  optim: AdamSchema,
  /** Adam settings for the critics (D_z, D_x, D_y). */
  criticOptim: AdamSchema,
  /** Linear learning-rate decay (CycleGAN's schedule): both optimisers keep their rate for this
   *  fraction of `steps`, then decay linearly to zero at `steps`. 1 = constant (the paper's).
   *  The schedule follows the current `steps`: `--resume --steps N` stretches the decay to N. */
  lrDecayFrom: z.number().min(0).max(1).default(1),
  weights: WeightsSchema,
  /** Distillation (weights.kd, i2i distill): the teacher run whose soft predictions on target frames
   *  the network learns, and the softmax temperature of both sides. */
  distill: z.object({
    teacher: z.string().optional(), temperature: z.number().positive(),
    /** Recorded when the run starts: the teacher's step and weights (sha256, 16 hex digits), checked on
     *  --resume, and what it is (for the bundle's manifest, whatever becomes of the teacher's folder). */
    teacherStep: z.number().int().min(0).optional(), teacherFingerprint: z.string().optional(),
    teacherTask: z.string().optional(), teacherMethod: z.string().optional(), teacherEncoder: z.string().optional(),
  }).strict().default({ temperature: 2 }),
  /** Self-training (weights.st, weights.mic): teacher, pseudo-labels, mixing. */
  selfTraining: SelfTrainingSchema.default(SELF_TRAINING_DEFAULTS),
  /** Which domains L_id reconstructs: DRCN reconstructs the target only. */
  idDomains: z.array(z.enum(['source', 'target'])).min(1),
  gpWeight: z.number().min(0),
  /** ADDA: pre-train on the source for this many steps, then freeze f and h and train an untied
   *  target encoder f_t (initialised from f) with L_z only. */
  untieTargetEncoder: z.boolean(),
  pretrainSteps: z.number().int().min(0),
  model: z.object({
    encoder: z.enum(ENCODERS),
    /** ImageNet initialisation, mapped by Keras layer name: a Keras .h5 weights file or a Keras-format
     *  tfjs layers model.json; 'none' = from scratch on purpose. buildConfig resolves 'imagenet'
     *  (gta5-cityscapes' default) to the installed Keras Applications file (i2i weights). */
    init: z.string().optional(),
    /** Let --init leave encoder layers without a match (listed in the log) instead of failing. */
    initAllowUnmatched: z.boolean().default(false),
    /** What the encoder's first layer sees: images are [-1, 1] RGB everywhere else. 'caffe' = BGR
     *  0..255 minus the ImageNet means (Keras ResNet50), 'torch' = RGB 0..1 standardised (Keras
     *  DenseNet). 'auto' resolves to the family's own when --init is given, else 'none'. */
    inputNorm: z.enum(['auto', 'none', 'caffe', 'torch']).default('none'),
    /** Segmentation DenseNets: recompute each dense block in the backward pass (gradient
     *  checkpointing) instead of keeping its O(layers^2) activations; about one more encoder forward. */
    recompute: z.boolean().default(false),
    /** DenseNet stems: 'keras' pads explicitly as Keras does (3 around the 7x7/2 conv, 1 around the
     *  3x3/2 pool), the network the ImageNet weights come from; 'same' is the padding of runs made
     *  before it (a one-pixel shift at even sizes), kept for their checkpoints. New runs: 'keras'. */
    stemPadding: z.enum(['keras', 'same']).default('same'),
    encoderWidths: z.array(z.number().int().positive()).length(4),
    /** Hidden widths of the decoders' stride-2 transposed convs (the image channels come last):
     *  3 for digits and segmentation, 4 for Office's five layers from output stride 32. */
    decoderWidths: z.array(z.number().int().positive()).min(3).max(4),
    imageCriticWidths: z.array(z.number().int().positive()).length(3),
    featureCriticWidths: z.array(z.number().int().positive()).min(1),
    /** h: 'flatten' (digits: flatten + linear), 'gap' (global average pooling + linear, Office's),
     *  'pixel' (segmentation's 1x1 conv); 'auto' = the task kind's own (pixel or flatten). */
    classifier: z.enum(['auto', 'flatten', 'gap', 'pixel']).default('auto'),
    /** D_z: 'linear' (500/500/1 on the flattened features), 'conv1x1' (1x1 convs 500/500/1, a score
     *  per feature-map position, as 5.2 and FCNs in the wild); 'auto' = conv1x1 for segmentation. */
    featureCritic: z.enum(['auto', 'linear', 'conv1x1']).default('auto'),
    /** D_x / D_y's loss: WGAN with gradient penalty (5.1, 5.3), or least squares on the critics'
     *  patch scores without a penalty (5.2: better on Office). */
    imageCriticLoss: z.enum(['wgan-gp', 'lsgan']).default('wgan-gp'),
  }).strict(),
  data: z.object({
    source: z.enum([...DIGIT_DOMAINS, ...SCENE_DOMAINS, ...OFFICE_DOMAINS]),
    target: z.enum([...DIGIT_DOMAINS, ...SCENE_DOMAINS, ...OFFICE_DOMAINS]),
    sourceRoot: z.string().optional(),
    targetRoot: z.string().optional(),
    sourceLimit: z.number().int().positive().optional(),
    targetLimit: z.number().int().positive().optional(),
    /** Digits: the side images are resized to. Segmentation: the square training crop's side,
     *  taken after `scale` (a multiple of 8, the encoder's output stride). Office: the crop's side
     *  (random in training, central in evaluation) out of `resize`. */
    imageSize: z.number().int().positive(),
    /** Office: the square side every image is resized to first (the paper's 256). Default imageSize. */
    resize: z.number().int().positive().optional(),
    channels: z.union([z.literal(1), z.literal(3)]),
    /** Segmentation: whole frames are resized by this factor first (the paper halves them). */
    scale: z.number().positive().max(1).default(1),
    flip: z.boolean().default(false),
    /** Split of a Cityscapes-layout target used for training (its labels are never read). */
    targetSplit: z.string().default('train'),
    /** Unlabelled target frames sampled from every video in this folder instead of --target-root. */
    targetVideos: z.string().optional(),
    /** Unlabelled target frames: every image (PNG, JPEG, WebP) under this folder, e.g. what i2i serve --capture kept. */
    targetFrames: z.string().optional(),
    videoFps: z.number().positive().default(1),
    videoMaxFrames: z.number().int().positive().default(200),
    /** DAFormer's rare-class sampling of source crops: a class c is drawn with probability
     *  softmax((1 - f_c) / T) over the source's pixel frequencies f_c, then a source frame that
     *  shows it. 0 = off (uniform epochs); DAFormer's T is 0.01. Segmentation only. */
    rcsTemperature: z.number().min(0).default(0),
  }).strict(),
  logEvery: z.number().int().positive(),
  /** Classification: every this many steps (and at the last), log the accuracy on the target's
   *  evaluation split, as `i2i eval` measures it. Its labels are read for the log only, never for
   *  training. 0 = off. */
  evalEvery: z.number().int().min(0).default(0),
  checkpointEvery: z.number().int().positive(),
}).strict());

export type Config = z.infer<typeof ConfigSchema>;
export type Weights = z.infer<typeof WeightsSchema>;

type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type ConfigPatch = DeepPartial<Config>;

const ZERO: Weights = { c: 0, id: 0, z: 0, tr: 0, cyc: 0, trc: 0, st: 0, mic: 0, kd: 0 };

/** Defaults shared by every digits task (section 5.1 networks, Adam 2e-4 / 0.5 / 0.999). */
type Base = Omit<Config, 'task' | 'method' | 'data'> & { data: Omit<Config['data'], 'source' | 'target'> };
const DATA_DEFAULTS = { scale: 1, flip: false, targetSplit: 'train', videoFps: 1, videoMaxFrames: 200, rcsTemperature: 0 };

export const DIGITS_BASE: Base = {
  kind: 'classify',
  seed: 0,
  steps: 2000,
  batchSize: 64,
  optim: { lr: 2e-4, beta1: 0.5, beta2: 0.999 },
  criticOptim: { lr: 2e-4, beta1: 0.5, beta2: 0.999 },
  lrDecayFrom: 1,
  weights: { ...ZERO, c: 1 },
  selfTraining: { ...SELF_TRAINING_DEFAULTS, micPatch: 8 },
  distill: { temperature: 2 },
  idDomains: ['source', 'target'],
  gpWeight: 10,
  untieTargetEncoder: false,
  pretrainSteps: 0,
  model: {
    encoder: 'lenet',
    initAllowUnmatched: false,
    inputNorm: 'auto',
    recompute: false,
    stemPadding: 'keras',
    encoderWidths: [64, 64, 128, 128],
    decoderWidths: [512, 256, 128],
    imageCriticWidths: [64, 128, 256],
    featureCriticWidths: [500, 500],
    classifier: 'auto',
    featureCritic: 'auto',
    imageCriticLoss: 'wgan-gp',
  },
  data: { ...DATA_DEFAULTS, imageSize: 32, channels: 1 },
  logEvery: 25,
  evalEvery: 0,
  checkpointEvery: 250,
};

/**
 * Defaults for driving-scene segmentation (section 5.3): dilated DenseNet121 encoder, frames halved,
 * 256x256 crops, flips; decoders 512/256/128/3, image critics 64/128/256/1.
 */
export const SEGMENT_BASE: Base = {
  ...DIGITS_BASE,
  kind: 'segment',
  steps: 20000,
  batchSize: 2,
  selfTraining: SEGMENT_SELF_TRAINING,
  model: { ...DIGITS_BASE.model, encoder: 'densenet121', recompute: true },
  data: { ...DATA_DEFAULTS, imageSize: 256, channels: 3, scale: 0.5, flip: true },
  logEvery: 10,
  checkpointEvery: 500,
};

/**
 * The CPU-sized synthetic shift (i2i synth): the small dilated DenseNet on 96x96 crops of frames
 * halved from 256x512, with narrower decoders and critics. Chosen so that the benchmark's three
 * runs fit in an hour on two cores (README, "Segmentation").
 */
export const SYNTH_BASE: Base = {
  ...SEGMENT_BASE,
  steps: 600,
  batchSize: 4,
  model: { ...SEGMENT_BASE.model, encoder: 'densenet-small', recompute: false, decoderWidths: [64, 32, 16], imageCriticWidths: [16, 32, 64], featureCriticWidths: [64, 64] },
  selfTraining: { ...SEGMENT_SELF_TRAINING, micPatch: 16 },
  data: { ...SEGMENT_BASE.data, imageSize: 96 },
  logEvery: 25,
  checkpointEvery: 200,
};

/**
 * Office-31 (5.2): ImageNet ResNet without dilation (output stride 32, 7x7 features of a 224 crop),
 * h after global average pooling, decoders 512/256/128/64/3 from 7x7 to 224x224, 1x1-conv feature
 * critic, least-squares image critics. Images resized to 256x256, random 224x224 crops and flips.
 * The paper's encoder is ResNet34; Keras ships ImageNet weights for ResNet50 only (npm run
 * weights:resnet50), so resnet50 is the default and --encoder resnet34 --init <its model.json>
 * is the paper's exact network. Adam 2e-4 / (0.5, 0.999) as everywhere in the paper; its encoder
 * rate was lost from the text ("a learning rate of , to keep the weights closer to their good
 * initialization"): f at a tenth, the usual fine-tuning ratio. Batch 16 per domain: the full method
 * makes four encoder passes (x, y and both cycles) and four 224x224 decodes per step; 16 is our
 * estimate for a 16 GB GPU with ResNet50, not measured (no GPU here). 20k steps are about 110
 * epochs of Amazon (2,817 images), several hundred of Webcam (795) or DSLR (498).
 */
export const OFFICE_BASE: Base = {
  ...DIGITS_BASE,
  kind: 'classify',
  steps: 20000,
  batchSize: 16,
  optim: { ...DIGITS_BASE.optim, lrScale: { f: 0.1 } },
  model: {
    ...DIGITS_BASE.model, encoder: 'resnet50', decoderWidths: [512, 256, 128, 64],
    classifier: 'gap', featureCritic: 'conv1x1', imageCriticLoss: 'lsgan',
  },
  data: { ...DATA_DEFAULTS, imageSize: 224, resize: 256, channels: 3, flip: true },
  logEvery: 25,
  evalEvery: 1000,
  checkpointEvery: 500,
};

const officeTasks = Object.fromEntries(OFFICE_DOMAINS.flatMap((s) => OFFICE_DOMAINS.filter((t) => t !== s)
  .map((t) => [`office-${s}-${t}`, { base: OFFICE_BASE, data: { source: s, target: t } }])));

export const TASKS: Record<string, ConfigPatch & { base?: Base }> = {
  'mnist-usps': { data: { source: 'mnist', target: 'usps' } },
  'usps-mnist': { data: { source: 'usps', target: 'mnist' } },
  'svhn-mnist': { data: { source: 'svhn', target: 'mnist' } },
  'mnist-optdigits': { data: { source: 'mnist', target: 'optdigits' } },
  // 5.3 starts the encoder from ImageNet: i2i weights densenet121 (or resnet50) installs the file.
  'gta5-cityscapes': { base: SEGMENT_BASE, model: { init: INIT_IMAGENET }, data: { source: 'gta5', target: 'cityscapes' } },
  'synth-drive': { base: SYNTH_BASE, data: { source: 'gta5', target: 'cityscapes' } },
  ...officeTasks,
};

/**
 * Method presets (Table 1). `full`'s weights were chosen by the experiment recorded in README.md
 * (bench/digits.ts, MNIST -> optdigits).
 */
export const METHODS: Record<string, ConfigPatch> = {
  'source-only': { weights: { ...ZERO, c: 1 } },
  revgrad: { weights: { ...ZERO, c: 1, z: 0.1 } },
  adda: { weights: { ...ZERO, c: 1, z: 0.1 }, untieTargetEncoder: true, pretrainSteps: -1 },
  drcn: { weights: { ...ZERO, c: 1, id: 1 }, idDomains: ['target'] },
  cyclegan: { weights: { ...ZERO, tr: 1, cyc: 10 } },
  // L_id and L_cyc are pixel means of |error| while the WGAN term's gradient per pixel is ~30x
  // larger, so they need the larger weight for the decoders to reconstruct at all. Adam normalises
  // each step by the summed gradient, so the image terms take their share from L_c and L_z: c and z
  // are scaled 3x (revgrad's c:z ratio kept) to give them back their weight (README).
  full: { weights: { c: 3, id: 1, z: 0.3, tr: 0.02, cyc: 1, trc: 0 } },
  // Self-training (train/self-training.ts) beside the source loss, weighted like it (DACS: 1 and 1).
  'self-train': { weights: { ...ZERO, c: 1, st: 1 } },
  'full+st': { weights: { c: 3, id: 1, z: 0.3, tr: 0.02, cyc: 1, trc: 0, st: 3 } },
  // i2i distill: the source labels and a teacher run's soft predictions on the target (train/distill.ts).
  distill: { weights: { ...ZERO, c: 1, kd: 1 } },
};

/**
 * Segmentation's versions of presets where 5.3 differs: the full method has no feature critic and
 * no cycle (one encoder pass fewer per domain); L_trc is on.
 */
export const SEGMENT_METHODS: Record<string, ConfigPatch> = {
  full: { weights: { c: 1, id: 0.1, z: 0, tr: 0.02, cyc: 0, trc: 0.1 } },
  'full+st': { weights: { c: 1, id: 0.1, z: 0, tr: 0.02, cyc: 0, trc: 0.1, st: 1 } },
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function merge<T>(base: T, patch: unknown): T {
  if (!isObject(base) || !isObject(patch)) return (patch === undefined ? base : patch) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(patch)) out[k] = v === undefined ? out[k] : merge(out[k], v);
  return out as T;
}

/** The keys a resumed run may change: its schedule, never what it learns or from what. */
export const RESUMABLE_KEYS: ReadonlySet<string> = new Set(['steps', 'logEvery', 'evalEvery', 'checkpointEvery']);

/**
 * The first key of `patch` (dotted, e.g. "data.scale") whose value differs from `config`'s, other
 * than `allowed`; undefined when the patch changes nothing else. --resume refuses such a key
 * rather than ignore it.
 */
export function changedKey(config: unknown, patch: unknown, allowed: ReadonlySet<string> = RESUMABLE_KEYS, prefix = ''): string | undefined {
  if (!isObject(patch)) return JSON.stringify(patch) === JSON.stringify(config) ? undefined : prefix;
  for (const [k, v] of Object.entries(patch)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v === undefined || allowed.has(key)) continue;
    const changed = changedKey(isObject(config) ? config[k] : undefined, v, allowed, key);
    if (changed) return changed;
  }
  return undefined;
}

/**
 * A resume's overrides with what buildConfig resolves when a run starts resolved the same way, so
 * that repeating a run's own flag is not a change: former encoder names, `--init imagenet` (the
 * weights file's path, or none for an encoder without ImageNet weights), `--init none` on a run
 * that had no init, and the 'auto' values (inputNorm, pretrainSteps -1), which were resolved then.
 */
export function resolvedAsRun(was: Config, o: ConfigPatch): ConfigPatch {
  const out: ConfigPatch = { ...o };
  if (o.pretrainSteps === -1) delete out.pretrainSteps;
  if (!o.model) return out;
  const model: Record<string, unknown> & { encoder?: string; init?: string; inputNorm?: string } = { ...o.model };
  if (model.encoder !== undefined) model.encoder = currentEncoderName(was.kind, model.encoder);
  const encoder = model.encoder ?? was.model.encoder;
  if (model.init === INIT_IMAGENET) { if (hasImagenet(encoder)) model.init = imagenetPath(encoder); else delete model.init; }
  if (model.init === INIT_NONE && was.model.init === undefined) delete model.init;
  if (model.inputNorm === 'auto') delete model.inputNorm;
  return { ...out, model } as ConfigPatch;
}

/**
 * Settings a new run may not start with although a saved run's configuration may hold them (so
 * they are refused here, not by the schema that also loads saved runs).
 */
export function checkNewRun(c: Config): void {
  const s = c.selfTraining;
  if (selfTrains(c) && s.classPercentile === 0 && s.threshold >= 1) {
    throw new UserError('Invalid configuration: selfTraining.threshold 1 with one threshold: a pixel counts when its max probability exceeds it, so no target pixel would ever carry weight.', 'Use a threshold below 1 (DACS: 0.968), or per-class thresholds (selfTraining.classPercentile).');
  }
}

/** Sets a dotted key ("weights.z") from a CLI string; numbers, booleans and JSON are parsed. */
export function setPath(patch: Record<string, unknown>, key: string, raw: string): void {
  let value: unknown = raw;
  try { value = JSON.parse(raw); } catch { /* a plain string */ }
  const parts = key.split('.');
  let o = patch;
  for (const p of parts.slice(0, -1)) {
    if (!isObject(o[p])) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1]] = value;
}

/** What a method decides in a built configuration (presets set only these): --from RUN --method M replaces them whole. */
export function methodKeys(c: Config): ConfigPatch {
  return { method: c.method, weights: c.weights, idDomains: c.idDomains, untieTargetEncoder: c.untieTargetEncoder, pretrainSteps: c.pretrainSteps };
}

/** A method's preset for a task kind (segmentation's versions where 5.3 differs). */
export function methodPreset(kind: Config['kind'], method: string): ConfigPatch {
  if (!METHODS[method]) throw new UserError(`Unknown method "${method}".`, `Use one of: ${Object.keys(METHODS).join(', ')}.`);
  return kind === 'segment' ? merge(METHODS[method], SEGMENT_METHODS[method]) : METHODS[method];
}

/** task base + method preset + overrides, validated. */
export function buildConfig(task: string, method: string, overrides: ConfigPatch = {}): Config {
  if (!TASKS[task]) throw new UserError(`Unknown task "${task}".`, `Use one of: ${Object.keys(TASKS).join(', ')}.`);
  const { base, ...taskPatch } = TASKS[task];
  const b = base ?? DIGITS_BASE;
  const preset = methodPreset(b.kind, method);
  let cfg = resolveImagenet(merge(merge(merge({ ...b, task, method } as unknown, taskPatch), preset), overrides) as Config, overrides.model?.init !== undefined);
  const pretrained = cfg.model.init !== undefined && cfg.model.init !== INIT_NONE;
  if (cfg.model.inputNorm === 'auto') {
    const encoder = currentEncoderName(cfg.kind, cfg.model.encoder);
    const norm = !pretrained ? 'none' : encoderEntry(encoder)?.pretrainedNorm ?? 'none';
    cfg = { ...cfg, model: { ...cfg.model, inputNorm: norm } };
  }
  // ADDA's default split of the budget: half source pre-training, half adaptation.
  if (cfg.pretrainSteps === -1) cfg = { ...cfg, pretrainSteps: Math.floor(cfg.steps / 2) };
  // A task's smaller rate for f keeps pretrained weights near their initialisation (5.2); an encoder
  // trained from scratch (no --init) gets the full rate unless the user set the scale.
  if (!pretrained && b.optim.lrScale && overrides.optim?.lrScale === undefined) {
    const { lrScale: _drop, ...optim } = cfg.optim;
    cfg = { ...cfg, optim };
  }
  return validateConfig(cfg);
}

/**
 * `init: 'imagenet'` -> the path of the encoder's Keras Applications file in the weights cache
 * (installed or not: a missing file fails when the run starts, naming i2i weights). An encoder
 * Keras publishes no weights for trains from scratch by default, and refuses an explicit 'imagenet'.
 */
function resolveImagenet(cfg: Config, explicit: boolean): Config {
  if (cfg.model.init !== INIT_IMAGENET) return cfg;
  const encoder = cfg.model.encoder;
  if (hasImagenet(encoder)) return { ...cfg, model: { ...cfg.model, init: imagenetPath(encoder) } };
  if (explicit) throw new UserError(`--init imagenet: Keras publishes no ImageNet weights for the ${encoder} encoder.`, 'Use --encoder densenet121 or resnet50, pass --init FILE, or --init none.');
  const { init: _drop, ...model } = cfg.model;
  return { ...cfg, model };
}

export function validateConfig(raw: unknown): Config {
  const r = ConfigSchema.safeParse(raw);
  if (r.success && r.data.kind === 'segment' && r.data.data.imageSize % 8 !== 0) {
    throw new UserError(`Invalid configuration: data.imageSize ${r.data.data.imageSize} is not a multiple of 8 (the encoder's output stride).`, 'Use a crop such as 256 or 96.');
  }
  if (!r.success) {
    const first = r.error.issues[0];
    throw new UserError(`Invalid configuration: ${first.path.join('.') || '(root)'}: ${first.message}.`, 'Fix that key (see README, "Configuration").');
  }
  const c = r.data;
  const w = c.weights;
  if (c.kind === 'segment' && c.model.featureCritic === 'linear') {
    throw new UserError('Invalid configuration: model.featureCritic linear flattens a fixed-size feature map; segmentation frames have any size.', 'Use model.featureCritic=conv1x1 (or auto) for segmentation.');
  }
  if (c.kind === 'segment' && c.model.decoderWidths.length !== 3) {
    throw new UserError(`Invalid configuration: model.decoderWidths has ${c.model.decoderWidths.length} widths; the segmentation decoders (output stride 8) take 3.`, 'Pass three widths, e.g. --set model.decoderWidths=[512,256,128].');
  }
  // L_trc classifies the translations g_y(f(x)): without a term that trains g_y they are a random
  // decoder's output, and the term would train h on noise.
  if (w.trc > 0 && !trainsGy(c)) {
    throw new UserError('Invalid configuration: weights.trc > 0, but no term trains the decoder g_y that makes the translations L_trc classifies.',
      'Add weights.tr or weights.cyc (or weights.id with the target in idDomains), or set weights.trc=0.');
  }
  if (selfTrains(c) && c.untieTargetEncoder) {
    throw new UserError('Invalid configuration: self-training (weights.st, weights.mic) trains the shared encoder f; ADDA adapts an untied f_t with L_z only.', 'Use --method self-train or full+st, or set weights.st=0 and weights.mic=0.');
  }
  if (w.st > 0 && c.selfTraining.mixSource === 'translated' && !trainsGy(c)) {
    throw new UserError('Invalid configuration: selfTraining.mixSource translated pastes g_y(f(x)), but no term trains the decoder g_y.',
      'Add weights.tr or weights.cyc (e.g. --method full+st), or set selfTraining.mixSource=source (or auto).');
  }
  if (w.kd > 0 && !c.distill.teacher) {
    throw new UserError('Invalid configuration: weights.kd distils a teacher run, and distill.teacher names none.', 'Use i2i distill --teacher RUN (or --set distill.teacher=RUN).');
  }
  if (w.kd > 0 && c.untieTargetEncoder) {
    throw new UserError('Invalid configuration: distillation (weights.kd) trains the shared encoder f; ADDA adapts an untied f_t with L_z only.', 'Use i2i distill, or set weights.kd=0.');
  }
  if (c.data.rcsTemperature > 0 && c.kind !== 'segment') {
    throw new UserError('Invalid configuration: data.rcsTemperature samples source crops by their classes\' pixels; classification images have one label.', 'Set data.rcsTemperature=0.');
  }
  const office = [c.data.source, c.data.target].filter(isOfficeDomain);
  if (office.length === 1 || (office.length === 2 && c.kind !== 'classify')) {
    throw new UserError(`Invalid configuration: data.source ${c.data.source} and data.target ${c.data.target}: Office-31 domains adapt to each other only, as classifiers.`,
      'Use one of the office-<source>-<target> tasks (amazon, webcam, dslr).');
  }
  if (office.length === 2 && c.data.channels !== 3) {
    throw new UserError(`Invalid configuration: Office-31 images are RGB, data.channels is ${c.data.channels}.`, 'Set data.channels=3.');
  }
  const classifier = c.model.classifier;
  if ((classifier === 'pixel') !== (c.kind === 'segment') && classifier !== 'auto') {
    throw new UserError(`Invalid configuration: model.classifier ${classifier} does not suit a ${c.kind} task.`,
      c.kind === 'segment' ? 'Use model.classifier=pixel (or auto).' : 'Use model.classifier=flatten or gap (or auto).');
  }
  if ((c.model.inputNorm === 'caffe' || c.model.inputNorm === 'torch') && c.data.channels !== 3) {
    throw new UserError(`Invalid configuration: model.inputNorm ${c.model.inputNorm} is ImageNet's RGB normalisation, and this task's images have ${c.data.channels} channel.`,
      'Set model.inputNorm=none (digits ImageNet weights do not exist; --init suits the 3-channel segmentation encoders).');
  }
  return c;
}

/** Whether a term trains g_y, the decoder whose translations L_trc classifies and self-training may paste. */
export function trainsGy(c: Config): boolean {
  const w = c.weights;
  return w.tr + w.cyc > 0 || (w.id > 0 && c.idDomains.includes('target'));
}
