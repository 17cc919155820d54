import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { compareRuns, TOLERANCES, type RunResult } from '../../train/doctor';

const BIN = path.resolve(__dirname, '../../bin/i2i.js');

describe('i2i doctor', function () {
  this.timeout(180000);

  it('through the bin: environment, a full-method run on the chosen backend and on cpu, every check PASS, exit code 0', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'doctor'], { cwd: path.resolve(__dirname, '../..') }, (err, stdout, stderr) =>
        resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stdout, stderr }));
    });
    assert.equal(code, 0, stdout + stderr);
    assert.match(stdout, /^backend +(wasm|cpu|node|node-gpu) \(tfjs backend "\w+"\): /m);
    assert.match(stdout, /^CUDA +tfjs-node-gpu 4\.22 runs libtensorflow 2\.9\.1, built for CUDA 11\.2 and cuDNN 8\.1/m);
    assert.match(stdout, /libcudart\.so\.11\.0: (found|not found)/);
    assert.match(stdout, /^GPU +(GPU 0: .+compute capability|no NVIDIA GPU visible)/m);
    assert.match(stdout, /^method +synth-drive full \+ L_z \+ L_cyc \(c=1 id=0\.1 z=0\.1 tr=0\.02 cyc=0\.1 trc=0\.1\), densenet-small/m);
    assert.match(stdout, /^run +cpu \(reference\): [\d.]+ steps\/s \(steps 2-3\), peak tfjs memory [\d.]+ MB \(step 1\), process RSS [\d.]+ MB/m);
    if (!/^compare +the chosen backend is the reference/m.test(stdout)) {
      for (const item of ['step 1 \\|d L_G / d f\\|', 'step 1 \\|d L_cyc / d f\\|', 'step 1 c ', 'step 1 cyc', 'step 1 trc', 'step 1 z ', 'step 1 gp', 'step 3 cyc', 'step 3 D_x']) {
        assert.match(stdout, new RegExp(`^PASS +${item}`, 'm'));
      }
      assert.doesNotMatch(stdout, /^FAIL/m);
      assert.match(stdout, /^result +PASS: \d+ checks agree with the reference/m);
    }
  });

  describe('compareRuns', () => {
    const run = (o: Partial<RunResult> = {}): RunResult => ({
      backend: 'x', gradNorm: 10, stepsPerSec: 1, peakBytes: 0, rssPeak: 0,
      losses: [{ c: 3.2, tr: -1.4, gp: 0.41 }, { c: 3.1, tr: -1.3, gp: 0.54 }], ...o,
    });

    it('agreeing runs pass every item', () => {
      const checks = compareRuns(run(), run());
      assert.equal(checks.length, 7);
      assert.ok(checks.every((c) => c.pass));
    });

    it('fails the items a perturbed backend gets wrong, and only those', () => {
      const bad = run({ gradNorm: 10 * (1 + 3 * TOLERANCES.gradNorm), losses: [{ c: 3.2 * (1 + 2e-3), tr: -1.4, gp: 0.41 }, { c: 3.1, tr: -1.3 * (1 + 2e-3), gp: 0.54 }] });
      const failed = compareRuns(bad, run()).filter((c) => !c.pass).map((c) => c.item);
      // 2e-3 fails step 1 (rtol 1e-3) but not step 2 (rtol 1e-2).
      assert.deepEqual(failed, ['step 1 |d L_G / d f|', 'step 1 c']);
    });

    it("L_cyc's gradient norm is its own item, at the gradient-norm tolerance", () => {
      const ref = run({ cycGradNorm: 30 });
      assert.deepEqual(compareRuns(run({ cycGradNorm: 30 * (1 + 5e-4) }), ref).filter((c) => !c.pass), []);
      const failed = compareRuns(run({ cycGradNorm: 30 * (1 + 2e-3) }), ref).filter((c) => !c.pass).map((c) => c.item);
      assert.deepEqual(failed, ['step 1 |d L_cyc / d f|']);
      assert.deepEqual(compareRuns(run(), ref).filter((c) => !c.pass).map((c) => c.item), ['step 1 |d L_cyc / d f|']);
    });

    it("after step 1 the WGAN critics' scores drift at float noise: laterCritics for them (tr, gp), laterSteps for the rest", () => {
      const bad = (c: number, tr: number, gp: number) => run({ losses: [{ c: 3.2, tr: -1.4, gp: 0.41 }, { c: 3.1 * c, tr: -1.3 * tr, gp: 0.54 * gp }] });
      assert.deepEqual(compareRuns(bad(1, 1.09, 1.09), run()).filter((c) => !c.pass), []);
      assert.deepEqual(compareRuns(bad(1.02, 1.3, 1.3), run()).filter((c) => !c.pass).map((c) => c.item), ['step 2 c', 'step 2 tr', 'step 2 gp']);
    });

    it('a missing or non-finite value fails', () => {
      const failed = compareRuns(run({ losses: [{ c: NaN, tr: -1.4 }] }), run()).filter((c) => !c.pass).map((c) => c.item);
      assert.deepEqual(failed, ['step 1 c', 'step 1 gp', 'step 2 c', 'step 2 tr', 'step 2 gp']);
    });
  });
});
