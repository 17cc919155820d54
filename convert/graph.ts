/**
 * The inference graph of a trained encoder + classifier: only what deployment runs (f then h; no
 * decoders, no critics). Built by the registry's own networks (train/models/registry.ts), loaded
 * with the checkpoint's values and emitting themselves layer by layer; the graph passes (fold.ts)
 * then fold batch norm into the conv before it (or keep it as a per-channel scale and shift where it
 * precedes the conv, DenseNet's pre-activation) and fuse ReLUs. Dilated convs are native dilated
 * convs (the space-to-batch form is a training device). No architecture is described here.
 */
import { UserError } from '../core/errors';
import * as tf from '../core/tf';
import type { Config } from '../train/config';
import type { I2IModel } from '../train/i2i';
import { GraphBuilder, type Graph } from '../train/models/ir';
import type { Store } from '../train/models/layers';
import { createClassifier, createEncoder } from '../train/models/registry';
import { modelState } from '../train/state';
import { foldGraph } from './fold';

export type { Act, Graph, Node } from '../train/models/ir';

/** Named float32 values of the checkpoint (trainable "var:<net>/<layer>/<p>", buffers "buf:..."). */
export type Weights = Map<string, { shape: number[]; values: Float32Array }>;

/** Named tensors (a checkpoint's, or a live model's state) as Weights. */
export function tensorWeights(tensors: Map<string, tf.Tensor>): Weights {
  return new Map([...tensors].map(([k, t]) => [k, { shape: t.shape, values: t.dataSync() as Float32Array }]));
}

/** The Weights of a live model, named as its checkpoint would name them (train/state). */
export function modelWeights(m: I2IModel): Weights {
  return tensorWeights(modelState(m).tensors);
}

/** Floating-point operations of one inference (a multiply-add counts 2): convs, dense layers, affines, adds, pools, resizing. */
export function graphFlops(g: Graph): number {
  const numel = (t: number) => g.shapes[t].reduce((a, b) => a * b, 1);
  return g.nodes.reduce((sum, n) => {
    switch (n.op) {
      case 'conv2d': return sum + 2 * numel(n.output) * n.kernel[0] * n.kernel[1] * n.kernel[2];
      case 'dense': return sum + 2 * numel(n.input) * n.units;
      case 'affine': return sum + 2 * numel(n.output);
      case 'add': return sum + numel(n.output);
      case 'avgpool': case 'maxpool': return sum + numel(n.output) * n.size * n.size;
      case 'resize': return sum + 8 * numel(n.output);  // 4 taps, a multiply-add each
      default: return sum;
    }
  }, 0);
}

const missing = (key: string, net: string) => new UserError(`The checkpoint has no ${key}, which the ${net} network needs.`, 'Convert a checkpoint written by i2i train with the same configuration.');

/** Every variable and buffer of `store` from `weights`, by name; each must be there, with its shape. */
function load(store: Store, weights: Weights): void {
  for (const [kind, map] of [['var', store.trainable], ['buf', store.buffers]] as const) {
    for (const [key, v] of map) {
      const t = weights.get(`${kind}:${key}`);
      if (!t) throw missing(key, store.net);
      if (t.shape.join() !== v.shape.join()) throw new UserError(`Checkpoint tensor ${key} has shape [${t.shape}], the ${store.net} network expects [${v.shape}].`, 'Convert with the configuration the checkpoint was trained with.');
      tf.tidy(() => v.assign(tf.tensor(t.values, t.shape, 'float32')));
    }
  }
}

/** h's class count, read from its output layer's weights. */
function classCount(config: Config, weights: Weights): number {
  const [key, axis] = config.kind === 'segment' ? ['h/conv/w', 3] : ['h/fc/w', 1];
  const w = weights.get(`var:${key}`);
  if (!w) throw missing(key, 'h');
  return w.shape[axis];
}

/**
 * f then h for an input of [1, H, W, C]. Segmenters output per-pixel logits upsampled bilinearly to
 * the input size (half-pixel centres, as at evaluation); classifiers output class logits.
 */
export function inferenceGraph(config: Config, weights: Weights, inputHW: [number, number]): Graph {
  if (config.kind === 'segment' && (inputHW[0] % 8 || inputHW[1] % 8)) throw new UserError(`Input ${inputHW[0]}x${inputHW[1]} is not a multiple of 8, the encoder's output stride.`, 'Pass --input HxW with both sides multiples of 8, e.g. 512x1024.');
  if (config.kind === 'classify' && (inputHW[0] !== config.data.imageSize || inputHW[1] !== config.data.imageSize)) throw new UserError(`The classifier takes ${config.data.imageSize}x${config.data.imageSize} inputs, not ${inputHW.join('x')}.`, `Pass --input ${config.data.imageSize}x${config.data.imageSize}.`);
  // Target images go through ADDA's untied target encoder where there is one.
  const fName = [...weights.keys()].some((k) => k.startsWith('var:f_t/')) ? 'f_t' : 'f';
  // The seed only sets initial values, which the checkpoint's replace.
  const f = createEncoder(config, fName, 0);
  const stores = [f.store];
  try {
    load(f.store, weights);
    const h = createClassifier(config, 'h', f, classCount(config, weights), 0);
    stores.push(h.store);
    load(h.store, weights);
    const g = new GraphBuilder();
    const x = g.input([1, inputHW[0], inputHW[1], config.data.channels]);
    let out = h.emit(g, f.emit(g, x));
    if (config.kind === 'segment') out = g.resize(out, inputHW);
    return foldGraph(g.graph(x, out, `${config.task}/${config.method}/${config.model.encoder}`));
  } finally {
    for (const s of stores) s.dispose();
  }
}
