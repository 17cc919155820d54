/** i2i report: the page's content from real runs and a real bundle, then the page in headless Chromium. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import * as tf from '../../core/tf';
import { readManifest } from '../../core/bundle';
import { CITYSCAPES_CLASSES } from '../../core/labels';
import { convert } from '../../convert/convert';
import { histogram, lineChart } from '../../report/svg';
import { writeReport } from '../../report/report';
import { writeSynth } from '../../train/data/synth';
import { evaluateRun } from '../../train/evaluate-run';
import { train } from '../../train/trainer';
import type { ConfigPatch } from '../../train/config';
import { launchOrSkip, tableRows, undecodedImages, watch } from '../browser/chromium';
import { tmpDir } from '../helpers';

const quiet = () => undefined;

describe('report: the charts', () => {
  it('a line chart puts the first and last points at the axes\' corners and states the ranges', () => {
    const svg = lineChart('L_c', [{ name: 'a', color: '#000', points: [[0, 2], [5, NaN], [10, 4]] }]);
    // Plot area x 48..310, y 152 (low) .. 24 (high); NaN is left out.
    assert.match(svg, /<polyline points="48\.0,152\.0 310\.0,24\.0"/);
    for (const label of ['>0<', '>10<', '>2<', '>4<', '>L_c<']) assert.ok(svg.includes(label), label);
  });
  it('a histogram bins each sample as fractions of itself on shared bins', () => {
    const svg = histogram('drift', [{ name: 'target', values: [0, 0, 0, 1], color: '#00f' }, { name: 'source', values: [1, 1], color: '#f00' }], 2);
    const bars = [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="(#[0-9a-f]+)" fill-opacity/g)].map((m) => [m[4], Number(m[1]), Number(m[3])]);
    // Bin 0: target 3/4; bin 1: target 1/4, source 1 (the tallest, full height 128).
    assert.deepEqual(bars, [['#00f', 48, 96], ['#00f', 179, 32], ['#f00', 179, 128]]);
  });
});

describe('report: i2i report of a source-only and an adapted segmenter with their bundle', function () {
  this.timeout(300000);
  const root = tmpDir();
  const src = path.join(root, 'source'), tgt = path.join(root, 'target');
  const base = path.join(root, 'source-only'), run = path.join(root, 'full'), bundle = path.join(root, 'bundle'), out = path.join(root, 'r', 'report.html');
  let result: Awaited<ReturnType<typeof writeReport>>;
  let browser: Browser | undefined;

  before(async () => {
    await writeSynth({ out: src, domain: 'source', count: 6, height: 64, width: 128, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 6, height: 64, width: 128, seed: 2 });
    await writeSynth({ out: tgt, domain: 'target', count: 3, height: 64, width: 128, seed: 3, split: 'val' });
    const o: ConfigPatch = { steps: 3, batchSize: 2, logEvery: 1, checkpointEvery: 3,
      model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8], featureCriticWidths: [8, 8] },
      data: { imageSize: 32, scale: 0.5, sourceRoot: src, targetRoot: tgt } };
    await train({ task: 'synth-drive', method: 'source-only', out: base, overrides: o, progress: quiet });
    await train({ task: 'synth-drive', method: 'full', out: run, overrides: o, progress: quiet });
    await convert({ checkpoint: run, out: bundle, precisions: ['fp32', 'int8'], input: [32, 64], calibrate: path.join(tgt, 'leftImg8bit', 'train'), calibrationFrames: 6, eval: tgt, progress: quiet });
    const before = tf.memory().numTensors;
    result = await writeReport({ run, baseline: base, bundle, out });
    assert.equal(tf.memory().numTensors, before, 'the report leaves tensors behind');
  });
  after(async () => { await browser?.close(); });

  it('holds every section, from these runs: scores as i2i eval measures them, one chart per logged term, drift of both domains', async () => {
    assert.deepEqual(result.sections, ['runs', 'translations', 'segmentations', 'scores', 'losses', 'bundle']);
    assert.deepEqual(Object.keys(result.scores), ['source-only', 'adapted']);
    assert.equal(result.scores.adapted, (await evaluateRun(run, { targetRoot: tgt })).seg!.mIoU);
    assert.equal(result.scores['source-only'], (await evaluateRun(base, { targetRoot: tgt })).seg!.mIoU);
    assert.equal(result.drift!.target.length, 3); assert.equal(result.drift!.source.length, 6);
    assert.ok(result.drift!.auroc >= 0 && result.drift!.auroc <= 1);
    const html = fs.readFileSync(out, 'utf8');
    // Loss terms of the full run (5.3: c, id, tr, trc and the image critics with their penalty).
    const logged = Object.keys(JSON.parse(fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').split('\n')[0])).filter((k) => !['step', 'time', 'stepsPerSec', 'phase'].includes(k));
    const charts = [...html.matchAll(/<svg [^>]*aria-label="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(charts.length, logged.length + 1, `${charts} vs ${logged}`);
    for (const t of ['L_c', 'L_id', 'L_tr', 'L_trc', 'D_x', 'D_y', 'gp', 'drift score per frame']) assert.ok(charts.includes(t), t);
    // Self-contained: every image inline, no URL to fetch.
    assert.doesNotMatch(html, /(src|href)="(?!data:|#)/);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'; img-src data:/);
  });

  it('loads in headless Chromium with no console error: every image decodes, every table has its rows', async function () {
    browser = await launchOrSkip(this, 'the report\'s browser test');
    const page = await browser.newPage();
    const seen = watch(page);
    await page.goto(`file://${out}`, { waitUntil: 'load' });
    assert.deepEqual(await undecodedImages(page), []);
    // 2 translation figures; per labelled frame input, 2 runs and the ground truth.
    assert.equal(await page.locator('img').count(), 2 + 3 * 4);
    assert.deepEqual((await tableRows(page, '#runs-table')).map((r) => r[0]), ['source-only', 'adapted']);
    assert.equal((await tableRows(page, '#segmentations-table')).length, 3);
    const scores = await tableRows(page, '#scores-table');
    assert.deepEqual(scores.map((r) => r[0]), ['source-only', 'adapted']);
    const head: string[] = await page.evaluate(`[...document.querySelectorAll('#scores-table thead th')].map((c) => c.textContent)`);
    assert.deepEqual(head.slice(3), [...CITYSCAPES_CLASSES], 'Table 4 order');
    assert.equal(scores[1][1], (result.scores.adapted * 100).toFixed(1));
    assert.deepEqual((await tableRows(page, '#parity-table')).map((r) => `${r[0]} ${r[1]}`), readManifest(bundle).parity.map((p) => `${p.precision} ${p.format}`));
    assert.deepEqual(seen.errors, []);
    assert.deepEqual(seen.requests.filter((u) => !u.startsWith('data:') && !u.startsWith('file:')), []);
  });

  it('refuses a baseline of another task, naming both', async () => {
    const other = path.join(root, 'gta5');
    await train({ task: 'gta5-cityscapes', method: 'source-only', out: other, progress: quiet, overrides: { steps: 1, batchSize: 1, checkpointEvery: 1, logEvery: 1,
      model: { encoder: 'densenet-small', recompute: false }, data: { imageSize: 32, sourceRoot: src, targetRoot: tgt } } });
    await assert.rejects(writeReport({ run, baseline: other, out: path.join(root, 'x.html') }), /--baseline .*gta5 is a gta5-cityscapes run; .*full is synth-drive/);
    assert.ok(!fs.existsSync(path.join(root, 'x.html')));
  });
});
