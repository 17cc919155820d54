import { strict as assert } from 'node:assert';
import { listCityscapes, listGta5, readTrainIds } from '../../train/data/segmentation';
import { C, drawScene, renderScene, writeSynth } from '../../train/data/synth';
import { tmpDir } from '../helpers';
import { deriveSeed } from '../../core/rng';

function classHistogram(seed0: number, n: number): number[] {
  const h = new Array(19).fill(0);
  for (let i = 0; i < n; i++) drawScene(64, 128, seed0 + i).labels.forEach((c) => h[c]++);
  const total = h.reduce((a, b) => a + b, 0);
  return h.map((v) => v / total);
}

describe('synthetic driving scenes', () => {
  it('are deterministic per seed and cover the required classes', () => {
    assert.deepEqual(drawScene(64, 128, 5).labels, drawScene(64, 128, 5).labels);
    assert.notDeepEqual(drawScene(64, 128, 5).labels, drawScene(64, 128, 6).labels);
    const h = classHistogram(100, 40);
    for (const c of Object.values(C)) assert.ok(h[c] > 0, `class ${c} never drawn`);
  });

  it('the two domains differ per class, not by one global colour transform', () => {
    // Mean colour of each class in each domain, over a few scenes.
    const means = (domain: 'source' | 'target') => {
      const sum = new Map<number, number[]>();
      for (let i = 0; i < 6; i++) {
        const s = drawScene(64, 128, 200 + i);
        const img = renderScene(s, domain, 300 + i);
        s.labels.forEach((c, p) => {
          const a = sum.get(c) ?? [0, 0, 0, 0];
          for (let k = 0; k < 3; k++) a[k] += img[p * 3 + k];
          a[3]++;
          sum.set(c, a);
        });
      }
      return new Map([...sum].map(([c, a]) => [c, [a[0] / a[3], a[1] / a[3], a[2] / a[3]]]));
    };
    const src = means('source'), tgt = means('target');
    const classes = [...src.keys()].filter((c) => tgt.has(c));
    // Best per-channel affine map source -> target (least squares); what it cannot explain remains.
    let residual = 0, spread = 0;
    for (let k = 0; k < 3; k++) {
      const xs = classes.map((c) => src.get(c)![k]), ys = classes.map((c) => tgt.get(c)![k]);
      const mx = xs.reduce((a, b) => a + b) / xs.length, my = ys.reduce((a, b) => a + b) / ys.length;
      const b = xs.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
      ys.forEach((y, i) => { residual += (y - (my + b * (xs[i] - mx))) ** 2; spread += (y - my) ** 2; });
    }
    assert.ok(residual / spread > 0.3, `a global colour map explains too much: ${1 - residual / spread}`);
  });

  it('writes the source in GTA5 layout and the target in Cityscapes layout, labels round-trip', async () => {
    const src = tmpDir(), tgt = tmpDir();
    await writeSynth({ out: src, domain: 'source', count: 2, height: 32, width: 64, seed: 1 });
    await writeSynth({ out: tgt, domain: 'target', count: 2, height: 32, width: 64, seed: 1, split: 'val' });
    const g = listGta5(src), c = listCityscapes(tgt, 'val', { labels: true });
    assert.equal(g.items.length, 2);
    assert.equal(c.items.length, 2);
    const ids = await readTrainIds(g.items[0].label!);
    assert.deepEqual(ids.ids, drawScene(32, 64, deriveSeed(1, 'source', 'train', 'scene', 0)).labels);
  });
});
