/** Benchmarks run each training as a child `i2i` process (two at a time: wasm uses one thread each). */
import { execFile, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'bin', 'i2i.js');

// A benchmark that fails (or is stopped) takes its other runs with it: an orphaned run would keep
// writing into the folder the next invocation starts again.
const running = new Set<ChildProcess>();
process.on('exit', () => { for (const c of running) c.kill(); });

/** Runs `i2i <args>`; resolves with its stdout, rejects with the tail of its stderr. */
export function runI2i(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [CLI, ...args], { cwd: ROOT, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      running.delete(child);
      if (err) reject(new Error(`i2i ${args.join(' ')} failed:\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
    running.add(child);
  });
}
