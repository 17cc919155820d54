/**
 * tfjs graph models of a bundle (model.json + weights.bin written by convert/tfjs-graph.ts), on
 * whichever tfjs backend core/backend chose (tfjs-node-gpu on a GPU box, wasm here). Pure tfjs has
 * no file:// loader, so the weights are read here and handed over from memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../core/tf';

/** A graph model from its model.json and the weights beside it (bytes given: already sha256-checked). */
export async function loadGraphModel(modelJson: Buffer | string, weights?: Buffer): Promise<tf.GraphModel> {
  const file = typeof modelJson === 'string' ? modelJson : undefined;
  const m = JSON.parse(file ? fs.readFileSync(file, 'utf8') : modelJson.toString('utf8')) as { modelTopology: object; weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] };
  // Every group's shards, in manifest order: the order the weight specs are laid out in.
  const data = weights ?? Buffer.concat(m.weightsManifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(path.join(path.dirname(file!), p)))));
  return tf.loadGraphModel(tf.io.fromMemory({ modelTopology: m.modelTopology, weightSpecs: m.weightsManifest.flatMap((g) => g.weights), weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer }));
}

/** The batch size a graph model's input placeholder takes: 0 when any (-1), else its fixed size. */
export function placeholderBatch(model: tf.GraphModel): number {
  const shape = model.inputs[0]?.shape;
  return !shape || shape[0] === -1 || shape[0] === null ? 0 : (shape[0] as number);
}

/**
 * Runs n frames (NHWC float, concatenated) and returns the named outputs as plain arrays. Not inside
 * tf.tidy: there the graph executor cannot release intermediates as it goes, and a 128x256
 * DenseNet frame took ~1 s instead of ~20 ms (measured); inputs and outputs are disposed here.
 */
export function runGraph(model: tf.GraphModel, x: Float32Array, shape: [number, number, number, number], outputs: string[]): (Float32Array | Int32Array)[] {
  const input = tf.tensor4d(x, shape);
  let ys: tf.Tensor[] = [];
  try {
    const r = model.execute(input, outputs);
    ys = Array.isArray(r) ? r : [r];
    return ys.map((y) => y.dataSync() as Float32Array | Int32Array);
  } finally { tf.dispose([input, ...ys]); }
}

/** Output node names a graph model has, of those asked for (old bundles have no 'features'). */
export function graphHasNode(modelJson: Buffer, node: string): boolean {
  const m = JSON.parse(modelJson.toString('utf8')) as { modelTopology: { node: { name: string }[] } };
  return m.modelTopology.node.some((n) => n.name === node);
}
