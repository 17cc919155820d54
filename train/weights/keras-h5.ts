/**
 * Reader of Keras' HDF5 weight files (Keras Applications' ImageNet files, `model.save_weights('x.h5')`
 * and whole-model `.h5` saves), as Keras 2 writes them: root attribute `layer_names` (Keras splits a
 * long one into `layer_names0`, `layer_names1`, ...), one group per layer (a name with '/' nests
 * groups), its `weight_names` attribute listing the datasets at `<layer>/<weight_name>`; a whole-model
 * save puts all of it under `model_weights/`. Names are fixed-length, NUL-padded byte strings.
 *
 * HDF5 comes from jsfive (pure JavaScript, synchronous, 1.7 MB installed) rather than h5wasm (the
 * HDF5 C library in wasm, 15 MB, ESM-only with an asynchronous start): `--init` is read inside the
 * trainer's synchronous start-up, and jsfive reads everything h5py writes with its default file
 * settings (superblock 0, v1 object headers, symbol-table groups, contiguous and chunked datasets
 * with gzip/shuffle, fixed-length string attributes), which is how Keras' files are written. Read
 * here: a 29 MB DenseNet121 file in about 2 s, 160 MB resident. Not read by jsfive: HDF5 1.10+
 * `libver='latest'` layouts (v4 chunk indexes, dense attribute storage), which Keras does not use.
 */
import * as fs from 'node:fs';
import { UserError } from '../../core/errors';

/** Weights by "<layer>/<param>" (param: kernel, bias, gamma, beta, moving_mean, moving_variance). */
export interface KerasWeights {
  weights: Map<string, { shape: number[]; values: Float32Array }>;
  /** Layers of the classification top (Dense: a 2-D kernel), expected to stay unused by an encoder. */
  top: Set<string>;
}

interface H5Node {
  attrs: Record<string, unknown>;
  keys?: string[];
  get(path: string): H5Node | null;
  shape?: number[];
  dtype?: unknown;
  value?: ArrayLike<number>;
}

// jsfive ships no type declarations; this is the part of its API used here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const jsfive = require('jsfive') as { File: new (buf: ArrayBuffer, name: string) => H5Node };

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** True when `file` starts with the HDF5 signature (at offset 0, where h5py and Keras put it). */
export function isHdf5(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(8);
    return fs.readSync(fd, head, 0, 8, 0) === 8 && head.equals(HDF5_SIGNATURE);
  } finally { fs.closeSync(fd); }
}

/** A fixed-length string attribute's items, without their NUL padding. */
function strings(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const items = typeof v === 'string' ? [v] : Array.from(v as ArrayLike<unknown>);
  return items.map((s) => (typeof s === 'string' ? s : new TextDecoder().decode(s as Uint8Array)).replace(/\0+$/, ''));
}

/** Keras' load_attributes_from_hdf5_group: `name`, or its chunks `name0`, `name1`, ... */
function listAttr(node: H5Node, name: string): string[] | undefined {
  if (name in node.attrs) return strings(node.attrs[name]);
  if (!(`${name}0` in node.attrs)) return undefined;
  const out: string[] = [];
  for (let i = 0; `${name}${i}` in node.attrs; i++) out.push(...strings(node.attrs[`${name}${i}`]));
  return out;
}

const FLOAT_DTYPE = /^[<>|=]?f[248]$/;

export function readKerasH5(file: string): KerasWeights {
  if (!fs.existsSync(file)) throw new UserError(`Weights file not found: ${file}.`, 'Pass the path of a Keras .h5 weights file (i2i weights densenet121 installs Keras\' DenseNet121).');
  const buf = fs.readFileSync(file);
  let f: H5Node;
  try {
    f = new jsfive.File(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer, file);
  } catch (e) {
    throw new UserError(`${file} is not a readable HDF5 file (${String((e as Error).message ?? e)}).`, 'Pass a Keras .h5 weights file as Keras Applications publishes them.');
  }
  let root: H5Node = f;
  let layers = listAttr(f, 'layer_names');
  if (!layers) {
    const mw = f.keys?.includes('model_weights') ? f.get('model_weights') : null;
    if (mw) { root = mw; layers = listAttr(mw, 'layer_names'); }
  }
  if (!layers) {
    throw new UserError(`${file} is HDF5 but not a Keras weights file: no layer_names attribute at its root or under model_weights/.`,
      'Pass a file written by Keras 2 save_weights / model.save (.h5), such as Keras Applications\' *_notop.h5; Keras 3 .weights.h5 files are not read.');
  }
  const out: KerasWeights = { weights: new Map(), top: new Set() };
  for (const layer of layers) {
    const g = root.get(layer);
    if (!g) throw new UserError(`${file}: layer_names lists ${layer}, which has no group.`, 'The file is damaged or not in Keras\' layout; fetch it again.');
    for (const wn of listAttr(g, 'weight_names') ?? []) {
      const d = g.get(wn);
      if (!d || !d.shape) throw new UserError(`${file}: ${layer} lists weight ${wn}, which has no dataset.`, 'The file is damaged or not in Keras\' layout; fetch it again.');
      if (!FLOAT_DTYPE.test(String(d.dtype))) throw new UserError(`${file}: ${layer}/${wn} has dtype ${String(d.dtype)}, not floating point.`, 'Pass float weights.');
      // "conv1/conv/kernel:0" -> "conv1/conv/kernel": the layer's name, then the weight's own name.
      const param = wn.slice(wn.lastIndexOf('/') + 1).replace(/:\d+$/, '');
      const shape = [...d.shape];
      out.weights.set(`${layer}/${param}`, { shape, values: Float32Array.from(d.value ?? []) });
      if (param === 'kernel' && shape.length === 2) out.top.add(layer);
    }
  }
  return out;
}
