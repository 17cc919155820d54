/**
 * Where convert writes a bundle: a staging folder beside --out (same filesystem, so the final
 * rename is atomic), renamed into place only when the manifest is written. A failing or
 * interrupted conversion removes its staging folder and leaves --out exactly as it was; a server
 * reading --out never sees a half-written bundle.
 *
 * An existing non-empty --out is refused unless `replace` (--force): replacing a bundle someone
 * may be serving should be asked for. With it, the old bundle stays whole until the new one is
 * complete, then moves aside, the new one takes its name, and the old one is deleted. Node has no
 * rename-exchange (renameat2), so between those two renames (microseconds) --out does not exist:
 * a reader then finds no bundle, never a mixed one.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../core/errors';

export interface Staging {
  /** The folder to write the bundle into. */
  dir: string;
  /** Moves the finished bundle to --out (replacing the old one where allowed). */
  commit(): void;
  /** Removes the staging folder (after a failure); --out is untouched. */
  discard(): void;
}

const STAGING = (base: string) => `.${base}.i2i-convert-`;

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; } };

/** Whether `out` holds anything (a missing or empty folder may be written). */
function occupied(out: string): boolean {
  if (!fs.existsSync(out)) return false;
  if (!fs.statSync(out).isDirectory()) throw new UserError(`--out ${out} is a file, not a bundle folder.`, 'Pass a folder path for --out.');
  return fs.readdirSync(out).length > 0;
}

export function stageBundle(out: string, replace = false): Staging {
  const parent = path.dirname(out), base = path.basename(out);
  if (occupied(out) && !replace) throw new UserError(`--out ${out} already exists.`, 'Pass --force to replace it (the old bundle stays until the new one is complete), or choose another --out.');
  fs.mkdirSync(parent, { recursive: true });
  // Staging folders of conversions that were killed outright (SIGKILL, a power cut): their pid is gone.
  for (const e of fs.readdirSync(parent)) {
    const m = e.startsWith(STAGING(base)) ? /^(\d+)-/.exec(e.slice(STAGING(base).length)) : null;
    if (m && !alive(Number(m[1]))) fs.rmSync(path.join(parent, e), { recursive: true, force: true });
  }
  // Not mkdtemp: its 0700 would follow the bundle into place; mkdir gives the umask's mode, as a plain --out had.
  const dir = path.join(parent, `${STAGING(base)}${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir);
  return {
    dir,
    commit() {
      if (!occupied(out)) {
        if (fs.existsSync(out)) fs.rmdirSync(out);  // an empty folder: nothing to keep
        fs.renameSync(dir, out);
        return;
      }
      if (!replace) throw new UserError(`--out ${out} appeared while converting; the new bundle is left in ${dir}.`, 'Move it into place yourself, or convert again with --force.');
      const old = `${dir}.old`;
      fs.renameSync(out, old);
      try { fs.renameSync(dir, out); } catch (e) { fs.renameSync(old, out); throw e; }
      fs.rmSync(old, { recursive: true, force: true });
    },
    discard() { fs.rmSync(dir, { recursive: true, force: true }); },
  };
}
