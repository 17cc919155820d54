/**
 * Graph passes from the layers' one-node-per-op IR (train/models/ir.ts) to what the exporters write:
 * - a channel reversal (the 'caffe' input's RGB -> BGR) moves through pads, affines and depthwise
 *   convs (per channel: their weights and biases are reversed) into the input channels of the conv it feeds;
 * - an affine (batch norm with running statistics) folds into the conv or depthwise conv that is its
 *   only producer: W'[.., c] = W * scale[c], b' = b * scale + shift (a depthwise conv's channel c is
 *   its output channel c, exactly as a conv's). An affine after a concat or pool, or on a
 *   tensor something else also reads (DenseNet's pre-activation), stays a per-channel scale and shift;
 * - a ReLU fuses into the conv / affine / add / dense that is its only producer.
 * Then tensors are renumbered: the input first, then each node's output in node order.
 * The raw graph's weight arrays are modified in place.
 */
import { outChannels, type Graph, type Node, type RawGraph, type RawNode } from '../train/models/ir';

type Conv = Extract<Node, { op: 'conv2d' }>;
type Depthwise = Extract<Node, { op: 'depthwise2d' }>;
type WithAct = Extract<Node, { act: unknown }>;

const inputsOf = (n: RawNode): number[] => ('inputs' in n ? n.inputs : [n.input]);
const hasAct = (n: RawNode): n is WithAct => 'act' in n;

export function foldGraph(raw: RawGraph): Graph {
  let nodes = [...raw.nodes];
  const output = raw.output;
  // Graph outputs: nothing may fold into the producer of one (that would change what it outputs).
  const isOutput = (t: number) => t === output || t === raw.features;
  const consumers = (t: number) => nodes.filter((n) => inputsOf(n).includes(t));
  const producer = (t: number) => nodes.find((n) => n.output === t);
  /** Whether tensor `t` is read by `n` alone (and is not the graph's output). */
  const onlyFeeds = (t: number, n: RawNode) => !isOutput(t) && consumers(t).length === 1 && consumers(t)[0] === n;
  const remove = (n: RawNode) => { nodes = nodes.filter((m) => m !== n); };

  for (const r of nodes.filter((n) => n.op === 'reverse-channels')) {
    let t = r.output;
    for (;;) {
      const users = consumers(t);
      if (users.length !== 1 || isOutput(t)) throw new Error('a channel reversal must feed exactly one conv (through pads and affines)');
      const u = users[0];
      if (u.op === 'conv2d') { reverseInputChannels(u); break; }
      if (u.op === 'affine') { u.scale.reverse(); u.shift.reverse(); }
      else if (u.op === 'depthwise2d') { reverseDepthwiseChannels(u); }
      else if (u.op !== 'pad') throw new Error(`a channel reversal cannot move through ${u.op}`);
      t = u.output;
    }
    // The reversal's reader now reads its input.
    const reader = consumers(r.output)[0] as { input: number };
    reader.input = r.input;
    remove(r);
  }

  for (const a of nodes.filter((n) => n.op === 'affine')) {
    const p = producer(a.input);
    if ((p?.op !== 'conv2d' && p?.op !== 'depthwise2d') || p.act !== 'none' || !onlyFeeds(a.input, a)) continue;
    const co = outChannels(p);
    for (let i = 0; i < p.weights.length; i++) p.weights[i] *= a.scale[i % co];
    for (let c = 0; c < co; c++) p.bias[c] = p.bias[c] * a.scale[c] + a.shift[c];
    p.act = a.act;
    p.output = a.output;
    remove(a);
  }

  for (const r of nodes.filter((n) => n.op === 'relu')) {
    const p = producer(r.input);
    if (!p || !hasAct(p) || p.act !== 'none' || !onlyFeeds(r.input, r)) throw new Error(`a ReLU after ${p?.op ?? 'the input'} has no fused form (the exporters have no standalone RELU)`);
    p.act = 'relu';
    p.output = r.output;
    remove(r);
  }

  return renumber(raw, nodes.map((n) => {
    if (n.op === 'relu' || n.op === 'reverse-channels') throw new Error(`${n.op} left after the graph passes`);
    return n;
  }));
}

function renumber(raw: RawGraph, nodes: Node[]): Graph {
  const ids = new Map<number, number>([[raw.input, 0]]);
  const shapes = [raw.shapes[raw.input]];
  const id = (t: number) => {
    const i = ids.get(t);
    if (i === undefined) throw new Error(`tensor ${t} is read before it is written`);
    return i;
  };
  const out = nodes.map((n): Node => {
    const m = ('inputs' in n ? { ...n, inputs: n.inputs.map(id) } : { ...n, input: id(n.input) }) as Node;
    ids.set(n.output, shapes.length);
    shapes.push(raw.shapes[n.output]);
    return { ...m, output: ids.get(n.output)! };
  });
  return { shapes, nodes: out, input: 0, output: id(raw.output), name: raw.name, ...(raw.features === undefined ? {} : { features: id(raw.features) }) };
}

/** Reverses the input channels of a conv's weights (HWIO) in place: BGR-trained kernels read RGB. */
function reverseInputChannels(node: Conv): void {
  const [kh, kw, ci, co] = node.kernel;
  const src = Float32Array.from(node.weights);
  for (let p = 0; p < kh * kw; p++) for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) node.weights[(p * ci + i) * co + o] = src[(p * ci + (ci - 1 - i)) * co + o];
}

/** Reverses the channels of a depthwise conv ([KH, KW, C, 1]) in place: weights and bias. */
function reverseDepthwiseChannels(node: Depthwise): void {
  const c = node.kernel[2];
  for (let p = 0; p < node.kernel[0] * node.kernel[1]; p++) node.weights.subarray(p * c, (p + 1) * c).reverse();
  node.bias.reverse();
}
