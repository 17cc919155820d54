/** `i2i eval`: rebuild a run's model from its checkpoint and measure it on the target domain. */
import { readCheckpoint, disposeCheckpoint } from './checkpoint';
import { loadDigitDomain } from './data/digits';
import { evaluateClassifier, formatConfusion, type ClassificationReport } from './eval';
import { I2IModel } from './i2i';
import { restoreModel } from './state';

export async function evaluateRun(runDir: string, opts: { targetRoot?: string; split?: 'train' | 'test' } = {}): Promise<{ report: ClassificationReport; json: object; text: string }> {
  const ckpt = readCheckpoint(runDir);
  const config = ckpt.meta.config;
  const model = new I2IModel(config, ckpt.meta.classes.length);
  try {
    restoreModel(model, ckpt, { optimizer: false });
    disposeCheckpoint(ckpt);
    const d = config.data;
    // Default: the target's held-out split where it has one (optdigits has a single file).
    const split = opts.split ?? (d.target === 'optdigits' || d.target === 'folder' ? 'train' : 'test');
    const set = await loadDigitDomain({ domain: d.target, root: opts.targetRoot ?? d.targetRoot, split, size: d.imageSize, channels: d.channels, flag: '--target-root' });
    const report = evaluateClassifier(model, set);
    const json = { task: config.task, method: config.method, step: ckpt.meta.step, target: d.target, split, n: report.n, accuracy: report.accuracy, perClass: report.perClass, confusion: report.confusion };
    const text = `${config.task} / ${config.method} at step ${ckpt.meta.step}, target ${d.target} (${split})\n${formatConfusion(report, ckpt.meta.classes)}`;
    return { report, json, text };
  } finally {
    model.dispose();
  }
}
