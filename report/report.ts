/**
 * `i2i report <run>`: what a person reads instead of logs, as one self-contained HTML page:
 * translations both ways (the paper's figures 4 and 6), segmentations side by side (input /
 * source-only / adapted / ground truth) where target labels exist, the per-class scores (IoU in
 * the paper's Table 4 order), loss curves per term from metrics.jsonl, and with --bundle the
 * bundle's parity table and a drift histogram of held-out target vs source frames.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../core/tf';
import { parityRows, readManifest, type Manifest } from '../core/bundle';
import { auroc } from '../core/drift';
import { median } from '../core/stats';
import { UserError } from '../core/errors';
import { CITYSCAPES_CLASSES, CITYSCAPES_PALETTE } from '../core/labels';
import { openBundle } from '../runtime/bundle';
import { decodeToInput, palettePng } from '../runtime/image';
import { readCheckpointMeta, type CheckpointMeta } from '../train/checkpoint';
import { listScenes, loadSegSample, type SegItem } from '../train/data/segmentation';
import { evaluateRun } from '../train/evaluate-run';
import { openRun } from '../train/run';
import { encodePng, translations, type RawImage } from '../train/translate';
import { esc, figure, page, pngDataUri, table, type Cell, type Section } from './html';
import { histogram, lineChart } from './svg';

export interface ReportOptions {
  /** The (adapted) run the report is about. */
  run: string;
  /** A source-only run of the same task, shown beside it. */
  baseline?: string;
  /** The converted bundle of `run`: parity table and drift histogram. */
  bundle?: string;
  out: string;
  sourceRoot?: string;
  /** Labelled target frames (Cityscapes layout, split `split`) for the segmentations and scores. */
  targetRoot?: string;
  split?: string;
  /** Frames drawn side by side (default 4) and images per translation row (default 6). */
  frames?: number;
  translations?: number;
  /** Frames per domain for the drift histogram (default 40) and for the scores (default: the whole split). */
  driftFrames?: number;
  evalLimit?: number;
  progress?: (line: string) => void;
}

export interface ReportResult {
  out: string;
  sections: string[];
  /** Target score of each run (mIoU or accuracy), by label. */
  scores: Record<string, number>;
  drift?: { target: number[]; source: number[]; auroc: number };
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const pct = (v: number) => (Number.isNaN(v) ? '-' : (v * 100).toFixed(1));


/** Two strips stacked: the originals above, their translations below. */
const stack = (a: RawImage, b: RawImage): RawImage => ({ ...a, height: a.height + b.height, pixels: Buffer.concat([a.pixels, b.pixels]) });

function summary(metas: [string, string, CheckpointMeta][]): string {
  const weights = (m: CheckpointMeta) => Object.entries(m.config.weights).filter(([, v]) => v > 0).map(([k, v]) => `λ_${k} ${v}`).join(', ');
  return table('runs-table', ['run', 'directory', 'task', 'method', 'steps', 'encoder', 'weights', 'batch', 'image'],
    metas.map(([label, dir, m]) => [label, dir, m.config.task, m.config.method, m.step, m.config.model.encoder, weights(m), m.config.batchSize, m.config.data.imageSize]));
}

async function translationSection(run: string, n: number, o: ReportOptions): Promise<string> {
  const t = await translations(run, { n, sourceRoot: o.sourceRoot, targetRoot: o.targetRoot });
  const fig4 = pngDataUri(await encodePng(stack(t.rows.x, t.rows.xToY)));
  const fig6 = pngDataUri(await encodePng(stack(t.rows.y, t.rows.yToX)));
  const agree = t.translatedAgreement === undefined ? '' : ` The classifier reads ${pct(t.translatedAgreement)}% of the translated source images as their source label.`;
  return figure('figure-4', fig4, 'source images above, their translations to the target domain below', `Source → target (the paper's figure 4): x above, g_y(f(x)) below (${t.n} images).`)
    + figure('figure-6', fig6, 'target images above, their translations to the source domain below', `Target → source (the paper's figure 6): y above, g_x(f(y)) below.`)
    + `<p class="note">Reconstruction error |x − g_x(f(x))| ${t.reconstructionL1.source.toFixed(3)} on source, |y − g_y(f(y))| ${t.reconstructionL1.target.toFixed(3)} on target (mean absolute, images in [−1, 1]).${agree}</p>`;
}

/** Input, each run's labels and the ground truth of the first `n` labelled target frames, at the training scale. */
async function segmentationSection(runs: [string, string][], items: SegItem[], scale: number): Promise<string> {
  const models = runs.map(([label, dir]) => [label, openRun(dir).model] as const);
  const palette = CITYSCAPES_PALETTE;
  try {
    const rows: Cell[][] = [];
    for (const item of items) {
      const s = await loadSegSample(item, { scale, crop: 0, flip: false, rand: () => 0 });
      const { height: h, width: w } = s;
      const input = await encodePng({ pixels: Uint8Array.from(s.image, (v) => Math.round((v + 1) * 127.5)), width: w, height: h, channels: 3 });
      const cells: Cell[] = [{ html: `<img src="${pngDataUri(input)}" alt="input ${esc(item.id)}">` }];
      for (const [label, model] of models) {
        const pred = tf.tidy(() => tf.argMax(model.predict(tf.tensor4d(s.image, [1, h, w, 3]), 'target', [h, w]), -1));
        const labels = Uint8Array.from(pred.dataSync());
        pred.dispose();
        cells.push({ html: `<img src="${pngDataUri(palettePng(labels, w, h, palette))}" alt="${esc(label)} ${esc(item.id)}">` });
      }
      cells.push({ html: `<img src="${pngDataUri(palettePng(s.labels!, w, h, palette))}" alt="ground truth ${esc(item.id)}">` });
      rows.push(cells);
    }
    const legend = CITYSCAPES_CLASSES.map((c, i) => `<span style="display:inline-block;margin-right:.6rem"><span style="display:inline-block;width:.8rem;height:.8rem;background:rgb(${palette[i].join(',')})"></span> ${esc(c)}</span>`).join('');
    return table('segmentations-table', ['input', ...runs.map(([l]) => l), 'ground truth'], rows) + `<p class="note">${legend}<br>Black in the ground truth: pixels outside the 19 classes (ignored by the scores).</p>`;
  } finally {
    for (const [, m] of models) m.dispose();
  }
}

async function scoreSection(runs: [string, string][], meta: CheckpointMeta, o: ReportOptions, scores: Record<string, number>): Promise<string> {
  const rows: Cell[][] = [];
  if (meta.config.kind === 'segment') {
    let frames = 0;
    for (const [label, dir] of runs) {
      o.progress?.(`[report] scoring ${label} on the labelled target frames`);
      const r = await evaluateRun(dir, { targetRoot: o.targetRoot, split: o.split, limit: o.evalLimit });
      scores[label] = r.seg!.mIoU; frames = r.seg!.n;
      rows.push([label, pct(r.seg!.mIoU), pct(r.seg!.pixelAccuracy), ...r.seg!.perClass.map(pct)]);
    }
    return table('scores-table', ['run', 'mIoU', 'pixel acc.', ...CITYSCAPES_CLASSES], rows, `IoU (%) per class on ${frames} labelled target frames, in the paper's Table 4 order`)
      + '<p class="note">"-": the class occurs in neither the labels nor the predictions (left out of mIoU).</p>';
  }
  let n = 0;
  for (const [label, dir] of runs) {
    const r = await evaluateRun(dir, { targetRoot: o.targetRoot });
    scores[label] = r.report!.accuracy; n = r.report!.n;
    rows.push([label, pct(r.report!.accuracy), ...r.report!.perClass.map(pct)]);
  }
  return table('scores-table', ['run', 'accuracy', ...meta.classes], rows, `Accuracy (%) overall and per class on ${n} labelled target images`);
}

/** One chart per logged term: generator terms (c, id, z, tr, cyc, trc, total) and the critics' (D_*, gp). */
function lossSection(runs: [string, string][]): string {
  // Bookkeeping, not losses: evalEvery's image count (its accuracy is charted under its own name).
  const IGNORED = new Set(['step', 'time', 'stepsPerSec', 'evalImages']);
  const perRun = runs.map(([label, dir], i) => {
    const file = path.join(dir, 'metrics.jsonl');
    const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    const rows = lines.flatMap((l) => { try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; } });
    return { label, color: COLORS[i % COLORS.length], rows };
  });
  const terms = [...new Set(perRun.flatMap((r) => r.rows.flatMap((row) => Object.keys(row).filter((k) => !IGNORED.has(k) && typeof row[k] === 'number'))))];
  if (terms.length === 0) return '<p>No metrics.jsonl lines in the runs.</p>';
  const title = (t: string) => (t === 'targetAccuracy' ? 'target accuracy (evalEvery)' : t === 'total' ? 'total (weighted sum)' : /^(D_|gp)/.test(t) ? t : `L_${t}`);
  const charts = terms.map((t) => lineChart(title(t),
    perRun.map((r) => ({ name: r.label, color: r.color, points: r.rows.filter((row) => typeof row[t] === 'number').map((row) => [row.step as number, row[t] as number] as [number, number]) }))
      .filter((s) => s.points.length > 0)));
  return `<div class="grid">${charts.join('')}</div><p class="note">Each point is the mean over the steps since the previous log line (metrics.jsonl). Generator terms as named in the paper; D_x, D_y, D_z are the critics' own objectives, gp WGAN-GP's gradient penalty.</p>`;
}

function parityTable(m: Manifest): string {
  const t = parityRows(m);
  return table('parity-table', t.head, t.rows, `The bundle's files against the training model on ${m.check?.frames ?? m.parity[0]?.frames ?? 0} held-out frames (input ${m.input.height}x${m.input.width})`)
    + (t.note ? `<p class="note">${esc(t.note)}</p>` : '');
}

/** Drift of each frame file by the bundle's chosen model, per list. */
async function driftOf(bundleDir: string, lists: string[][]): Promise<number[][]> {
  const b = await openBundle(bundleDir);
  try {
    const out: number[][] = [];
    for (const files of lists) {
      const scores: number[] = [];
      for (const f of files) {
        const { pixels } = await decodeToInput(fs.readFileSync(f), b.manifest.input, { maxPixels: 64e6 });
        const d = b.segment([pixels])[0].drift;
        if (d === null) throw new UserError(`${bundleDir}/${b.file.file} has no drift calibration.`, 'Convert again (i2i convert calibrates drift on the target frames).');
        scores.push(d);
      }
      out.push(scores);
    }
    return out;
  } finally {
    b.dispose();
  }
}

export async function writeReport(o: ReportOptions): Promise<ReportResult> {
  const progress = o.progress ?? (() => undefined);
  const meta = readCheckpointMeta(o.run);
  const runs: [string, string][] = [...(o.baseline ? [['source-only', o.baseline] as [string, string]] : []), [o.baseline ? 'adapted' : meta.config.method, o.run]];
  const metas = runs.map(([l, d]) => [l, d, d === o.run ? meta : readCheckpointMeta(d)] as [string, string, CheckpointMeta]);
  for (const [, d, m] of metas) if (m.config.task !== meta.config.task) throw new UserError(`--baseline ${d} is a ${m.config.task} run; ${o.run} is ${meta.config.task}.`, 'Compare runs of the same task.');
  const d = meta.config.data;
  const sourceRoot = o.sourceRoot ?? d.sourceRoot, targetRoot = o.targetRoot ?? d.targetRoot;
  const opts = { ...o, sourceRoot, targetRoot };
  const sections: Section[] = [];
  const scores: Record<string, number> = {};
  sections.push({ id: 'runs', title: 'Runs', html: summary(metas) });

  progress('[report] translations (figures 4 and 6)');
  try {
    sections.push({ id: 'translations', title: 'Translations', html: await translationSection(o.run, o.translations ?? 6, opts) });
  } catch (e) {
    sections.push({ id: 'translations', title: 'Translations', html: `<p>${esc((e as Error).message)}</p>` });
  }

  const seg = meta.config.kind === 'segment';
  const split = o.split ?? 'val';
  const labelled = seg && targetRoot && fs.existsSync(path.join(targetRoot, 'gtFine', split)) ? listScenes(d.target, targetRoot, split, '--target-root', true).items : [];
  if (seg) {
    progress('[report] segmentations side by side');
    sections.push({ id: 'segmentations', title: 'Segmentations', html: labelled.length
      ? await segmentationSection(runs, labelled.slice(0, o.frames ?? 4), d.scale)
      : `<p>No labelled target frames (${esc(path.join(targetRoot ?? '<target root>', 'gtFine', split))}): pass --target-root with leftImg8bit/ and gtFine/.</p>` });
  }
  if (!seg || labelled.length) sections.push({ id: 'scores', title: seg ? 'Per-class IoU' : 'Per-class accuracy', html: await scoreSection(runs, meta, opts, scores) });
  sections.push({ id: 'losses', title: 'Loss curves', html: lossSection(runs) });

  let drift: ReportResult['drift'];
  if (o.bundle) {
    const m = readManifest(o.bundle);
    let html = parityTable(m);
    if (seg && labelled.length && sourceRoot) {
      progress('[report] drift of held-out target and source frames');
      const n = o.driftFrames ?? 40;
      const [target, source] = await driftOf(o.bundle, [labelled.slice(0, n).map((i) => i.image),
        listScenes(d.source, sourceRoot, 'train', '--source-root', false).items.slice(0, n).map((i) => i.image)]);
      drift = { target, source, auroc: auroc(target, source) };
      html += histogram('drift score per frame', [{ name: `target (${target.length})`, values: target, color: COLORS[0] }, { name: `source (${source.length})`, values: source, color: COLORS[1] }], 20, 'drift')
        + `<p class="note">Drift from the bundle's features (0: a typical target frame, 1: the 95th percentile of its calibration frames). Median ${median(target).toFixed(2)} on held-out target frames, ${median(source).toFixed(2)} on source frames; AUROC of source vs target ${drift.auroc.toFixed(3)}.</p>`;
    }
    sections.push({ id: 'bundle', title: 'Bundle', html });
  }
  const intro = `<p>${esc(meta.config.task)}: ${runs.map(([l]) => esc(l)).join(' vs ')}, written ${esc(new Date().toISOString())} by <code>i2i report</code>.</p>`;
  fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
  const tmp = `${o.out}.tmp${process.pid}`;
  fs.writeFileSync(tmp, page(`i2i-adapt report: ${meta.config.task}`, intro, sections));
  fs.renameSync(tmp, o.out);
  return { out: o.out, sections: sections.map((s) => s.id), scores, drift };
}
