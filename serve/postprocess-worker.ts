/** A post-processing thread (serve/postprocess.ts): the runtime/image functions, off the event loop. */
import { parentPort, threadId } from 'node:worker_threads';
import { blendOverlay, classFractions, palettePng, resizeLabels } from '../runtime/image';
import type { PostJob, PostResult } from './postprocess';

parentPort!.on('message', (j: PostJob) => {
  try {
    const full = resizeLabels(j.labels, j.sw, j.sh, j.dw, j.dh);
    // Fractions only where they are answered (json): a full-resolution pass saved for the other formats.
    const r: PostResult = { threadId, ...(j.format === 'json' ? { fractions: classFractions(full, j.classes) } : {}) };
    if (j.format === 'png' || j.format === 'json') r.png = palettePng(full, j.dw, j.dh, j.palette);
    // At the input size `full` is the job's own array, maybe a view into a larger clone: an owned copy moves back without copying the rest.
    if (j.format === 'labels') r.labels = full.byteOffset === 0 && full.byteLength === full.buffer.byteLength ? full : full.slice();
    if (j.frame) r.overlayRgb = blendOverlay({ data: Buffer.from(j.frame.buffer, j.frame.byteOffset, j.frame.byteLength), width: j.dw, height: j.dh, channels: 3 }, full, j.palette, j.alpha ?? 0.5);
    // Moved, not copied, where a result owns its whole ArrayBuffer (small Buffers share Node's pool,
    // which must stay in this thread).
    const own = [r.png, r.labels, r.overlayRgb].filter((b): b is Uint8Array => Boolean(b) && b!.byteOffset === 0 && b!.byteLength === b!.buffer.byteLength);
    parentPort!.postMessage(r, [...new Set(own.map((b) => b.buffer as ArrayBuffer))]);
  } catch (e) {
    parentPort!.postMessage({ error: (e as Error).message });
  }
});
