/**
 * Progress of long video work: a bar redrawn in place on a terminal (frames done / total, frames/s,
 * ETA); plain lines every few seconds when stderr is not a TTY (logs, CI); JSON lines for machines.
 */
import type { Progress } from './segment-video';

export type ProgressMode = 'tty' | 'lines' | 'json';

export function progressPrinter(mode: ProgressMode, write: (s: string) => void = (s) => process.stderr.write(s)): { update(p: Progress): void; done(): void } {
  let last = 0, drawn = false;
  const eta = (s: number) => (Number.isFinite(s) ? `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, '0')}` : '?');
  return {
    update(p) {
      const now = Date.now();
      const every = mode === 'tty' ? 100 : mode === 'json' ? 1000 : 5000;
      if (now - last < every && p.done < p.total) return;
      last = now;
      const name = p.file.split('/').pop();
      if (mode === 'json') write(JSON.stringify({ file: p.file, done: p.done, total: p.total, fps: Number(p.fps.toFixed(2)), eta: Math.round(p.etaSeconds) }) + '\n');
      else if (mode === 'lines') write(`[segment-video] ${name}: ${p.done}/${p.total} frames, ${p.fps.toFixed(1)} frames/s, ETA ${eta(p.etaSeconds)}\n`);
      else {
        const w = 30, filled = Math.round((w * Math.min(p.done, p.total)) / Math.max(p.total, 1));
        write(`\r${name} [${'#'.repeat(filled)}${'.'.repeat(w - filled)}] ${p.done}/${p.total} frames ${p.fps.toFixed(1)} fps ETA ${eta(p.etaSeconds)}  `);
        drawn = true;
      }
    },
    done() { if (drawn) { write('\n'); drawn = false; } },
  };
}
