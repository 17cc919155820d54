/** Benchmarks run each training as a child `i2i` process (two at a time: wasm uses one thread each). */
import { execFile, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { buildConfig, ConfigSchema, selfTrains, setPath, type Config, type ConfigPatch } from '../train/config';

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

/**
 * Whether a saved run (its checkpoint.json's config) self-trained with `want`'s selfTraining block,
 * or does not self-train at all: --reuse must not pass a run made under other self-training
 * settings (e.g. an earlier default) off as today's. Parsed, so that keys added since take their defaults.
 */
export function sameSelfTraining(saved: unknown, want: Config): boolean {
  const had = ConfigSchema.safeParse(saved);
  if (!had.success) return false;
  return !selfTrains(had.data) || JSON.stringify(had.data.selfTraining) === JSON.stringify(want.selfTraining);
}

/** The configuration `i2i train --task T --method M --set k=v ...` builds (data roots aside). */
export function configOf(task: string, method: string, sets: string[]): Config {
  const patch: Record<string, unknown> = {};
  for (const kv of sets) setPath(patch, kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1));
  return buildConfig(task, method, patch as ConfigPatch);
}
