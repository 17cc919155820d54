/**
 * Procedural driving scenes in two domains that differ the way a game and a camera differ, with the
 * same label statistics: the CPU benchmark and the demo's built-in data for segmentation.
 *
 * A scene is drawn once in label space (trainIds: road, sidewalk, building, wall, fence, pole,
 * traffic light, traffic sign, vegetation, terrain, sky, person, car), then rendered per domain:
 * - source ("game"): saturated flat per-class colours, hard edges, clean procedural textures;
 * - target ("camera"): other per-class colours (not one global shift: each class moves differently
 *   in hue, saturation and brightness), sensor noise, blur, an illumination gradient, vignetting.
 * The source is written in GTA5's layout, the target in Cityscapes' (labels as labelIds).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IGNORE, TRAIN_LABEL_IDS } from '../../core/labels';
import { deriveSeed, mulberry32 } from '../../core/rng';

export const C = { road: 0, sidewalk: 1, building: 2, wall: 3, fence: 4, pole: 5, light: 6, sign: 7, vegetation: 8, terrain: 9, sky: 10, person: 11, car: 13 } as const;

export interface Scene { height: number; width: number; labels: Uint8Array }

/** Draws one scene's label map. Coordinates scale with the size, so any resolution works. */
export function drawScene(height: number, width: number, seed: number): Scene {
  const r = mulberry32(seed);
  const rnd = (a: number, b: number) => a + (b - a) * r();
  const L = new Uint8Array(height * width).fill(C.sky);
  const rect = (x0: number, y0: number, x1: number, y1: number, c: number) => {
    for (let y = Math.max(0, Math.floor(y0)); y < Math.min(height, Math.ceil(y1)); y++) for (let x = Math.max(0, Math.floor(x0)); x < Math.min(width, Math.ceil(x1)); x++) L[y * width + x] = c;
  };
  const ellipse = (cx: number, cy: number, rx: number, ry: number, c: number) => {
    for (let y = Math.max(0, Math.floor(cy - ry)); y < Math.min(height, Math.ceil(cy + ry)); y++) for (let x = Math.max(0, Math.floor(cx - rx)); x < Math.min(width, Math.ceil(cx + rx)); x++) {
      if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1) L[y * width + x] = c;
    }
  };
  const horizon = height * rnd(0.35, 0.5);
  const vx = width * rnd(0.4, 0.6);
  const roadHalf = width * rnd(0.3, 0.45);   // half-width of the road at the bottom
  const walk = width * rnd(0.08, 0.16);      // sidewalk width at the bottom
  // Ground: terrain, then sidewalks and the road as trapezoids towards the vanishing point.
  for (let y = Math.ceil(horizon); y < height; y++) {
    const t = (y - horizon) / (height - horizon);
    const half = roadHalf * t, side = walk * t;
    for (let x = 0; x < width; x++) {
      const d = Math.abs(x - vx);
      L[y * width + x] = d < half ? C.road : d < half + side ? C.sidewalk : C.terrain;
    }
  }
  // Buildings along both sides, behind the sidewalk, from the horizon up.
  for (const side of [-1, 1]) {
    let x = side < 0 ? 0 : vx + width * 0.05;
    const end = side < 0 ? vx - width * 0.05 : width;
    while (x < end) {
      const w = width * rnd(0.06, 0.18);
      const top = horizon - height * rnd(0.08, 0.35);
      const base = horizon + height * 0.04;
      rect(x, top, Math.min(x + w, end), base, C.building);
      if (r() < 0.35) rect(x, base - height * 0.05, Math.min(x + w, end), base + height * 0.02, r() < 0.5 ? C.wall : C.fence);
      x += w + width * rnd(0, 0.03);
    }
  }
  // Vegetation: a few trees (crowns) and hedges.
  for (let i = 0, n = 1 + Math.floor(rnd(0, 4)); i < n; i++) {
    const cx = r() < 0.5 ? rnd(0, vx - roadHalf * 0.3) : rnd(vx + roadHalf * 0.3, width);
    const cy = horizon - height * rnd(0, 0.12);
    ellipse(cx, cy, width * rnd(0.03, 0.08), height * rnd(0.06, 0.14), C.vegetation);
    rect(cx - width * 0.004, cy, cx + width * 0.004, horizon + height * 0.06, C.vegetation);
  }
  if (r() < 0.6) rect(0, horizon + height * 0.02, vx - roadHalf * 0.5, horizon + height * 0.07, C.vegetation);
  // Poles with signs and traffic lights at the kerb.
  for (let i = 0, n = 1 + Math.floor(rnd(0, 3)); i < n; i++) {
    const t = rnd(0.2, 0.9);
    const y = horizon + t * (height - horizon);
    const sideSign = r() < 0.5 ? -1 : 1;
    const x = vx + sideSign * (roadHalf * t + walk * t * 0.5);
    const h = height * 0.45 * t + height * 0.05;
    const pw = Math.max(1, width * 0.006 * t + 1);
    rect(x - pw / 2, y - h, x + pw / 2, y, C.pole);
    if (r() < 0.6) rect(x - pw * 3, y - h - pw * 5, x + pw * 3, y - h + pw, C.sign);
    else rect(x - pw * 1.5, y - h - pw * 6, x + pw * 1.5, y - h, C.light);
  }
  // Cars on the road, people on the sidewalks; nearer ones are larger (perspective).
  const things: { t: number; draw: () => void }[] = [];
  for (let i = 0, n = Math.floor(rnd(1, 5)); i < n; i++) {
    const t = rnd(0.15, 0.95);
    const y = horizon + t * (height - horizon);
    const x = vx + rnd(-0.8, 0.8) * roadHalf * t;
    const w = width * 0.22 * t + 2, h = w * rnd(0.45, 0.65);
    things.push({ t, draw: () => { rect(x - w / 2, y - h, x + w / 2, y - h * 0.15, C.car); ellipse(x - w * 0.3, y - h * 0.15, w * 0.1, h * 0.15, C.car); ellipse(x + w * 0.3, y - h * 0.15, w * 0.1, h * 0.15, C.car); } });
  }
  for (let i = 0, n = Math.floor(rnd(0, 4)); i < n; i++) {
    const t = rnd(0.2, 0.95);
    const y = horizon + t * (height - horizon);
    const x = vx + (r() < 0.5 ? -1 : 1) * (roadHalf * t + walk * t * rnd(0.2, 0.8));
    const h = height * 0.3 * t + 3, w = h * 0.28;
    things.push({ t, draw: () => { rect(x - w / 2, y - h * 0.82, x + w / 2, y, C.person); ellipse(x, y - h * 0.9, w * 0.4, h * 0.1, C.person); } });
  }
  things.sort((a, b) => a.t - b.t).forEach((th) => th.draw());
  return { height, width, labels: L };
}

type RGB = [number, number, number];
/** Per-class base colours of each domain; the target's differ per class, not by one global shift. */
const SOURCE_COLOURS: Record<number, RGB> = {
  [C.road]: [95, 90, 100], [C.sidewalk]: [200, 170, 190], [C.building]: [150, 110, 80], [C.wall]: [180, 160, 120],
  [C.fence]: [140, 120, 90], [C.pole]: [60, 60, 70], [C.light]: [230, 200, 40], [C.sign]: [40, 90, 220],
  [C.vegetation]: [40, 170, 40], [C.terrain]: [150, 200, 90], [C.sky]: [80, 160, 255], [C.person]: [220, 40, 60], [C.car]: [200, 30, 30],
};
const TARGET_COLOURS: Record<number, RGB> = {
  [C.road]: [120, 118, 112], [C.sidewalk]: [150, 146, 140], [C.building]: [110, 108, 112], [C.wall]: [130, 125, 115],
  [C.fence]: [105, 110, 100], [C.pole]: [90, 92, 95], [C.light]: [160, 150, 90], [C.sign]: [150, 150, 160],
  [C.vegetation]: [70, 95, 55], [C.terrain]: [120, 125, 90], [C.sky]: [200, 210, 220], [C.person]: [80, 70, 75], [C.car]: [60, 70, 95],
};

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** Renders a label map as an RGB image (uint8, HxWx3) of the given domain. */
export function renderScene(s: Scene, domain: 'source' | 'target', seed: number): Uint8Array {
  const { height: H, width: W, labels } = s;
  const r = mulberry32(seed);
  const img = new Float32Array(H * W * 3);
  const colours = domain === 'source' ? SOURCE_COLOURS : TARGET_COLOURS;
  // Each image varies its colours a little (instances, weather), in both domains.
  const jitter: Record<number, RGB> = {};
  for (const k of Object.keys(colours)) jitter[+k] = [gaussian(r) * 12, gaussian(r) * 12, gaussian(r) * 12];
  const stripe = domain === 'source' ? 6 + Math.floor(r() * 6) : 0;
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const c = labels[y * W + x];
    const base = colours[c] ?? [0, 0, 0];
    // Game textures: clean stripes/bricks on some classes; camera: none (noise comes later).
    const tex = stripe && (c === C.building || c === C.road || c === C.sidewalk) ? (((x + (c === C.building ? y : 0)) % stripe) < stripe / 2 ? 10 : -10) : 0;
    for (let k = 0; k < 3; k++) img[(y * W + x) * 3 + k] = base[k] + jitter[c]?.[k] + tex;
  }
  if (domain === 'target') {
    // Camera: 3x3 box blur, low-frequency illumination, vignetting, sensor noise.
    const blurred = new Float32Array(img.length);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let k = 0; k < 3; k++) {
      let sum = 0, n = 0;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const yy = y + dy, xx = x + dx;
        if (yy >= 0 && yy < H && xx >= 0 && xx < W) { sum += img[(yy * W + xx) * 3 + k]; n++; }
      }
      blurred[(y * W + x) * 3 + k] = sum / n;
    }
    const gx = (r() - 0.5) * 0.6, gy = (r() - 0.5) * 0.4, gain = 0.8 + r() * 0.4;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const u = x / W - 0.5, v = y / H - 0.5;
      const light = gain * (1 + gx * u + gy * v) * (1 - 0.5 * (u * u + v * v));
      for (let k = 0; k < 3; k++) {
        const i = (y * W + x) * 3 + k;
        img[i] = blurred[i] * light + gaussian(r) * 6;
      }
    }
  }
  const out = new Uint8Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = Math.max(0, Math.min(255, Math.round(img[i])));
  return out;
}

/** trainIds -> Cityscapes labelIds (for writing GTA5/Cityscapes-format label PNGs). */
export function trainIdsToLabelIds(t: Uint8Array): Uint8Array {
  const out = new Uint8Array(t.length);
  for (let i = 0; i < t.length; i++) out[i] = t[i] === IGNORE ? 0 : TRAIN_LABEL_IDS[t[i]];
  return out;
}

export interface SynthOptions { out: string; domain: 'source' | 'target'; count: number; height: number; width: number; seed: number; split?: string }

/** Writes `count` scenes: source in GTA5 layout, target in Cityscapes layout. Returns the files written. */
export async function writeSynth(o: SynthOptions): Promise<string[]> {
  const sharp = (await import('sharp')).default;
  const written: string[] = [];
  const split = o.split ?? 'train';
  for (let i = 0; i < o.count; i++) {
    // Source and target draw different scenes (unpaired), from the same distribution.
    const scene = drawScene(o.height, o.width, deriveSeed(o.seed, o.domain, split, 'scene', i));
    const rgb = renderScene(scene, o.domain, deriveSeed(o.seed, o.domain, split, 'render', i));
    const ids = trainIdsToLabelIds(scene.labels);
    let imgFile: string, lblFile: string;
    if (o.domain === 'source') {
      const id = String(i).padStart(5, '0');
      imgFile = path.join(o.out, 'images', `${id}.png`);
      lblFile = path.join(o.out, 'labels', `${id}.png`);
    } else {
      const id = `synth_${String(i).padStart(6, '0')}_000019`;
      imgFile = path.join(o.out, 'leftImg8bit', split, 'synth', `${id}_leftImg8bit.png`);
      lblFile = path.join(o.out, 'gtFine', split, 'synth', `${id}_gtFine_labelIds.png`);
    }
    fs.mkdirSync(path.dirname(imgFile), { recursive: true });
    fs.mkdirSync(path.dirname(lblFile), { recursive: true });
    await sharp(Buffer.from(rgb), { raw: { width: o.width, height: o.height, channels: 3 } }).png().toFile(imgFile);
    await sharp(Buffer.from(ids), { raw: { width: o.width, height: o.height, channels: 1 } }).toColourspace('b-w').png().toFile(lblFile);  // 8-bit greyscale labelIds, as Cityscapes ships them (sharp writes one raw channel as RGB otherwise)
    written.push(imgFile, lblFile);
  }
  return written;
}
