/**
 * Backend selection. Order: tfjs-node-gpu (CUDA), tfjs-node (libtensorflow), then wasm with the
 * project's training kernels (core/wasm-kernels), then the pure-JS cpu backend.
 * `I2I_BACKEND=node-gpu|node|wasm|cpu` forces one. The same model code runs on each.
 * The only kernels registered per backend are wasm's missing or slow training kernels; a kernel
 * fixed for one backend stays broken on the others, so a wrong gradient is avoided in the model
 * code instead (core/upsample: the logits' resize). test/core/upsample.test.ts pins this.
 */
import * as tf from './tf';
import { UserError } from './errors';
import { registerWasmTrainingKernels } from './wasm-kernels';

export const BACKENDS = ['node-gpu', 'node', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export interface BackendInfo {
  choice: BackendChoice;
  /** tfjs's own backend name: tensorflow, wasm or cpu. */
  tfName: string;
  reason: string;
}

// PROD: skips tfjs's per-op NaN debug checks and its "install tfjs-node" banner; we log our own choice.
tf.env().set('PROD', true);

let current: BackendInfo | undefined;

async function tryNode(pkg: string): Promise<string | undefined> {
  try {
    // Optional dependencies: absent where libtensorflow could not be downloaded at install.
    require(pkg);
    if (!tf.engine().registryFactory['tensorflow']) return `${pkg} loaded but registered no backend`;
    await tf.setBackend('tensorflow');
    return undefined;
  } catch (e) {
    return `${pkg} unavailable (${(e as Error).message.split('\n')[0]})`;
  }
}

async function useWasm(): Promise<void> {
  require('@tensorflow/tfjs-backend-wasm');
  registerWasmTrainingKernels();
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
}

/** Picks and initialises the backend once; later calls return the same choice. */
export async function initBackend(opts: { force?: string; quiet?: boolean } = {}): Promise<BackendInfo> {
  if (current) return current;
  const forced = opts.force ?? process.env.I2I_BACKEND;
  if (forced !== undefined && forced !== '' && !(BACKENDS as readonly string[]).includes(forced)) {
    throw new UserError(`Unknown backend "${forced}".`, `Set I2I_BACKEND to one of ${BACKENDS.join(', ')}.`);
  }
  const skipped: string[] = [];
  const order: BackendChoice[] = forced ? [forced as BackendChoice] : [...BACKENDS];
  for (const choice of order) {
    if (choice === 'node-gpu' || choice === 'node') {
      const why = await tryNode(choice === 'node-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
      if (why === undefined) {
        current = { choice, tfName: 'tensorflow', reason: forced ? 'forced by I2I_BACKEND' : 'native TensorFlow found' };
        break;
      }
      skipped.push(why);
      if (forced) throw new UserError(`I2I_BACKEND=${forced} but ${why}.`, 'Install it (it needs libtensorflow) or unset I2I_BACKEND.');
    } else if (choice === 'wasm') {
      try {
        await useWasm();
        current = {
          choice, tfName: 'wasm',
          reason: forced ? 'forced by I2I_BACKEND' : `fastest trainable backend here (${skipped.join('; ')}); SIMD, gradient kernels from core/wasm-kernels`,
        };
        break;
      } catch (e) {
        skipped.push(`wasm failed (${(e as Error).message})`);
        if (forced) throw e;
      }
    } else {
      await tf.setBackend('cpu');
      current = { choice, tfName: 'cpu', reason: forced ? 'forced by I2I_BACKEND' : `fallback: ${skipped.join('; ')}` };
      break;
    }
  }
  if (!current) throw new Error('no tfjs backend could be initialised');
  if (!opts.quiet) process.stderr.write(`[i2i] backend: ${current.choice} (${current.reason})\n`);
  return current;
}

export function backendInfo(): BackendInfo | undefined {
  return current;
}
