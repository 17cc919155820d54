/**
 * Charts as inline SVG strings (no script, no network): a line chart per loss term and an
 * overlaid histogram. Each chart states its axis ranges in text, so values can be read off.
 */
import { esc } from './html';

export interface Series { name: string; points: [number, number][]; color: string }

const W = 320, H = 180, PAD = { l: 48, r: 10, t: 24, b: 28 };
const fmt = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : Number(v.toPrecision(3)).toString());

function frame(title: string, x: [number, number], y: [number, number], body: string, xLabel: string): string {
  const [x0, y0, x1, y1] = [PAD.l, H - PAD.b, W - PAD.r, PAD.t];
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`
    + `<text x="${PAD.l}" y="15" font-size="13" font-weight="600">${esc(title)}</text>`
    + `<path d="M${x0} ${y1}V${y0}H${x1}" fill="none" stroke="#999"/>`
    + `<text x="${x0 - 4}" y="${y1 + 4}" font-size="10" text-anchor="end">${fmt(y[1])}</text>`
    + `<text x="${x0 - 4}" y="${y0}" font-size="10" text-anchor="end">${fmt(y[0])}</text>`
    + `<text x="${x0}" y="${y0 + 14}" font-size="10">${fmt(x[0])}</text>`
    + `<text x="${x1}" y="${y0 + 14}" font-size="10" text-anchor="end">${fmt(x[1])}</text>`
    + `<text x="${(x0 + x1) / 2}" y="${y0 + 14}" font-size="10" text-anchor="middle">${esc(xLabel)}</text>`
    + body + '</svg>';
}

const extent = (vs: number[]): [number, number] => {
  let lo = Math.min(...vs), hi = Math.max(...vs);
  if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  return [lo, hi];
};

const scale = (v: number, [a, b]: [number, number], [p, q]: [number, number]) => p + ((v - a) / (b - a)) * (q - p);

function legend(series: { name: string; color: string }[]): string {
  return series.map((s, i) => `<rect x="${W - PAD.r - 90}" y="${PAD.t + 4 + i * 14}" width="10" height="10" fill="${s.color}"/>`
    + `<text x="${W - PAD.r - 76}" y="${PAD.t + 13 + i * 14}" font-size="11">${esc(s.name)}</text>`).join('');
}

/** One line per series over a shared x (steps); non-finite values are left out. */
export function lineChart(title: string, series: Series[], xLabel = 'step'): string {
  const pts = series.flatMap((s) => s.points.filter(([, v]) => Number.isFinite(v)));
  if (pts.length === 0) return '';
  const xs = extent(pts.map(([x]) => x)), ys = extent(pts.map(([, v]) => v));
  const body = series.map((s) => {
    const d = s.points.filter(([, v]) => Number.isFinite(v))
      .map(([x, v]) => `${scale(x, xs, [PAD.l, W - PAD.r]).toFixed(1)},${scale(v, ys, [H - PAD.b, PAD.t]).toFixed(1)}`).join(' ');
    return `<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`;
  }).join('');
  return frame(title, xs, ys, body + (series.length > 1 ? legend(series) : ''), xLabel);
}

/** Overlaid histograms of several samples on shared bins (counts as fractions of each sample). */
export function histogram(title: string, samples: { name: string; values: number[]; color: string }[], bins = 20, xLabel = ''): string {
  const all = samples.flatMap((s) => s.values.filter(Number.isFinite));
  if (all.length === 0) return '';
  const xs = extent(all);
  const width = (xs[1] - xs[0]) / bins;
  const fractions = samples.map((s) => {
    const h = new Array<number>(bins).fill(0);
    const vs = s.values.filter(Number.isFinite);
    for (const v of vs) h[Math.min(bins - 1, Math.floor((v - xs[0]) / width))] += 1 / vs.length;
    return h;
  });
  const top = Math.max(...fractions.flat());
  const bw = (W - PAD.l - PAD.r) / bins;
  const body = fractions.map((h, si) => h.map((f, i) => {
    const y = scale(f, [0, top], [H - PAD.b, PAD.t]);
    return f > 0 ? `<rect x="${(PAD.l + i * bw).toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${(H - PAD.b - y).toFixed(1)}" fill="${samples[si].color}" fill-opacity="0.55"/>` : '';
  }).join('')).join('');
  return frame(title, xs, [0, top], body + legend(samples), xLabel);
}
