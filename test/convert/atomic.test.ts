import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../../core/tf';
import { readManifest } from '../../core/bundle';
import { convert, type ConvertOptions } from '../../convert/convert';
import { writeSynth } from '../../train/data/synth';
import { train } from '../../train/trainer';
import { tmpDir } from '../helpers';

/** Every file under `dir` with its sha256: a folder's exact state. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()) {
    const p = path.join(dir, f);
    if (fs.statSync(p).isFile()) out[f] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  }
  return out;
}
/** Anything convert left beside --out besides the bundle itself (staging folders). */
const leftovers = (root: string) => fs.readdirSync(root).filter((e) => e.includes('i2i-convert'));

describe('convert: a bundle appears whole or not at all; long phases report progress', function () {
  this.timeout(180000);
  const root = tmpDir();
  const run = path.join(root, 'run'), tgt = path.join(root, 'target'), out = path.join(root, 'bundle');
  const base = (extra: Partial<ConvertOptions> = {}): ConvertOptions => ({ checkpoint: run, out, input: [64, 128], precisions: ['fp32', 'int8'], calibrate: tgt, calibrationFrames: 3, checkFrames: 3, progress: () => undefined, ...extra });
  let kept: Record<string, string>;

  before(async () => {
    const src = path.join(root, 'source');
    await writeSynth({ out: src, domain: 'source', count: 2, height: 64, width: 128, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 3, height: 64, width: 128, seed: 2 });
    await train({ task: 'synth-drive', method: 'source-only', out: run, progress: () => undefined,
      overrides: { steps: 1, batchSize: 1, data: { imageSize: 32, scale: 0.5, sourceRoot: src, targetRoot: tgt } } });
  });

  it('prints each phase with its frame count, and per-frame lines with elapsed time and ETA', async () => {
    const lines: string[] = [];
    const tensors = tf.memory().numTensors;
    await convert(base({ progress: (l) => lines.push(l), progressEveryMs: 0 }));
    assert.equal(tf.memory().numTensors, tensors, 'convert leaves tensors behind');
    const text = lines.join('\n');
    for (const p of [/building the inference graph: .*at 64x128/, /writing the fp32 TFLite file/, /int8 calibration: .* \(6 frames\)/, /writing the int8 TFLite file/, /parity check: .* \(3 frames\)/])
      assert.match(text, p);
    assert.match(text, /int8 calibration 3\/6: [\d.]+ s elapsed, ETA [\d.]+ s \(pass 1, frame 3\/3\)/);
    assert.match(text, /parity check 1\/3: .*elapsed, ETA .*\(reference [\d.]+ s, tflite fp32 [\d.]+ s, tflite int8 [\d.]+ s, tfjs-graph fp32 [\d.]+ s\)/);
    assert.match(text, /parity check done in/);
    assert.deepEqual(readManifest(out).models.map((f) => f.file), ['model.tflite', 'model.int8.tflite', 'tfjs-fp32/model.json']);
    assert.deepEqual(leftovers(root), []);
    // The bundle folder gets the umask's mode, as a folder made by mkdir (mkdtemp's 0700 would lock out a serving user).
    fs.mkdirSync(path.join(root, 'plain'));
    assert.equal(fs.statSync(out).mode & 0o777, fs.statSync(path.join(root, 'plain')).mode & 0o777);
    kept = snapshot(out);
  });

  it('refuses an existing --out without force, before any work, and leaves it as it was', async () => {
    await assert.rejects(convert(base()), /--out .*bundle already exists\. Pass --force/);
    assert.deepEqual(snapshot(out), kept);
    assert.deepEqual(leftovers(root), []);
  });

  it('a conversion interrupted mid-way leaves --out as it was and no staging folder', async () => {
    const stop = new AbortController();
    // Interrupted once both TFLite files are written and the parity check has begun.
    const progress = (l: string) => { if (/parity check:/.test(l)) stop.abort('SIGTERM'); };
    await assert.rejects(convert(base({ force: true, signal: stop.signal, progress })), /Convert interrupted by SIGTERM \(phase: parity check\); .*bundle was left as it was/);
    assert.deepEqual(snapshot(out), kept);
    assert.deepEqual(leftovers(root), []);
  });

  it('a conversion failing mid-way (an unreadable calibration frame) names the phase and leaves --out as it was', async () => {
    const bad = path.join(root, 'bad');
    fs.cpSync(tgt, bad, { recursive: true });
    fs.writeFileSync(path.join(bad, 'leftImg8bit', 'train', 'synth', 'zz_broken.png'), 'not a png');
    const tensors = tf.memory().numTensors;
    await assert.rejects(convert(base({ force: true, calibrate: bad, calibrationFrames: 4 })),
      /Convert failed \(phase: reading the calibration and check frames\): Cannot read calibration frame .*zz_broken\.png.*bundle was left as it was/);
    assert.equal(tf.memory().numTensors, tensors);
    assert.deepEqual(snapshot(out), kept);
    assert.deepEqual(leftovers(root), []);
  });

  it('running out of memory names the phase and what to try, and leaves --out as it was', async () => {
    // Injected where the wasm heap ran out before: the parity check at full size.
    const progress = (l: string) => { if (/parity check:/.test(l)) throw new RangeError('Array buffer allocation failed'); };
    await assert.rejects(convert(base({ force: true, progress })),
      /Convert ran out of memory \(phase: parity check, input 64x128\): Array buffer allocation failed; .*bundle was left as it was\. Try fewer --check-frames .* or a smaller --input/);
    assert.deepEqual(snapshot(out), kept);
    assert.deepEqual(leftovers(root), []);
  });

  it('with force, a complete conversion replaces --out at the end', async () => {
    const old = readManifest(out).createdAt;
    await convert(base({ force: true, precisions: ['fp32'] }));
    const m = readManifest(out);
    assert.notEqual(m.createdAt, old);
    assert.deepEqual(Object.keys(snapshot(out)).sort(), ['manifest.json', 'model.tflite', 'tfjs-fp32/model.json', 'tfjs-fp32/weights.bin']);
    assert.deepEqual(leftovers(root), []);
    kept = snapshot(out);
  });

  it('i2i convert killed with SIGTERM mid-way leaves --out as it was', async () => {
    const bin = path.resolve(__dirname, '../../bin/i2i.js');
    const child = spawn(process.execPath, [bin, 'convert', '--checkpoint', run, '--out', out, '--force', '--input', '64x128', '--precision', 'fp32,int8', '--calibrate', tgt, '--check-frames', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let signalled = false;
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      // Mid-way: the fp32 file is written and int8 calibration has begun.
      if (!signalled && /int8 calibration:/.test(err)) { signalled = true; child.kill('SIGTERM'); }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.ok(signalled, `never reached calibration:\n${err}`);
    assert.notEqual(code, 0, err);
    assert.match(err, /SIGTERM: stopping after the frame in hand/);
    assert.match(err, /Convert interrupted by SIGTERM \(phase: int8 calibration\); .*bundle was left as it was/);
    assert.deepEqual(snapshot(out), kept);
    assert.deepEqual(leftovers(root), []);
  });
});
