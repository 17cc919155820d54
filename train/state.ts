/** A model's full state as named tensors, and its restoration: what checkpoints hold. */
import * as tf from '../core/tf';
import { UserError } from '../core/errors';
import type { Checkpoint } from './checkpoint';
import type { I2IModel } from './i2i';
import { TEACHER_NETWORKS } from './self-training';

export function modelState(model: I2IModel): { tensors: Map<string, tf.Tensor>; networks: string[]; optimizerSteps: Record<string, Record<string, number>> } {
  const tensors = new Map<string, tf.Tensor>();
  for (const n of model.networks()) {
    for (const [k, v] of n.store.trainable) tensors.set(`var:${k}`, v);
    for (const [k, v] of n.store.buffers) tensors.set(`buf:${k}`, v);
  }
  const optimizerSteps: Record<string, Record<string, number>> = {};
  for (const [tag, opt] of [['optG', model.optG], ['optD', model.optD]] as const) {
    const s = opt.state();
    for (const [k, t] of s.tensors) tensors.set(`${tag}:${k}`, t);
    optimizerSteps[tag] = s.steps;
  }
  return { tensors, networks: model.networks().map((n) => n.name), optimizerSteps };
}

/**
 * Loads weights, buffers and optimiser state; every variable of the model must be present, except
 * the self-training teacher: a checkpoint without one (older, or an I2I run that --from fine-tunes)
 * leaves the teacher a copy of the restored f and h. `teacher: 'student'` makes it that copy anyway
 * (--from: the teacher starts as the run's f and h). `allowMissing` (--from) lets networks the
 * checkpoint lacks keep their initialisation; their names are returned.
 */
export function restoreModel(model: I2IModel, ckpt: Checkpoint, opts: { optimizer?: boolean; teacher?: 'checkpoint' | 'student'; allowMissing?: boolean } = {}): string[] {
  if (ckpt.meta.networks.includes('f_t')) model.untie();
  const teacher = new Set<string>(TEACHER_NETWORKS);
  const absent = model.networks().map((n) => n.name).filter((n) => !ckpt.meta.networks.includes(n));
  const missing = absent.filter((n) => !teacher.has(n));
  if (missing.length && !opts.allowMissing) throw new UserError(`The checkpoint lacks network(s) ${missing.join(', ')} that this configuration needs.`, 'Resume with the configuration the run was trained with.');
  const fromStudent = opts.teacher === 'student' || absent.some((n) => teacher.has(n));
  for (const n of model.networks()) {
    if ((fromStudent && teacher.has(n.name)) || missing.includes(n.name)) continue;
    for (const [prefix, map] of [['var', n.store.trainable], ['buf', n.store.buffers]] as const) {
      for (const [k, v] of map) {
        const t = ckpt.tensors.get(`${prefix}:${k}`);
        if (!t) throw new UserError(`The checkpoint has no tensor ${k}.`, 'It was written by a different model configuration; retrain or use the matching config.');
        if (t.shape.join() !== v.shape.join()) throw new UserError(`Checkpoint tensor ${k} has shape ${t.shape}, the model expects ${v.shape}.`, 'Use the configuration the checkpoint was trained with.');
        v.assign(t);
      }
    }
  }
  if (fromStudent) model.resetTeacher();
  if (opts.optimizer !== false) {
    for (const [tag, opt] of [['optG', model.optG], ['optD', model.optD]] as const) {
      const steps = ckpt.meta.optimizerSteps[tag] ?? {};
      const slots = new Map<string, tf.Tensor>();
      for (const [name, t] of ckpt.tensors) if (name.startsWith(`${tag}:`)) slots.set(name.slice(tag.length + 1), t);
      opt.load(slots, steps);
    }
  }
  return missing;
}
