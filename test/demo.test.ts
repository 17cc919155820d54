/** npm run demo's pipeline on a tiny profile: every stage runs, the figures come from what it wrote, nothing is left open. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runDemo, type DemoProfile } from '../cli/demo';
import { readManifest } from '../core/bundle';
import { probeVideo, liveFfmpegChildren } from '../streams/ffmpeg';
import { evaluateRun } from '../train/evaluate-run';
import { tmpDir } from './helpers';

const TINY: DemoProfile = {
  name: 'test', scenes: { source: 6, target: 6, val: 3 }, size: [64, 128], input: [32, 64], steps: 2, precisions: ['fp32', 'int8'], clipRepeat: 2,
  overrides: { batchSize: 2, checkpointEvery: 2, model: { decoderWidths: [8, 8, 8], imageCriticWidths: [4, 8, 8], featureCriticWidths: [8, 8] }, data: { imageSize: 32, scale: 0.5 } },
};

describe('demo: the whole pipeline (cli/demo.ts) on a tiny profile', function () {
  this.timeout(300000);
  it('trains, evaluates, converts, serves, segments a clip with audio, writes the report; the table holds what the stages measured; the server and ffmpeg are gone', async () => {
    const out = tmpDir();
    const lines: string[] = [];
    const { text, summary } = await runDemo({ out, profile: TINY, progress: (l) => lines.push(l) });
    for (const step of ['1/8', '2/8', '3/8', '4/8', '5/8', '6/8', '7/8', '8/8']) assert.ok(lines.some((l) => l.startsWith(`[demo] ${step}`)), `progress line ${step}`);
    for (const [k, p] of Object.entries(summary.paths)) assert.ok(fs.existsSync(p), `${k}: ${p}`);
    assert.deepEqual(JSON.parse(fs.readFileSync(summary.paths.summary, 'utf8')), JSON.parse(JSON.stringify(summary)));
    // The scores are i2i eval's, the int8 drop the bundle's parity row.
    assert.equal(summary.mIoU.adapted, (await evaluateRun(summary.paths.adapted, { targetRoot: path.join(summary.paths.data, 'target') })).seg!.mIoU);
    assert.equal(summary.int8Drop, readManifest(summary.paths.bundle).parity.find((r) => r.format === 'tflite' && r.precision === 'int8')!.scoreDropVsFp32);
    // Three held-out scenes, two frames each: the segmented clip keeps size, count and audio; one stats line per frame.
    const seg = await probeVideo(summary.paths.segmented);
    assert.deepEqual([seg.width, seg.height, seg.frames, seg.hasAudio], [128, 64, 6, true]);
    assert.equal(fs.readFileSync(summary.paths.stats, 'utf8').trim().split('\n').length, 6);
    assert.deepEqual([summary.video.frames, summary.server.frames, summary.drift.frames], [6, 3, 3]);
    assert.ok(summary.server.medianMs > 0 && summary.server.p95Ms >= summary.server.medianMs);
    assert.match(text, new RegExp(`segment-video, 6 frames 128x64 with audio \\| ${summary.video.fps.toFixed(1)} frames/s`));
    assert.match(text, /\| precision \| format \|/);
    assert.match(fs.readFileSync(summary.paths.report, 'utf8'), /id="scores-table"/);
    // Closed: the server's port refuses, its log says it stopped, no ffmpeg child is left.
    const log = fs.readFileSync(summary.paths.serverLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg?: string; url?: string });
    assert.equal(log[log.length - 1].msg, 'stopped');
    const url = log.find((l) => l.msg === 'serving')!.url!;
    await assert.rejects(fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) }));
    assert.deepEqual(liveFfmpegChildren(), []);
    // A second run reuses the scenes it synthesised.
    const again: string[] = [];
    await runDemo({ out, profile: { ...TINY, precisions: ['fp32'] }, progress: (l) => again.push(l) });
    assert.ok(again.some((l) => l.includes('reusing the synthetic scenes')));
  });
});
