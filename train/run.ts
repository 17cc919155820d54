/** Opening a finished or running training run: its checkpoint restored into a live model. */
import { UserError } from '../core/errors';
import { copyStore } from './models/layers';
import { disposeCheckpoint, readCheckpoint, type CheckpointMeta } from './checkpoint';
import { I2IModel } from './i2i';
import { TEACHER_NETWORKS } from './self-training';
import { restoreModel } from './state';
import { selfTrains } from './config';

export interface OpenRun { model: I2IModel; meta: CheckpointMeta }

/**
 * Which weights of a run act as its f and h: the student's (what the run trained, the default) or
 * the self-training teacher's (f_ema, h_ema: the moving average of the student, running statistics
 * included), which a run that self-trains also keeps.
 */
export type RunWeights = 'student' | 'ema-teacher';

/**
 * The model of `runDir`'s checkpoint with its weights and running statistics (no optimiser state);
 * the checkpoint's tensors are released. The caller owns the model (dispose it). With
 * `weights: 'ema-teacher'` the teacher's weights replace f and h, so everything downstream (eval,
 * convert) reads the teacher without knowing it.
 */
export function openRun(runDir: string, opts: { weights?: RunWeights } = {}): OpenRun {
  const ckpt = readCheckpoint(runDir);
  let model: I2IModel | undefined;
  try {
    if (opts.weights === 'ema-teacher') {
      if (!selfTrains(ckpt.meta.config)) {
        throw new UserError(`The run ${runDir} (method ${ckpt.meta.config.method}) keeps no EMA teacher: only a run that self-trains (weights.st or weights.mic > 0) has one.`,
          'Drop --ema-teacher to use the run\'s own weights, or pass a self-training run (e.g. --method full+st).');
      }
      if (!TEACHER_NETWORKS.every((n) => ckpt.meta.networks.includes(n))) {
        throw new UserError(`The checkpoint of ${runDir} holds no f_ema / h_ema: it was saved before self-training kept its teacher in checkpoints.`, 'Drop --ema-teacher: this checkpoint holds the student only (a teacher rebuilt from it would be a copy of the student).');
      }
      // The target side would be read from f_t, which the teacher does not average.
      if (ckpt.meta.networks.includes('f_t')) throw new UserError(`The run ${runDir} has an untied target encoder f_t (ADDA); its teacher averages f, which the target side does not use.`, 'Drop --ema-teacher.');
    }
    model = new I2IModel(ckpt.meta.config, ckpt.meta.classes.length);
    restoreModel(model, ckpt, { optimizer: false });
    if (opts.weights === 'ema-teacher') {
      const t = model.selfTraining!.teacher;
      copyStore(t.f.store, model.f.store);
      copyStore(t.h.store, model.h.store);
    }
    return { model, meta: ckpt.meta };
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    disposeCheckpoint(ckpt);
  }
}
