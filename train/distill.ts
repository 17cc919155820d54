/**
 * Distillation (Hinton et al. 2015, per pixel as in structured knowledge distillation for dense
 * prediction): a network (the student, usually a real-time encoder such as fastseg) learns a
 * trained run's soft predictions on target frames, beside the source labels:
 *
 *   L_kd   kd   T^2 * mean over pixels of KL(softmax(t / T) || softmax(s / T))
 *
 * where t and s are the teacher's and the student's logits, both upsampled to the crop. T^2 keeps
 * the gradient's scale independent of the temperature. The teacher is any run the trainer reads (a
 * GPU-trained DenseNet121 in real use), rebuilt from its own configuration, restored, and run in
 * evaluation mode outside every gradient tape: nothing of it is trained or written.
 */
import * as tf from '../core/tf';
import { UserError } from '../core/errors';
import { checkpointDir, disposeCheckpoint, readCheckpoint, readCheckpointMeta, sameOrNested } from './checkpoint';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { deriveSeed } from '../core/rng';
import { merge, type Config, type ConfigPatch } from './config';
import type { TrainOptions } from './trainer';
import type { I2IModel } from './i2i';
import { evalLogits, type Encoder, type ExportNet } from './models/net';
import { createClassifier, createEncoder, currentEncoderName, encoderEntry, encodersFor } from './models/registry';

/**
 * T^2 KL(softmax(teacher/T) || softmax(student/T)), averaged over the items (pixels, or images) whose
 * weight is 1; `weights` (same shape as the logits without K) excludes items with 0, e.g. pixels
 * outside a frame. logits [..., K].
 */
export function distillationLoss(student: tf.Tensor, teacher: tf.Tensor, temperature: number, weights?: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const k = student.shape[student.shape.length - 1];
    const s = tf.logSoftmax(tf.div(tf.reshape(student, [-1, k]), temperature));
    const tLog = tf.logSoftmax(tf.div(tf.reshape(teacher, [-1, k]), temperature));
    const kl = tf.sum(tf.mul(tf.exp(tLog), tf.sub(tLog, s)), 1);
    const w = weights ? tf.reshape(weights, [-1]) : tf.onesLike(kl);
    const count = tf.maximum(tf.sum(w), tf.scalar(1));
    return tf.mul(tf.div(tf.sum(tf.mul(kl, w)), count), temperature * temperature) as tf.Scalar;
  });
}

/** The networks of a run that inference uses: its target encoder (f, or ADDA's f_t) and classifier h. */
interface InferenceNets { f: Encoder; h: ExportNet<tf.Tensor4D, tf.Tensor>; config: Config }

/** A trained run as a frozen teacher: its target encoder and classifier, in evaluation mode. */
export class DistillTeacher {
  private constructor(private readonly nets: InferenceNets, readonly run: string, readonly step: number, readonly fingerprint: string) {}

  /** A live model as the teacher (tests; `run` names it in messages). */
  static of(model: I2IModel, run = '(in memory)'): DistillTeacher {
    return new DistillTeacher({ f: model.targetEncoder(), h: model.h, config: model.config }, run, 0, '');
  }

  /**
   * Reads `run`'s last checkpoint: only the target encoder and h are built (a DenseNet121 teacher's
   * decoders and critics would be memory for nothing). Its task kind and classes must be the student's.
   */
  static load(run: string, student: Config, numClasses: number): DistillTeacher {
    const meta = readCheckpointMeta(run);
    if (meta.config.kind !== student.kind || meta.classes.length !== numClasses) {
      throw new UserError(`The teacher ${run} is a ${meta.config.kind} run with ${meta.classes.length} classes; the student is a ${student.kind} task with ${numClasses}.`,
        'Pass a --teacher trained on the same task (e.g. a gta5-cityscapes or synth-drive run for a segmenter).');
    }
    const c = meta.config;
    const fName = meta.networks.includes('f_t') ? 'f_t' : 'f';
    const f = createEncoder(c, fName, deriveSeed(c.seed, fName));
    const h = createClassifier(c, 'h', f, numClasses, deriveSeed(c.seed, 'h'));
    const ckpt = readCheckpoint(run);
    try {
      for (const store of [f.store, h.store]) {
        for (const [prefix, map] of [['var', store.trainable], ['buf', store.buffers]] as const) {
          for (const [k, v] of map) {
            const t = ckpt.tensors.get(`${prefix}:${k}`);
            if (!t || t.shape.join() !== v.shape.join()) throw new UserError(`The teacher's checkpoint in ${run} has no tensor ${k} of shape ${v.shape}.`, 'Pass the run folder of a complete training run as --teacher.');
            v.assign(t);
          }
        }
      }
    } catch (e) {
      f.store.dispose(); h.store.dispose();
      throw e;
    } finally {
      disposeCheckpoint(ckpt);
    }
    return new DistillTeacher({ f, h, config: c }, run, meta.step, teacherFingerprint(run));
  }

  /** The teacher's logits on target images (running statistics), per pixel upsampled to `outHW`. */
  logits(images: tf.Tensor4D, outHW?: [number, number]): tf.Tensor {
    return evalLogits(this.nets.f, this.nets.h, images, outHW);
  }

  /** What a student's configuration and manifest record of its teacher. */
  describe(): { run: string; step: number; task: string; method: string; encoder: string; fingerprint: string } {
    const c = this.nets.config;
    return { run: this.run, step: this.step, task: c.task, method: c.method, encoder: c.model.encoder, fingerprint: this.fingerprint };
  }

  dispose(): void {
    this.nets.f.store.dispose();
    this.nets.h.store.dispose();
  }
}

/** sha256 of a run's checkpoint weights (first 16 hex digits): which teacher a student learned from. */
export function teacherFingerprint(run: string): string {
  // The weights readCheckpoint loads, found by the same rules.
  const dir = checkpointDir(run);
  const h = createHash('sha256');
  const fd = fs.openSync(path.join(dir, 'weights.bin'), 'r');
  try {
    const buf = Buffer.alloc(1 << 24);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally { fs.closeSync(fd); }
  return h.digest('hex').slice(0, 16);
}

/**
 * The run folder a user means by `p`: the run itself, or the run of its checkpoint/ folder (the
 * weights the run reads first). The teacher is recorded and fingerprinted as a run, so that
 * --resume finds its weights the way it found them at the start. checkpoint.prev/ stays itself:
 * as a run it would name the newer checkpoint/.
 */
function runFolder(p: string): string {
  return path.basename(p) === 'checkpoint' && fs.existsSync(path.join(p, 'checkpoint.json')) ? path.dirname(p) : p;
}

/**
 * i2i distill's training options: the 'distill' preset on the teacher's task, the student encoder
 * from `overrides`, and the teacher's data (folders and sampling: scale, crop, flips) where the user
 * names none: the student learns on the frames, at the scale, the teacher was adapted to.
 */
export function distillOptions(o: { teacher?: string; temperature?: string; out: string; force?: boolean; overrides: ConfigPatch }): TrainOptions {
  if (!o.teacher) throw new UserError('distill needs --teacher RUN, the trained run to distil.', 'For example: i2i distill --teacher runs/g2c --out runs/g2c-student');
  const teacher = runFolder(path.resolve(o.teacher)), out = path.resolve(o.out);
  if (sameOrNested(teacher, out)) {
    throw new UserError(`--out ${o.out} and --teacher ${o.teacher} are the same folder or one holds the other: the student's run would overwrite its teacher.`, 'Pass another --out.');
  }
  const t = readCheckpointMeta(teacher).config;
  const student = o.overrides.model?.encoder;
  const entry = student === undefined ? undefined : encoderEntry(currentEncoderName(t.kind, student));
  if (student !== undefined && !entry) {
    throw new UserError(`There is no encoder named "${student}".`, `Use --student ${encodersFor(t.kind).join(' | ')} (the teacher ${o.teacher} is a ${t.kind} run).`);
  }
  if (student !== undefined && !entry?.kinds.includes(t.kind)) {
    throw new UserError(`The teacher ${o.teacher} is a ${t.kind} run (${t.task}); the ${student} encoder does not serve ${t.kind} tasks.`, `Use --student ${encodersFor(t.kind).join(' | ')}.`);
  }
  const temperature = o.temperature === undefined ? undefined : Number(o.temperature);
  if (temperature !== undefined && !(temperature > 0)) throw new UserError(`--temperature must be a number > 0, got "${o.temperature}".`, 'For example --temperature 2.');
  // A target named on the command line replaces the teacher's (one kind of target per run).
  const given = o.overrides.data ?? {};
  const ownTarget = given.targetRoot !== undefined || given.targetVideos !== undefined || given.targetFrames !== undefined;
  const { targetRoot: _r, targetVideos: _v, targetFrames: _f, ...rest } = t.data;
  const data: ConfigPatch['data'] = ownTarget ? rest : t.data;
  const overrides = merge({ data, distill: { teacher, ...(temperature ? { temperature } : {}) } } as ConfigPatch, o.overrides);
  return { task: t.task, method: 'distill', out: o.out, force: o.force, overrides };
}
