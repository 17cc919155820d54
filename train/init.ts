/**
 * `--init FILE`: ImageNet initialisation of the encoder by Keras layer name, from a Keras HDF5
 * weights file (.h5, as Keras Applications publishes them; train/weights/keras-h5.ts) or a
 * Keras-format tfjs layers model.json (core/tfjs-weights.ts): two readers, one mapping
 * (train/weights/keras-names.ts). Nothing is skipped silently: encoder parameters without a weight
 * in the file, and weights in the file that no parameter takes, are listed, and either fails the run
 * unless `allowUnmatched`. Two kinds are expected and only reported: the anti-gridding context convs
 * (randomly initialised by design, 5.3) and the file's classification top (Dense layers).
 * `--init none` trains the encoder from scratch on purpose (recorded as such in the config).
 */
import * as fs from 'node:fs';
import * as tf from '../core/tf';
import { UserError } from '../core/errors';
import { readModelJson, readWeights } from '../core/tfjs-weights';
import type { Store } from './models/layers';
import { isHdf5, readKerasH5, type KerasWeights } from './weights/keras-h5';
import { KERAS_PARAM, kerasLayerNames } from './weights/keras-names';
import { IMAGENET, INIT_NONE, publishedEncoderOf } from './weights/imagenet';

export interface InitReport { loaded: number; randomByDesign: string[]; ignoredTop: string[]; unmatchedModel: string[]; unusedFile: string[] }

function readModelJsonWeights(file: string): KerasWeights {
  const topo = readModelJson(file).modelTopology as { model_config?: { config?: { layers?: { class_name: string; config: { name: string } }[] } } } | undefined;
  const layers = topo?.model_config?.config?.layers ?? [];
  const weights = new Map([...readWeights(file)].map(([k, v]) => [k.replace(/:\d+$/, ''), v]));
  return { weights, top: new Set(layers.filter((l) => l.class_name === 'Dense').map((l) => l.config.name)) };
}

/** Either reader: HDF5 by its signature or name (.h5, .hdf5), anything else is taken for a model.json. */
export function readKerasWeights(file: string): KerasWeights {
  if (!fs.existsSync(file)) {
    const enc = publishedEncoderOf(file);
    if (enc) {
      throw new UserError(`The ImageNet weights of ${enc} are not installed (${file}).`,
        `Run i2i weights ${enc} (downloads Keras' ${IMAGENET[enc].file}, about ${IMAGENET[enc].approxMB} MB), or pass --init FILE, or --init none to train the encoder from scratch.`);
    }
    throw new UserError(`--init file not found: ${file}.`, 'Pass a Keras .h5 weights file or a tfjs model.json (i2i weights densenet121 installs Keras\' DenseNet121), or --init none.');
  }
  return isHdf5(file) || /\.(h5|hdf5)$/i.test(file) ? readKerasH5(file) : readModelJsonWeights(file);
}

export function initFromKeras(store: Store, file: string, opts: { allowUnmatched: boolean; log?: (l: string) => void }): InitReport {
  const log = opts.log ?? (() => undefined);
  const report: InitReport = { loaded: 0, randomByDesign: [], ignoredTop: [], unmatchedModel: [], unusedFile: [] };
  if (file === INIT_NONE) {
    log('[init] --init none: the encoder starts from random weights');
    return report;
  }
  const { weights, top } = readKerasWeights(file);
  const used = new Set<string>();
  const params = [...store.trainable, ...store.buffers];
  const assignments: [tf.Variable, Float32Array, number[]][] = [];
  for (const [key, v] of params) {
    const rel = key.slice(store.net.length + 1);           // "<layer>/<param>"
    const cut = rel.lastIndexOf('/');
    const layer = rel.slice(0, cut), param = KERAS_PARAM[rel.slice(cut + 1)] ?? rel.slice(cut + 1);
    const names = kerasLayerNames(layer).map((l) => `${l}/${param}`);
    const kerasName = names.find((n) => weights.has(n));
    if (!kerasName) {
      if (layer.startsWith('context')) { if (!report.randomByDesign.includes(layer)) report.randomByDesign.push(layer); } else report.unmatchedModel.push(names.join(' | '));
      continue;
    }
    const w = weights.get(kerasName)!;
    if (w.shape.join() !== v.shape.join()) {
      throw new UserError(`--init: ${kerasName} has shape [${w.shape}] in ${file}, the encoder expects [${v.shape}].`, 'Use weights of the same architecture as --encoder (e.g. Keras DenseNet121 for densenet121).');
    }
    used.add(kerasName);
    assignments.push([v, w.values, w.shape]);
  }
  for (const name of weights.keys()) {
    if (used.has(name)) continue;
    const layer = name.slice(0, name.lastIndexOf('/'));
    if (top.has(layer)) { if (!report.ignoredTop.includes(layer)) report.ignoredTop.push(layer); } else report.unusedFile.push(name);
  }
  if (report.unmatchedModel.length || report.unusedFile.length) {
    const lines = [
      report.unmatchedModel.length ? `encoder weights with no match in the file (${report.unmatchedModel.length}): ${report.unmatchedModel.join(', ')}` : '',
      report.unusedFile.length ? `file weights no encoder layer takes (${report.unusedFile.length}): ${report.unusedFile.join(', ')}` : '',
    ].filter(Boolean);
    if (!opts.allowUnmatched) throw new UserError(`--init ${file} does not map completely onto the encoder:\n  ${lines.join('\n  ')}.`, 'Check --encoder against the weights, or pass --allow-unmatched to keep the unmatched layers randomly initialised.');
    for (const l of lines) log(`[init] allowed: ${l}`);
  }
  for (const [v, values, shape] of assignments) tf.tidy(() => v.assign(tf.tensor(values, shape)));
  report.loaded = assignments.length;
  log(`[init] ${report.loaded} tensors from ${file}; random by design: ${report.randomByDesign.join(', ') || 'none'}; classification top ignored: ${report.ignoredTop.join(', ') || 'none'}`);
  return report;
}
