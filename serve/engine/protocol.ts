/** Messages between the engine (parent) and an inference worker (a forked child process). */
import type { OpenOptions } from '../../runtime/bundle';
import type { ModelFile } from '../../core/bundle';

/**
 * A JPEG/PNG/WebP as received, decoded to the model's input in the worker (runtime/image
 * decodeToInput): a 512x1024 frame crosses the process boundary as its ~100 KB of JPEG instead of
 * 1.5 MB of RGB, and the main process does no decoding.
 */
export interface EncodedImage {
  encoded: Uint8Array; maxPixels: number;
  /**
   * 'png': where the image is at the model's input size, the worker also encodes the palette PNG of
   * its labels (POST /segment's default answer) and sends it instead of the labels: ~20 KB comes
   * back ready to send, not 512 KB of labels for a post-processing thread.
   */
  answer?: 'png';
}
export interface ImageFailure { status: 400 | 413 | 415; message: string; hint: string }

export type ToWorker =
  /** `expect`: the model file the parent chose, by its sha256; a worker that finds another on disk refuses to serve it. */
  | { type: 'open'; dir: string; options: OpenOptions; expect: { file: string; sha256: string } }
  /** Frames as bytes at the bundle's input size, or encoded images the worker decodes to it. */
  | { type: 'infer'; id: number; frames: (Uint8Array | EncodedImage)[] }
  | { type: 'exit' };

export type FromWorker =
  | { type: 'ready'; file: ModelFile; runtime: string; maxBatch: number; warmupMs: number; pid: number }
  /**
   * Per frame: labels and drift, or why its image did not decode (its HTTP status and hint; the
   * other frames of the call still ran). `decodeMs`: the call's decoding (where it had encoded
   * images), before `inferMs`. `png`: the palette PNGs asked for (EncodedImage.answer; null where the
   * image was not at the input size), encoded in `encodeMs` after the model call; a frame with its
   * PNG has null labels.
   */
  | { type: 'result'; id: number; labels: (Uint8Array | null)[]; drift: (number | null)[]; failed?: (ImageFailure | null)[]; decodeMs?: number; inferMs: number; png?: (Uint8Array | null)[]; encodeMs?: number }
  | { type: 'error'; id?: number; message: string; user: boolean };
