/**
 * `i2i convert` through the package's bin, as a user runs it: without --input a segmenter's bundle
 * takes its frames' aspect at the training scale (issue 25: it was the square training crop, 96x96
 * for 2:1 frames), says why, and refuses to guess when no frames say the aspect.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from '../helpers';

const BIN = path.resolve(__dirname, '../../bin/i2i.js');
const i2i = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 240000 });
const ok = (args: string[]) => {
  const r = i2i(args);
  assert.equal(r.status, 0, `i2i ${args.join(' ')}: ${r.stderr}`);
  return r;
};
const inputOf = (bundle: string) => {
  const m = JSON.parse(fs.readFileSync(path.join(bundle, 'manifest.json'), 'utf8'));
  return [m.input.height, m.input.width];
};

describe('cli: i2i convert chooses a segmenter input with its frames\' aspect', function () {
  this.timeout(600000);
  const root = tmpDir();
  const src = path.join(root, 'source'), tgt = path.join(root, 'target'), run = path.join(root, 'run');
  // Small convert: fp32 only, two parity frames.
  const convert = (out: string, ...extra: string[]) => ['convert', '--checkpoint', run, '--out', path.join(root, out), '--precision', 'fp32', '--check-frames', '2', ...extra];

  before(() => {
    // 2:1 frames (64x128), a 32x32 training crop at scale 0.5: the old default was 32x32, the frames' scale is 32x64.
    ok(['synth', '--out', src, '--domain', 'source', '--count', '2', '--size', '64x128', '--seed', '1']);
    ok(['synth', '--out', tgt, '--domain', 'target', '--count', '3', '--size', '64x128', '--seed', '2']);
    ok(['train', '--task', 'synth-drive', '--method', 'source-only', '--out', run, '--steps', '1', '--batch-size', '1',
      '--source-root', src, '--target-root', tgt, '--set', 'data.imageSize=32', '--set', 'data.scale=0.5', '--set', 'model.decoderWidths=[8,8,8]']);
  });

  it('--calibrate frames set the aspect at the training scale, and the reason is printed', () => {
    const r = ok(convert('b-calib', '--calibrate', path.join(tgt, 'leftImg8bit', 'train')));
    assert.deepEqual(inputOf(path.join(root, 'b-calib')), [32, 64], 'the 2:1 frames at scale 0.5, not the square training crop');
    assert.match(r.stderr, /input 32x64 \(HxW\): 64x128 frames \(the first of --calibrate .*\) at the training scale 0\.5/);
  });

  it('frames of another aspect (3:2 portrait) give another input; sides stay multiples of 8', () => {
    const tall = path.join(root, 'tall');
    ok(['synth', '--out', tall, '--domain', 'target', '--count', '2', '--size', '96x64', '--seed', '3']);
    ok(convert('b-tall', '--calibrate', path.join(tall, 'leftImg8bit')));
    assert.deepEqual(inputOf(path.join(root, 'b-tall')), [48, 32]);
  });

  it("without --calibrate the run's own target frames say the aspect; --input still wins", () => {
    const r = ok(convert('b-run'));
    assert.deepEqual(inputOf(path.join(root, 'b-run')), [32, 64]);
    assert.match(r.stderr, /the run's target root/);
    const e = ok(convert('b-explicit', '--input', '40x40'));
    assert.deepEqual(inputOf(path.join(root, 'b-explicit')), [40, 40]);
    assert.match(e.stderr, /input 40x40 \(HxW\): --input/);
  });

  it('with no frames to read, --input is required (exit 2, nothing written)', () => {
    fs.renameSync(tgt, tgt + '-moved');
    try {
      const r = i2i(convert('b-none'));
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /needs an input size.*--input HxW/s);
      assert.ok(!fs.existsSync(path.join(root, 'b-none')));
    } finally { fs.renameSync(tgt + '-moved', tgt); }
  });

  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('i2i convert --help documents the default', () => {
    const r = ok(['convert', '--help']);
    assert.match(r.stdout, /Segmenters default to the frames' own aspect at\s+the training scale/);
  });
});
