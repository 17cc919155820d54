/** Messages between the engine (parent) and an inference worker (a forked child process). */
import type { OpenOptions } from '../../runtime/bundle';
import type { ModelFile } from '../../core/bundle';

export type ToWorker =
  /** `expect`: the model file the parent chose, by its sha256; a worker that finds another on disk refuses to serve it. */
  | { type: 'open'; dir: string; options: OpenOptions; expect: { file: string; sha256: string } }
  /** Frames as bytes at the bundle's input size. */
  | { type: 'infer'; id: number; frames: Uint8Array[] }
  | { type: 'exit' };

export type FromWorker =
  | { type: 'ready'; file: ModelFile; runtime: string; maxBatch: number; warmupMs: number; pid: number }
  | { type: 'result'; id: number; labels: Uint8Array[]; drift: (number | null)[]; inferMs: number }
  | { type: 'error'; id?: number; message: string; user: boolean };
