/**
 * A run's configuration: one typed object, validated once (zod), composed from a task's base, a
 * method preset and the user's overrides (in that order, later wins), and written into every
 * checkpoint. Presets are the special cases of the paper's Table 1; they only set weights/flags.
 */
import { z } from 'zod';
import { UserError } from '../core/errors';

export const TERM_NAMES = ['c', 'id', 'z', 'tr', 'cyc', 'trc'] as const;
export type TermName = (typeof TERM_NAMES)[number];

const weight = z.number().min(0);
export const WeightsSchema = z.object({ c: weight, id: weight, z: weight, tr: weight, cyc: weight, trc: weight }).strict();

export const DIGIT_DOMAINS = ['mnist', 'usps', 'svhn', 'optdigits', 'folder'] as const;

export const ConfigSchema = z.object({
  task: z.string(),
  method: z.string(),
  seed: z.number().int().min(0),
  steps: z.number().int().positive(),
  batchSize: z.number().int().positive(),
  optim: z.object({ lr: z.number().positive(), beta1: z.number().min(0).max(1), beta2: z.number().min(0).max(1) }).strict(),
  /** Adam settings for the critics (D_z, D_x, D_y). */
  criticOptim: z.object({ lr: z.number().positive(), beta1: z.number().min(0).max(1), beta2: z.number().min(0).max(1) }).strict(),
  weights: WeightsSchema,
  /** Which domains L_id reconstructs: DRCN reconstructs the target only. */
  idDomains: z.array(z.enum(['source', 'target'])).min(1),
  gpWeight: z.number().min(0),
  /** ADDA: pre-train on the source for this many steps, then freeze f and h and train an untied
   *  target encoder f_t (initialised from f) with L_z only. */
  untieTargetEncoder: z.boolean(),
  pretrainSteps: z.number().int().min(0),
  model: z.object({
    encoder: z.enum(['lenet', 'densenet-small']),
    encoderWidths: z.array(z.number().int().positive()).length(4),
    decoderWidths: z.array(z.number().int().positive()).length(3),
    imageCriticWidths: z.array(z.number().int().positive()).length(3),
    featureCriticWidths: z.array(z.number().int().positive()).min(1),
  }).strict(),
  data: z.object({
    source: z.enum(DIGIT_DOMAINS),
    target: z.enum(DIGIT_DOMAINS),
    sourceRoot: z.string().optional(),
    targetRoot: z.string().optional(),
    sourceLimit: z.number().int().positive().optional(),
    targetLimit: z.number().int().positive().optional(),
    imageSize: z.number().int().positive(),
    channels: z.union([z.literal(1), z.literal(3)]),
  }).strict(),
  logEvery: z.number().int().positive(),
  checkpointEvery: z.number().int().positive(),
}).strict();

export type Config = z.infer<typeof ConfigSchema>;
export type Weights = z.infer<typeof WeightsSchema>;

type DeepPartial<T> = { [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type ConfigPatch = DeepPartial<Config>;

const ZERO: Weights = { c: 0, id: 0, z: 0, tr: 0, cyc: 0, trc: 0 };

/** Defaults shared by every digits task (section 5.1 networks, Adam 2e-4 / 0.5 / 0.999). */
export const DIGITS_BASE: Omit<Config, 'task' | 'method' | 'data'> & { data: Omit<Config['data'], 'source' | 'target'> } = {
  seed: 0,
  steps: 2000,
  batchSize: 64,
  optim: { lr: 2e-4, beta1: 0.5, beta2: 0.999 },
  criticOptim: { lr: 2e-4, beta1: 0.5, beta2: 0.999 },
  weights: { ...ZERO, c: 1 },
  idDomains: ['source', 'target'],
  gpWeight: 10,
  untieTargetEncoder: false,
  pretrainSteps: 0,
  model: {
    encoder: 'lenet',
    encoderWidths: [64, 64, 128, 128],
    decoderWidths: [512, 256, 128],
    imageCriticWidths: [64, 128, 256],
    featureCriticWidths: [500, 500],
  },
  data: { imageSize: 32, channels: 1 },
  logEvery: 25,
  checkpointEvery: 250,
};

export const TASKS: Record<string, ConfigPatch> = {
  'mnist-usps': { data: { source: 'mnist', target: 'usps' } },
  'usps-mnist': { data: { source: 'usps', target: 'mnist' } },
  'svhn-mnist': { data: { source: 'svhn', target: 'mnist' } },
  'mnist-optdigits': { data: { source: 'mnist', target: 'optdigits' } },
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
  full: { weights: { c: 1, id: 0.1, z: 0.1, tr: 0.02, cyc: 0.1, trc: 0 } },
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

/** task base + method preset + overrides, validated. */
export function buildConfig(task: string, method: string, overrides: ConfigPatch = {}): Config {
  if (!TASKS[task]) throw new UserError(`Unknown task "${task}".`, `Use one of: ${Object.keys(TASKS).join(', ')}.`);
  if (!METHODS[method]) throw new UserError(`Unknown method "${method}".`, `Use one of: ${Object.keys(METHODS).join(', ')}.`);
  let cfg = merge(merge(merge({ ...DIGITS_BASE, task, method } as unknown, TASKS[task]), METHODS[method]), overrides) as Config;
  // ADDA's default split of the budget: half source pre-training, half adaptation.
  if (cfg.pretrainSteps === -1) cfg = { ...cfg, pretrainSteps: Math.floor(cfg.steps / 2) };
  return validateConfig(cfg);
}

export function validateConfig(raw: unknown): Config {
  const r = ConfigSchema.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new UserError(`Invalid configuration: ${first.path.join('.') || '(root)'}: ${first.message}.`, 'Fix that key (see README, "Configuration").');
  }
  return r.data;
}
