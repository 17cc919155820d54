/**
 * Benchmark (not a test): MNIST -> optdigits target accuracy of source-only, revgrad, adda and full
 * with the same step budget and seeds, as one table. Each run is a child `i2i train` process; two
 * run at once to use both cores (wasm runs one thread per process).
 *
 *   npm run bench:digits -- [--steps N] [--seeds 0,1,2] [--methods a,b] [--parallel 2] [--set k=v ...] [--reuse]
 *
 * --reuse keeps a run already in --out whose checkpoint reached --steps with the configuration this
 * benchmark would train (its logged training time is reported), so a table can be completed
 * without retraining.
 *
 * A row `<method>+adabn` is that method's run (trained once, shared with its own row) evaluated after
 * `i2i eval --bn-frames N`: its batch-norm statistics re-estimated on N unlabelled target training
 * images (AdaBN, Li et al. 2016; optdigits has one set, so these are the images every method
 * trained on unlabelled). `--methods source-only,source-only+adabn --reuse` adds the row to a table.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigSchema } from '../train/config';
import { OBJECTIVE_VERSION } from '../train/i2i';
import { configOf, runI2i } from './run-i2i';

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '600' },
    seeds: { type: 'string', default: '0,1,2' },
    methods: { type: 'string', default: 'source-only,revgrad,adda,full,source-only+adabn' },
    /** Unlabelled target images the +adabn rows re-estimate batch-norm statistics on (all 1,797 of optdigits by default). */
    'bn-frames': { type: 'string', default: '2000' },
    parallel: { type: 'string', default: '2' },
    out: { type: 'string', default: 'runs/bench-digits' },
    'target-root': { type: 'string', default: path.resolve(__dirname, '../../shared/data/optdigits') },
    set: { type: 'string', multiple: true, default: [] },
    reuse: { type: 'boolean', default: false },
  },
});

// CPU-sized networks for this benchmark (the paper's widths are the library default), and a schedule
// for its short budget: 2.5x the paper's rate, decayed linearly to zero over the second half
// (CycleGAN's schedule), so that the last checkpoint is not one point of a swinging curve. The encoder
// is a small DenseNet, the paper's DenseNet option at CPU size (section 4.1: it raised every method there); `--set
// model.encoder=lenet` gives the modified-LeNet table. See README.
const BENCH_SET = ['batchSize=32', 'model.encoder=densenet-digits', 'model.decoderWidths=[128,64,32]', 'model.imageCriticWidths=[32,64,128]',
  'optim.lr=5e-4', 'criticOptim.lr=5e-4', 'lrDecayFrom=0.5', 'logEvery=100', 'evalEvery=100', 'checkpointEvery=500'];
/** Evaluations averaged into the "last evaluations" column: one step's accuracy swings by several points. */
const LAST_EVALS = 3;

const methods = values.methods!.split(',');
const seeds = values.seeds!.split(',').map(Number);


/** Whether a saved run's configuration is the one this benchmark would train (method, seed, weights, networks, optimiser). */
function sameTraining(saved: Record<string, unknown>, method: string, seed: number): boolean {
  const want = configOf('mnist-optdigits', method, [`seed=${seed}`, `steps=${values.steps}`, ...BENCH_SET, ...values.set!]) as unknown as Record<string, unknown>;
  // Parsed, so that a run saved before a key existed compares with that key's default.
  const had = ConfigSchema.safeParse(saved);
  if (!had.success) return false;
  const got = had.data as unknown as Record<string, unknown>;
  return ['method', 'seed', 'steps', 'batchSize', 'weights', 'model', 'optim', 'criticOptim', 'lrDecayFrom', 'pretrainSteps', 'untieTargetEncoder']
    .every((k) => JSON.stringify(got[k]) === JSON.stringify(want[k]));
}

type Result = { method: string; seed: number; accuracy: number; lastEvals?: number; seconds: number; reused: boolean; bnFrames?: number };

/** Each (method, seed) trains once, whichever rows read it ('source-only+adabn' reads source-only's). */
const runs = new Map<string, Promise<Result>>();
async function one(row: string, seed: number): Promise<Result> {
  const m = /^(.+)\+adabn$/.exec(row);
  const key = `${m ? m[1] : row}-s${seed}`;
  if (!runs.has(key)) runs.set(key, trainAndEval(m ? m[1] : row, seed));
  const run = await runs.get(key)!;
  if (!m) return run;
  const out = path.resolve(values.out!, key);
  const r = JSON.parse(await runI2i(['eval', '--checkpoint', out, '--json', '--bn-frames', values['bn-frames']!]));
  process.stderr.write(`[bench] ${row} seed ${seed}: ${(r.accuracy * 100).toFixed(2)}% (batch norm re-estimated on ${r.bn.frames} target images)\n`);
  // The monitor's evaluations were of the run's own statistics: not this row's.
  return { ...run, method: row, accuracy: r.accuracy, lastEvals: undefined, reused: false, bnFrames: r.bn.frames };
}

async function trainAndEval(method: string, seed: number): Promise<Result> {
  const out = path.resolve(values.out!, `${method}-s${seed}`);
  const meta = path.join(out, 'checkpoint', 'checkpoint.json');
  const saved = values.reuse && fs.existsSync(meta) ? JSON.parse(fs.readFileSync(meta, 'utf8')) : undefined;
  // Reused only if made by this objective (train/i2i.ts OBJECTIVE_VERSION) with this configuration.
  const done = saved?.step === Number(values.steps) && (saved.objective ?? 1) === OBJECTIVE_VERSION && sameTraining(saved.config, method, seed);
  if (!done) fs.rmSync(out, { recursive: true, force: true });
  const t0 = Date.now();
  if (!done) await runI2i(['train', '--task', 'mnist-optdigits', '--method', method, '--out', out, '--steps', values.steps!, '--seed', String(seed),
    '--target-root', values['target-root']!, ...[...BENCH_SET, ...values.set!].flatMap((s) => ['--set', s])]);
  const metrics = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  // A reused run's training time: its last progress line (evaluation lines carry no time).
  const seconds = done ? metrics.filter((l) => typeof l.time === 'number').pop()!.time : (Date.now() - t0) / 1000;
  const r = JSON.parse(await runI2i(['eval', '--checkpoint', out, '--json']));
  // The monitor's last evaluations (evalEvery), if this run logged them (runs reused from before it did not).
  const evals = metrics.filter((l) => typeof l.targetAccuracy === 'number').slice(-LAST_EVALS);
  const lastEvals = evals.length === LAST_EVALS && evals[LAST_EVALS - 1].step === Number(values.steps)
    ? evals.reduce((a, l) => a + l.targetAccuracy, 0) / LAST_EVALS : undefined;
  process.stderr.write(`[bench] ${method} seed ${seed}: ${(r.accuracy * 100).toFixed(2)}% in ${seconds.toFixed(0)} s\n`);
  return { method, seed, accuracy: r.accuracy, lastEvals, seconds, reused: done };
}

async function main() {
  const jobs = methods.flatMap((m) => seeds.map((s) => [m, s] as const));
  // Longest first (full) so the two lanes finish together; rows that only re-evaluate a run last.
  const rank = (m: string) => (m.endsWith('+adabn') ? 2 : m === 'full' ? 0 : 1);
  jobs.sort((a, b) => rank(a[0]) - rank(b[0]));
  const results: Result[] = [];
  const lanes = Array.from({ length: Number(values.parallel) }, async () => {
    for (let j = jobs.shift(); j; j = jobs.shift()) results.push(await one(j[0], j[1]));
  });
  const t0 = Date.now();
  await Promise.all(lanes);
  const rows = methods.map((m) => {
    const r = results.filter((x) => x.method === m).sort((a, b) => a.seed - b.seed);
    const accs = r.map((x) => x.accuracy * 100);
    const mean = accs.reduce((a, b) => a + b, 0) / accs.length;
    const sd = Math.sqrt(accs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(accs.length - 1, 1));
    const last = r.every((x) => x.lastEvals !== undefined) ? r.map((x) => x.lastEvals! * 100) : undefined;
    return { m, mean, sd, accs, last, secs: r.reduce((a, b) => a + b.seconds, 0) / r.length };
  });
  const lines = [
    `MNIST -> optdigits (1,797 target digits, labels used only here), ${values.steps} steps, seeds ${seeds.join(',')}, ${[...BENCH_SET, ...values.set!].join(' ')}`,
    `| method | target accuracy (mean ± sd) | per seed | mean of the last ${LAST_EVALS} evaluations, per seed | train s/run |`,
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.m} | ${r.mean.toFixed(2)} ± ${r.sd.toFixed(2)} | ${r.accs.map((a) => a.toFixed(1)).join(' / ')} | ${r.last ? r.last.map((a) => a.toFixed(1)).join(' / ') : '-'} | ${r.secs.toFixed(0)} |`),
    ...(results.some((r) => r.bnFrames) ? [`+adabn rows: the run above them with batch-norm statistics re-estimated on ${results.find((r) => r.bnFrames)!.bnFrames} unlabelled target images (i2i eval --bn-frames); train s/run is that run's`] : []),
    `wall time ${((Date.now() - t0) / 60000).toFixed(1)} min` + (results.some((r) => r.reused) ? ` (${results.filter((r) => r.reused).length} of ${results.length} runs reused from earlier invocations; their train times are as logged)` : ''),
  ];
  fs.mkdirSync(values.out!, { recursive: true });
  fs.writeFileSync(path.join(values.out!, 'table.md'), lines.join('\n') + '\n');
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e) => { process.stderr.write(String(e.stack ?? e) + '\n'); process.exit(1); });
