/**
 * Checkpoints: every network's variables and buffers, both optimisers' slots and step counts, the
 * step, the samplers' positions and the validated config, in `<run>/checkpoint/` as
 * checkpoint.json + weights.bin (float32, little-endian, offsets in the json).
 *
 * Atomic: a new checkpoint is written and fsynced in a temporary folder, then swapped in by
 * rename; the previous one is kept as checkpoint.prev until the swap is done, so a kill at any
 * moment leaves one complete checkpoint that `readCheckpoint` finds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../core/tf';
import { UserError } from '../core/errors';
import { validateConfig, type Config } from './config';
import type { SamplerState } from './data/batcher';

export const CHECKPOINT_FORMAT = 'i2i-checkpoint/1';

export interface CheckpointMeta {
  format: string;
  config: Config;
  step: number;
  classes: string[];
  samplers: Record<string, SamplerState>;
  optimizerSteps: Record<string, Record<string, number>>;
  networks: string[];
  /** The objective's revision (train/i2i.ts OBJECTIVE_VERSION); absent in checkpoints of revision 1. */
  objective?: number;
  tensors: { name: string; shape: number[]; offset: number }[];
  savedAt: string;
}

export interface Checkpoint { meta: CheckpointMeta; tensors: Map<string, tf.Tensor> }

function writeFileSynced(file: string, data: Buffer | string): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function saveCheckpoint(runDir: string, meta: Omit<CheckpointMeta, 'tensors' | 'format' | 'savedAt'>, tensors: Map<string, tf.Tensor>): string {
  fs.mkdirSync(runDir, { recursive: true });
  const index: CheckpointMeta['tensors'] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const data = t.dataSync() as Float32Array;
    const buf = Buffer.from(new Float32Array(data).buffer);
    index.push({ name, shape: t.shape, offset });
    chunks.push(buf);
    offset += buf.length;
  }
  const full: CheckpointMeta = { format: CHECKPOINT_FORMAT, ...meta, tensors: index, savedAt: new Date().toISOString() };
  const final = path.join(runDir, 'checkpoint');
  const prev = path.join(runDir, 'checkpoint.prev');
  const tmp = path.join(runDir, `checkpoint.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  writeFileSynced(path.join(tmp, 'weights.bin'), Buffer.concat(chunks));
  writeFileSynced(path.join(tmp, 'checkpoint.json'), JSON.stringify(full, null, 1));
  fs.rmSync(prev, { recursive: true, force: true });
  if (fs.existsSync(final)) fs.renameSync(final, prev);
  fs.renameSync(tmp, final);
  fs.rmSync(prev, { recursive: true, force: true });
  return final;
}

/**
 * True when two run folders are the same or one holds the other: writing one would overwrite the
 * other. Symbolic links are followed (as far as the paths exist), so a link is no way round it.
 */
export function sameOrNested(a: string, b: string): boolean {
  const real = (p: string) => {
    let q = path.resolve(p);
    const rest: string[] = [];
    while (!fs.existsSync(q) && path.dirname(q) !== q) { rest.unshift(path.basename(q)); q = path.dirname(q); }
    return path.join(fs.realpathSync(q), ...rest);
  };
  const inside = (x: string, y: string) => { const r = path.relative(x, y); return r === '' || (r !== '..' && !r.startsWith(`..${path.sep}`) && !path.isAbsolute(r)); };
  const [x, y] = [real(a), real(b)];
  return inside(x, y) || inside(y, x);
}

/** The folder a run's checkpoint is read from: the run's checkpoint/, checkpoint.prev/ or the folder itself. */
export function checkpointDir(runDir: string): string {
  return locateCheckpoint(runDir).dir;
}

/** The metadata (config, step, classes) of a run's checkpoint, without reading its weights. */
export function readCheckpointMeta(runDir: string): CheckpointMeta {
  return locateCheckpoint(runDir).meta;
}

/** Reads `<run>/checkpoint` (or the previous one if a save was interrupted mid-swap). */
export function readCheckpoint(runDir: string): Checkpoint {
  const { dir, meta } = locateCheckpoint(runDir);
  const bin = fs.readFileSync(path.join(dir, 'weights.bin'));
  const tensors = new Map<string, tf.Tensor>();
  for (const { name, shape, offset } of meta.tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (offset + 4 * n > bin.length) throw new UserError(`${dir}/weights.bin is truncated (tensor ${name}).`, 'The checkpoint is damaged; retrain or use an older copy.');
    const values = new Float32Array(bin.buffer.slice(bin.byteOffset + offset, bin.byteOffset + offset + 4 * n));
    tensors.set(name, tf.tensor(values, shape, 'float32'));
  }
  return { meta, tensors };
}

function locateCheckpoint(runDir: string): { dir: string; meta: CheckpointMeta } {
  const candidates = [path.join(runDir, 'checkpoint'), path.join(runDir, 'checkpoint.prev')];
  if (fs.existsSync(path.join(runDir, 'checkpoint.json'))) candidates.unshift(runDir);
  const dir = candidates.find((d) => fs.existsSync(path.join(d, 'checkpoint.json')) && fs.existsSync(path.join(d, 'weights.bin')));
  if (!dir) throw new UserError(`No checkpoint in ${runDir}.`, 'Pass the --out folder of a training run (it holds checkpoint/checkpoint.json).');
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8'));
  } catch (e) {
    throw new UserError(`${dir}/checkpoint.json is not valid JSON (${(e as Error).message}).`, 'The checkpoint is damaged; resume from an older run or retrain.');
  }
  if (meta.format !== CHECKPOINT_FORMAT) throw new UserError(`${dir} has checkpoint format "${meta.format}", expected "${CHECKPOINT_FORMAT}".`, 'Re-create it with this version of i2i.');
  meta.config = validateConfig(meta.config);
  return { dir, meta };
}

export function disposeCheckpoint(c: Checkpoint): void {
  for (const t of c.tensors.values()) t.dispose();
}
