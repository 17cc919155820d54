/** `i2i doctor`: parses its flags and runs train/doctor; a failed check exits non-zero. */
import { parseArgs } from 'node:util';
import { initBackend } from '../core/backend';
import { UserError } from '../core/errors';
import { runDoctor } from '../train/doctor';

export const DOCTOR_HELP = `i2i doctor [--steps N (3)]
  GPU readiness: the backend chosen and why, the GPU (nvidia-smi), libtensorflow and the CUDA 11.2 /
  cuDNN 8.1 libraries tfjs-node-gpu loads; then N steps of the full method on tiny synthetic scenes
  on that backend and on the pure-JS cpu reference from the same seed and batches, comparing every
  loss term and the encoder's gradient norm (PASS/FAIL each), steps/s and peak memory. Exit code 2
  if a check fails.
`;

export async function cmdDoctor(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, strict: true, options: { steps: { type: 'string' } } });
  const steps = values.steps === undefined ? 3 : Number(values.steps);
  if (!(Number.isInteger(steps) && steps >= 1 && steps <= 50)) throw new UserError(`--steps must be an integer from 1 to 50, got "${values.steps}".`);
  const info = await initBackend({ quiet: true });
  const r = await runDoctor(info, { steps });
  if (!r.ok) {
    const failed = r.checks.filter((c) => !c.pass).map((c) => c.item);
    throw new UserError(`doctor: the ${info.choice} backend differs from the cpu reference in ${failed.join(', ')}.`,
      'Train on it only after finding why (a kernel, a library version); I2I_BACKEND=wasm or cpu trains correctly but slower.');
  }
}
