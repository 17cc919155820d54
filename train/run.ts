/** Opening a finished or running training run: its checkpoint restored into a live model. */
import { disposeCheckpoint, readCheckpoint, type CheckpointMeta } from './checkpoint';
import { I2IModel } from './i2i';
import { restoreModel } from './state';

export interface OpenRun { model: I2IModel; meta: CheckpointMeta }

/**
 * The model of `runDir`'s checkpoint with its weights and running statistics (no optimiser state);
 * the checkpoint's tensors are released. The caller owns the model (dispose it).
 */
export function openRun(runDir: string): OpenRun {
  const ckpt = readCheckpoint(runDir);
  let model: I2IModel | undefined;
  try {
    model = new I2IModel(ckpt.meta.config, ckpt.meta.classes.length);
    restoreModel(model, ckpt, { optimizer: false });
    return { model, meta: ckpt.meta };
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    disposeCheckpoint(ckpt);
  }
}
