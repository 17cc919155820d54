/**
 * `--init model.json`: ImageNet initialisation of the encoder from a Keras-format tfjs layers model,
 * by layer name (our encoders use Keras' layer names). Nothing is skipped silently: encoder
 * parameters without a weight in the file, and weights in the file that no parameter takes, are
 * listed, and either fails the run unless `allowUnmatched`. Two kinds are expected and only
 * reported: the anti-gridding context convs (randomly initialised by design, 5.3) and the file's
 * classification top (Dense layers).
 */
import * as tf from '../core/tf';
import { UserError } from '../core/errors';
import { readModelJson, readWeights } from '../core/tfjs-weights';
import type { Store } from './models/layers';

/** Our parameter suffix -> Keras weight suffix. */
const KERAS_PARAM: Record<string, string> = { w: 'kernel', b: 'bias', gamma: 'gamma', beta: 'beta', mean: 'moving_mean', var: 'moving_variance' };

export interface InitReport { loaded: number; randomByDesign: string[]; ignoredTop: string[]; unmatchedModel: string[]; unusedFile: string[] }

function topLayers(modelJson: string): Set<string> {
  const topo = readModelJson(modelJson).modelTopology as { model_config?: { config?: { layers?: { class_name: string; config: { name: string } }[] } } } | undefined;
  const layers = topo?.model_config?.config?.layers ?? [];
  return new Set(layers.filter((l) => l.class_name === 'Dense').map((l) => l.config.name));
}

export function initFromKeras(store: Store, modelJson: string, opts: { allowUnmatched: boolean; log?: (l: string) => void }): InitReport {
  const file = readWeights(modelJson);
  const byName = new Map([...file].map(([k, v]) => [k.replace(/:0$/, ''), v]));
  const used = new Set<string>();
  const report: InitReport = { loaded: 0, randomByDesign: [], ignoredTop: [], unmatchedModel: [], unusedFile: [] };
  const params = [...store.trainable, ...store.buffers];
  const assignments: [tf.Variable, Float32Array, number[]][] = [];
  for (const [key, v] of params) {
    const rel = key.slice(store.net.length + 1);           // "<layer>/<param>"
    const cut = rel.lastIndexOf('/');
    const layer = rel.slice(0, cut), param = rel.slice(cut + 1);
    const kerasName = `${layer}/${KERAS_PARAM[param] ?? param}`;
    const w = byName.get(kerasName);
    if (!w) {
      if (layer.startsWith('context')) { if (!report.randomByDesign.includes(layer)) report.randomByDesign.push(layer); } else report.unmatchedModel.push(kerasName);
      continue;
    }
    if (w.shape.join() !== v.shape.join()) {
      throw new UserError(`--init: ${kerasName} has shape [${w.shape}] in ${modelJson}, the encoder expects [${v.shape}].`, 'Use weights of the same architecture as --encoder (e.g. Keras ResNet50 for resnet50).');
    }
    used.add(kerasName);
    assignments.push([v, w.values, w.shape]);
  }
  const top = topLayers(modelJson);
  for (const name of byName.keys()) {
    if (used.has(name)) continue;
    const layer = name.slice(0, name.lastIndexOf('/'));
    if (top.has(layer)) { if (!report.ignoredTop.includes(layer)) report.ignoredTop.push(layer); } else report.unusedFile.push(name);
  }
  const log = opts.log ?? (() => undefined);
  if (report.unmatchedModel.length || report.unusedFile.length) {
    const lines = [
      report.unmatchedModel.length ? `encoder weights with no match in the file (${report.unmatchedModel.length}): ${report.unmatchedModel.join(', ')}` : '',
      report.unusedFile.length ? `file weights no encoder layer takes (${report.unusedFile.length}): ${report.unusedFile.join(', ')}` : '',
    ].filter(Boolean);
    if (!opts.allowUnmatched) throw new UserError(`--init ${modelJson} does not map completely onto the encoder:\n  ${lines.join('\n  ')}.`, 'Check --encoder against the weights, or pass --allow-unmatched to keep the unmatched layers randomly initialised.');
    for (const l of lines) log(`[init] allowed: ${l}`);
  }
  for (const [v, values, shape] of assignments) tf.tidy(() => v.assign(tf.tensor(values, shape)));
  report.loaded = assignments.length;
  log(`[init] ${report.loaded} tensors from ${modelJson}; random by design: ${report.randomByDesign.join(', ') || 'none'}; classification top ignored: ${report.ignoredTop.join(', ') || 'none'}`);
  return report;
}
