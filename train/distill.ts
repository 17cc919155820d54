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
import { upsampleBilinear } from '../core/upsample';
import { disposeCheckpoint, readCheckpoint, readCheckpointMeta } from './checkpoint';
import * as path from 'node:path';
import { merge, type Config, type ConfigPatch } from './config';
import type { TrainOptions } from './trainer';
import { I2IModel } from './i2i';
import { restoreModel } from './state';

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

/** A trained run as a frozen teacher: its target encoder and classifier, in evaluation mode. */
export class DistillTeacher {
  private constructor(readonly model: I2IModel, readonly run: string, readonly step: number) {}

  /** A live model as the teacher (tests; `run` names it in messages). */
  static of(model: I2IModel, run = '(in memory)'): DistillTeacher {
    return new DistillTeacher(model, run, 0);
  }

  /** Reads `run`'s last checkpoint; its task kind and classes must be the student's. */
  static load(run: string, student: Config, numClasses: number): DistillTeacher {
    const meta = readCheckpointMeta(run);
    if (meta.config.kind !== student.kind || meta.classes.length !== numClasses) {
      throw new UserError(`The teacher ${run} is a ${meta.config.kind} run with ${meta.classes.length} classes; the student is a ${student.kind} task with ${numClasses}.`,
        'Pass a --teacher trained on the same task (e.g. a gta5-cityscapes or synth-drive run for a segmenter).');
    }
    // Only f (or ADDA's f_t) and h are needed; the teacher's own decoders, critics and EMA teacher
    // are built and restored with it (restoreModel wants every network), then left idle.
    const model = new I2IModel(meta.config, numClasses);
    const ckpt = readCheckpoint(run);
    try {
      restoreModel(model, ckpt, { optimizer: false });
    } catch (e) {
      model.dispose();
      throw e;
    } finally {
      disposeCheckpoint(ckpt);
    }
    return new DistillTeacher(model, run, meta.step);
  }

  /** The teacher's logits on target images (running statistics), per pixel upsampled to `outHW`. */
  logits(images: tf.Tensor4D, outHW?: [number, number]): tf.Tensor {
    return tf.tidy(() => {
      const z = this.model.h.apply(this.model.targetEncoder().apply(images, 'eval'), 'eval');
      return outHW && z.rank === 4 ? upsampleBilinear(z as tf.Tensor4D, outHW) : z;
    });
  }

  /** What a student's manifest records of its teacher. */
  describe(): { run: string; step: number; task: string; method: string; encoder: string } {
    const c = this.model.config;
    return { run: this.run, step: this.step, task: c.task, method: c.method, encoder: c.model.encoder };
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * i2i distill's training options: the 'distill' preset on the teacher's task, the student encoder
 * from `overrides`, and the teacher's data (folders and sampling: scale, crop, flips) where the user
 * names none: the student learns on the frames, at the scale, the teacher was adapted to.
 */
export function distillOptions(o: { teacher?: string; temperature?: string; out: string; force?: boolean; overrides: ConfigPatch }): TrainOptions {
  if (!o.teacher) throw new UserError('distill needs --teacher RUN, the trained run to distil.', 'For example: i2i distill --teacher runs/g2c --out runs/g2c-student');
  const teacher = path.resolve(o.teacher);
  const t = readCheckpointMeta(teacher).config;
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
