/**
 * The deployable bundle: the one contract between convert/ and deployment (serve/, streams/).
 * `<bundle>/manifest.json` describes everything a loader needs; model files sit beside it.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { UserError } from './errors';

export const BUNDLE_FORMAT = 'i2i-bundle/1' as const;
/**
 * Bundles whose models end at an output stride (ModelFile.outputStride) say so in their format: a
 * reader that predates the field refuses them by name instead of taking the arg-max of 1/64 of the
 * pixels. Readers accept both.
 */
export const BUNDLE_FORMAT_STRIDED = 'i2i-bundle/2' as const;
export const bundleFormat = (models: { outputStride?: number }[]): typeof BUNDLE_FORMAT | typeof BUNDLE_FORMAT_STRIDED => (models.some((f) => (f.outputStride ?? 1) > 1) ? BUNDLE_FORMAT_STRIDED : BUNDLE_FORMAT);

/**
 * Drift: how far a frame's pooled encoder features lie from the target calibration frames'. The
 * distance is the RMS over channels of (feature - mean) / std; the score maps it so that the
 * calibration frames' median distance is 0 and their 95th percentile is 1 (negative clipped to 0).
 */
export const DriftSchema = z.object({
  feature: z.string(),
  mean: z.array(z.number()),
  std: z.array(z.number()),
  median: z.number(),
  q95: z.number(),
  frames: z.number().int().positive(),
  meaning: z.string(),
});
export type DriftCalibration = z.infer<typeof DriftSchema>;

export const ModelFileSchema = z.object({
  file: z.string(),
  format: z.enum(['tflite', 'tfjs-layers', 'tfjs-graph']),
  precision: z.enum(['fp32', 'fp16', 'uint8', 'int8']),
  bytes: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** tfjs models: the weights file beside model.json (bytes above count both). */
  weights: z.object({ file: z.string(), bytes: z.number().int().positive(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }).optional(),
  /** Output: per-pixel or per-image logits (float), or an arg-maxed label map. */
  output: z.enum(['logits', 'labels']),
  /**
   * Segmenters: the output is at 1/outputStride of the input (the encoder's stride; absent = 1, the
   * input size). The runtime upsamples such logits to labels at the input size itself
   * (runtime/upsample-labels.ts: bilinear with half-pixel centres, then the arg-max). Only logits.
   */
  outputStride: z.number().int().positive().optional(),
  /** A second output: the encoder features pooled per channel (mean over H, W), that drift is scored on. */
  features: z.boolean().optional(),
  /** This file's own drift calibration (each precision computes its own features). */
  drift: DriftSchema.optional(),
});

export const ParitySchema = z.object({
  precision: z.string(),
  format: z.string(),
  bytes: z.number(),
  /** Median latency per frame on the converting machine (the model and its labels at the input size), with the threads used. */
  latencyMs: z.number(),
  threads: z.number().int(),
  /** Largest |output - tfjs output| over the check frames, relative to the tfjs output range. */
  maxRelDiffVsTfjs: z.number().optional(),
  /** Agreement of predicted labels with the tfjs model over the check frames (pixels or images). */
  labelAgreement: z.number(),
  frames: z.number().int(),
  /** Converted with --eval: the target score (evaluation.metric: mIoU or accuracy), and fp32 TFLite's minus this one's. */
  score: z.number().optional(),
  scoreDropVsFp32: z.number().optional(),
});

export const ManifestSchema = z.object({
  format: z.enum([BUNDLE_FORMAT, BUNDLE_FORMAT_STRIDED]),
  task: z.string(),
  kind: z.enum(['classify', 'segment']),
  classes: z.array(z.object({ id: z.number().int(), name: z.string(), color: z.tuple([z.number(), z.number(), z.number()]).optional() })),
  input: z.object({ height: z.number().int().positive(), width: z.number().int().positive(), channels: z.number().int().positive(), layout: z.literal('NHWC'),
    /** Pixels (0..255, RGB or gray) map to the model's input as value / 127.5 - 1. */
    normalisation: z.literal('x/127.5-1') }),
  models: z.array(ModelFileSchema).min(1),
  training: z.object({ checkpoint: z.string(), step: z.number().int(), config: z.unknown(), metrics: z.unknown().optional(),
    /** Converted with --bn-frames: batch-norm statistics re-estimated (precise BN) on this many frames of `bnSource` before export. */
    bnFrames: z.number().int().positive().optional(), bnSource: z.string().optional(),
    /** Converted with --ema-teacher: the run's self-training teacher (f_ema, h_ema), not its student. */
    weights: z.enum(['student', 'ema-teacher']).optional(),
    /** A distilled student (i2i distill): the run it learned from, as it was when converted. */
    teacher: z.object({ run: z.string(), step: z.number().int().optional(), task: z.string().optional(), method: z.string().optional(), encoder: z.string().optional(), fingerprint: z.string().optional() }).optional() }),
  /** Target frames the int8 model was calibrated on. */
  calibration: z.object({ source: z.string(), frames: z.number().int() }).optional(),
  /** Frames the parity figures were measured on. */
  check: z.object({ source: z.string(), frames: z.number().int() }).optional(),
  evaluation: z.object({ metric: z.enum(['mIoU', 'accuracy']), source: z.string(), split: z.string(), frames: z.number().int(), tfjsScore: z.number(), at: z.string() }).optional(),
  parity: z.array(ParitySchema),
  createdAt: z.string(),
});

export type Manifest = z.infer<typeof ManifestSchema>;

export function readManifest(dir: string): Manifest {
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(file)) throw new UserError(`No bundle at ${dir} (manifest.json missing).`, 'Make one with i2i convert --checkpoint <run> --out <bundle>.');
  const r = ManifestSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!r.success) throw new UserError(`${file} is not a valid ${BUNDLE_FORMAT} or ${BUNDLE_FORMAT_STRIDED} manifest: ${r.error.issues[0].path.join('.')}: ${r.error.issues[0].message}.`, 'Re-create the bundle with i2i convert.');
  return r.data;
}

export type ModelFile = Manifest['models'][number];

/** File names inside a bundle, in one place for the writer (convert) and the readers (runtime). */
export const BUNDLE_FILES = {
  manifest: 'manifest.json',
  tflite: (precision: 'fp32' | 'int8') => (precision === 'fp32' ? 'model.tflite' : 'model.int8.tflite'),
  tfjsDir: (precision: 'fp32' | 'fp16' | 'uint8') => `tfjs-${precision}`,
} as const;

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Validates and writes manifest.json last, so a bundle with a manifest is a complete bundle. */
export function writeManifest(dir: string, manifest: Manifest): void {
  ManifestSchema.parse(manifest);
  const tmp = path.join(dir, `.${BUNDLE_FILES.manifest}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(manifest, null, 2) + '\n');
  fs.renameSync(tmp, path.join(dir, BUNDLE_FILES.manifest));
}

/**
 * A model file's bytes (and its tfjs weights), checked against the manifest's sha256: a bundle
 * copied half-way or edited by hand is refused by name, never run.
 */
export function readModelFile(dir: string, entry: ModelFile): { bytes: Buffer; weights?: Buffer } {
  const read = (file: string, want: string) => {
    const p = path.join(dir, file);
    if (!fs.existsSync(p)) throw new UserError(`Bundle file ${p} is missing (the manifest lists it).`, 'Copy the whole bundle directory again, or re-create it with i2i convert.');
    const bytes = fs.readFileSync(p);
    const got = sha256(bytes);
    if (got !== want) throw new UserError(`Bundle file ${p} does not match its manifest (sha256 ${got.slice(0, 12)}..., expected ${want.slice(0, 12)}...): it is damaged or was changed.`, 'Copy the whole bundle directory again, or re-create it with i2i convert.');
    return bytes;
  };
  return { bytes: read(entry.file, entry.sha256), weights: entry.weights ? read(entry.weights.file, entry.weights.sha256) : undefined };
}

/** The bundle's identity: sha256 of its manifest, which pins every model file by its own sha256. */
export function bundleId(dir: string): string {
  return sha256(fs.readFileSync(path.join(dir, BUNDLE_FILES.manifest)));
}

/**
 * The parity table's header, rows and footnote as text cells: `i2i convert` prints them as
 * Markdown, `i2i report` as HTML.
 */
export function parityRows(m: Manifest): { head: string[]; rows: string[][]; note?: string } {
  const pct = (v: number | undefined) => (v === undefined ? '-' : (v * 100).toFixed(1));
  return {
    head: ['precision', 'format', 'size', 'latency / frame', 'threads', 'max rel. diff vs tfjs', 'label agreement', m.evaluation?.metric ?? 'score', 'drop vs fp32'],
    rows: m.parity.map((p) => [p.precision, p.format, `${(p.bytes / 2 ** 20).toFixed(2)} MiB`, `${p.latencyMs.toFixed(1)} ms`, String(p.threads),
      p.maxRelDiffVsTfjs?.toExponential(1) ?? '-', `${(p.labelAgreement * 100).toFixed(2)}%`, pct(p.score), pct(p.scoreDropVsFp32)]),
    note: m.evaluation && `${m.evaluation.metric} on ${m.evaluation.frames} labelled ${m.evaluation.split} frames of ${m.evaluation.source} at ${m.evaluation.at}; the tfjs training model scores ${pct(m.evaluation.tfjsScore)}.`,
  };
}
