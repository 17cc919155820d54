/**
 * An inference worker: a child process of the engine that owns one loaded model (TFLite or tfjs).
 * TFLite's infer() blocks its thread, and its binding must not run in two worker threads of one
 * process (DESIGN.md), so each worker is a process of its own; the engine's event loop never waits
 * on a frame. The worker exits when its parent goes away, so it never outlives the server.
 */
import { isUserError, UserError } from '../../core/errors';
import { openBundle, type Bundle } from '../../runtime/bundle';
import { decodeToInput, ImageError, paletteOf, palettePng } from '../../runtime/image';
import type { EncodedImage, FromWorker, ImageFailure, ToWorker } from './protocol';

let model: Bundle | undefined;
/** The bundle's class colours, for the PNG answers (one manifest per worker: a reload starts new workers). */
let palette: [number, number, number][] | undefined;
const send = (m: FromWorker) => process.send?.(m);

function fail(id: number | undefined, e: unknown): void {
  send({ type: 'error', id, message: (e as Error).message ?? String(e), user: isUserError(e) });
}

process.on('message', async (m: ToWorker) => {
  if (m.type === 'open') {
    try {
      model = await openBundle(m.dir, m.options);
      // The bundle is read again here, by each worker (and each replacement): if it changed on disk
      // since the server chose its model, this worker would run another one beside the others.
      if (model.file.file !== m.expect.file || model.file.sha256 !== m.expect.sha256) {
        const found = `${model.file.file} sha256 ${model.file.sha256.slice(0, 12)}`;
        model.dispose();
        model = undefined;
        throw new UserError(`The bundle ${m.dir} changed on disk since the server loaded it (this worker found ${found}; the server serves ${m.expect.file} sha256 ${m.expect.sha256.slice(0, 12)}).`, 'Reload the server to serve the new bundle (SIGHUP, or POST /v1/model/reload), or restore the old files.');
      }
      const { height, width, channels } = model.manifest.input;
      // Warm-up: one frame through the model before the engine calls this worker ready.
      const t0 = performance.now();
      model.segment([new Uint8Array(height * width * channels)]);
      send({ type: 'ready', file: model.file, runtime: model.runtime, maxBatch: Number.isFinite(model.maxBatch) ? model.maxBatch : 0, warmupMs: performance.now() - t0, pid: process.pid });
    } catch (e) { fail(undefined, e); }
  } else if (m.type === 'infer') {
    if (!model) return fail(m.id, new Error('infer before open'));
    try {
      const d0 = performance.now();
      const { pixels, sizes, failed } = await decodeAll(model, m.frames);
      const t0 = performance.now();
      const preds = model.segment(pixels.filter((p): p is Uint8Array => p !== null));
      const labels: (Uint8Array | null)[] = [], drift: (number | null)[] = [];
      let k = 0;
      for (const p of pixels) {
        const r = p ? preds[k++] : undefined;
        labels.push(r?.labels ?? null);
        drift.push(r?.drift ?? null);
      }
      const t1 = performance.now();
      const png = answers(model, m.frames, sizes, labels);
      // A frame answered by its PNG needs no labels back: ~20 KB crosses instead of 512 KB.
      png?.forEach((p, i) => { if (p) labels[i] = null; });
      const decoded = m.frames.some((f) => !(f instanceof Uint8Array));
      send({ type: 'result', id: m.id, labels, drift, ...(failed.some(Boolean) && { failed }), ...(decoded && { decodeMs: t0 - d0 }), inferMs: t1 - t0,
        ...(png && { png, encodeMs: performance.now() - t1 }) });
    } catch (e) { fail(m.id, e); }
  } else if (m.type === 'exit') {
    model?.dispose();
    process.disconnect?.();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));

/**
 * A decode that takes longer is refused (400), well inside the engine's hang watchdog (>= 10 s): a
 * crafted image that decodes slowly costs its sender a 400, not the worker and its other frames.
 */
const DECODE_TIMEOUT_S = 5;

/**
 * Encoded images decoded to the model's input (the bytes of the others as they are), one after
 * another: at most one full-size decode per worker in memory at once (up to --max-pixels each).
 * An image that does not decode fails alone.
 */
async function decodeAll(model: Bundle, frames: (Uint8Array | EncodedImage)[]): Promise<{ pixels: (Uint8Array | null)[]; sizes: ({ width: number; height: number } | null)[]; failed: (ImageFailure | null)[] }> {
  const failed: (ImageFailure | null)[] = frames.map(() => null);
  const pixels: (Uint8Array | null)[] = [], sizes: ({ width: number; height: number } | null)[] = [];
  for (const [i, f] of frames.entries()) {
    if (f instanceof Uint8Array) { pixels.push(f); sizes.push(null); continue; }
    try {
      const d = await decodeToInput(Buffer.from(f.encoded.buffer, f.encoded.byteOffset, f.encoded.byteLength), model.manifest.input, { maxPixels: f.maxPixels, timeoutSeconds: DECODE_TIMEOUT_S });
      pixels.push(d.pixels);
      sizes.push({ width: d.width, height: d.height });
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      failed[i] = { status: e.status, message: e.message, hint: e.hint };
      pixels.push(null);
      sizes.push(null);
    }
  }
  return { pixels, sizes, failed };
}

/**
 * The palette PNGs asked for (EncodedImage.answer 'png'), for images at the input size: there the
 * labels are the answer's pixels as they are. Elsewhere null (the caller resizes the labels to the
 * frame). Undefined when no frame asked.
 */
function answers(model: Bundle, frames: (Uint8Array | EncodedImage)[], sizes: ({ width: number; height: number } | null)[], labels: (Uint8Array | null)[]): (Uint8Array | null)[] | undefined {
  if (!frames.some((f) => !(f instanceof Uint8Array) && f.answer === 'png')) return undefined;
  const { width, height } = model.manifest.input;
  palette ??= paletteOf(model.manifest.classes);
  return frames.map((f, i) => {
    const s = sizes[i], l = labels[i];
    if (f instanceof Uint8Array || f.answer !== 'png' || !s || !l || s.width !== width || s.height !== height) return null;
    return palettePng(l, width, height, palette!);
  });
}
// Ctrl-C in a terminal signals the whole process group: the engine drains and tells each worker to
// exit when its frames are done, so the signal itself must not kill a worker mid-frame. A worker
// still exits with its parent (the channel's 'disconnect' above) and is SIGKILLed if it hangs.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
