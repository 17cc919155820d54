/** Benchmarks run each training as a child `i2i` process (two at a time: wasm uses one thread each). */
import { execFile } from 'node:child_process';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'bin', 'i2i.js');

/** Runs `i2i <args>`; resolves with its stdout, rejects with the tail of its stderr. */
export function runI2i(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`i2i ${args.join(' ')} failed:\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
  });
}
