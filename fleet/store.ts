/**
 * Where fleet jobs keep their files (inputs, segment parts, results). A shared directory (NFS) by
 * default; an object store (S3, GCS) implements the same four calls, fetching objects into a local
 * cache, and nothing else changes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ResultStore {
  /** A local path holding object `key` (a shared directory's own file; an object store's cached copy). */
  fetch(key: string): Promise<string>;
  /** Stores the local `file` as `key`, atomically: a reader sees the old object or the whole new one. The file is consumed. */
  put(key: string, file: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Removes every object under `prefix`. */
  remove(prefix: string): Promise<void>;
  /** A local directory for files on their way in (uploads, parts being written). */
  readonly scratch: string;
}

export class DirStore implements ResultStore {
  readonly scratch: string;
  constructor(readonly root: string) {
    this.root = path.resolve(root);
    this.scratch = path.join(this.root, 'scratch');
    fs.mkdirSync(this.scratch, { recursive: true });
  }

  private file(key: string): string {
    const f = path.resolve(this.root, key);
    if (path.relative(this.root, f).startsWith('..')) throw new Error(`store key ${key} leaves the store`);
    return f;
  }

  async fetch(key: string): Promise<string> {
    const f = this.file(key);
    if (!fs.existsSync(f)) throw new Error(`${key} is not in the store ${this.root}`);
    return f;
  }

  async put(key: string, file: string): Promise<void> {
    const f = this.file(key);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    // Rename within one filesystem is atomic; across filesystems copy to a temporary name first.
    try { fs.renameSync(file, f); } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
      fs.copyFileSync(file, `${f}.tmp`); fs.renameSync(`${f}.tmp`, f); fs.rmSync(file, { force: true });
    }
  }

  async exists(key: string): Promise<boolean> { return fs.existsSync(this.file(key)); }

  async remove(prefix: string): Promise<void> { fs.rmSync(this.file(prefix), { recursive: true, force: true }); }
}
