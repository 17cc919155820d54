/**
 * Progress of convert's long phases: a line when a phase starts (what it does, over how many
 * frames), per-frame lines with the elapsed time and an ETA (at most one every `everyMs`, and always
 * the last), and a line when it ends. A DenseNet121 frame at 512x1024 takes seconds per runner, so a
 * conversion is minutes of work that must not look hung.
 */
export interface Phase {
  /** One more item done (`detail`: what it cost, e.g. per-runner times). */
  tick(detail?: string): void;
  /** The phase ended: its total time. */
  done(detail?: string): void;
  readonly name: string;
}

export type PhaseStarter = (name: string, what: string, total?: number) => Phase;

const secs = (ms: number) => (ms < 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`);

export function phases(log: (line: string) => void, everyMs = 5000, now: () => number = Date.now): PhaseStarter {
  return (name, what, total) => {
    const t0 = now();
    let done = 0, last = t0;
    log(`[convert] ${name}: ${what}${total !== undefined ? ` (${total} frame${total === 1 ? '' : 's'})` : ''}`);
    return {
      name,
      tick(detail) {
        done++;
        const t = now();
        if (t - last < everyMs && done !== total) return;
        last = t;
        const eta = total !== undefined && done < total ? `, ETA ${secs(((t - t0) / done) * (total - done))}` : '';
        log(`[convert]   ${name} ${done}${total !== undefined ? `/${total}` : ''}: ${secs(t - t0)} elapsed${eta}${detail ? ` (${detail})` : ''}`);
      },
      done(detail) {
        log(`[convert]   ${name} done in ${secs(now() - t0)}${detail ? `: ${detail}` : ''}`);
      },
    };
  };
}
