/**
 * GET /: one self-contained page to try the model by hand: drop or pick a frame and see the
 * overlay, the class fractions and the drift; the live streams' MJPEG views; the model card.
 * No framework and no external request: the script and style are inline, pinned by their sha256 in
 * a Content-Security-Policy that allows this origin only (a browser refuses anything else).
 */
import { createHash } from 'node:crypto';

export interface PageConfig {
  /** The server wants a bearer token: the page asks for one before it calls the API. */
  auth: boolean;
  /** Names of the live streams mounted under /streams. */
  streams: string[];
}

const STYLE = `
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
header{background:#22303c;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1rem;align-items:baseline}
header h1{font-size:1.15rem;margin:0}main{max-width:72rem;margin:auto;padding:1rem}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:.8rem 1rem;margin-bottom:1rem}
h2{font-size:1.05rem;margin:.2rem 0 .6rem}h3{font-size:.95rem;margin:.8rem 0 .3rem}
#drop{display:block;border:2px dashed #9aa5b1;border-radius:6px;padding:1.2rem;text-align:center;cursor:pointer}
#drop.over{background:#eaf2fb;border-color:#2f6fb1}
.pair{display:flex;gap:1rem;flex-wrap:wrap}figure{margin:.6rem 0;flex:1 1 20rem}
figure img{max-width:100%;display:block;background:#eef0f2;min-height:2rem}figcaption{font-size:.85rem;color:#5b6670}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.15rem .6rem;border-bottom:1px solid #eceff2;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.sw{display:inline-block;width:.9em;height:.9em;border-radius:2px;vertical-align:-.1em;margin-right:.4em}
#status.error{color:#b3261e}dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:0}dt{color:#5b6670}dd{margin:0}
.cols{display:flex;gap:2rem;flex-wrap:wrap}.controls{display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap;margin:.6rem 0}`;

const SCRIPT = `
const $ = (id) => document.getElementById(id);
const config = JSON.parse($('config').textContent);
const pct = (v) => (100 * v).toFixed(1) + ' %';
const token = () => $('token').value.trim();
const auth = () => (token() ? { Authorization: 'Bearer ' + token() } : {});
const say = (text, error) => { $('status').textContent = text; $('status').className = error ? 'error' : ''; };
function cell(tr, v, numeric) { const td = tr.insertCell(); if (v instanceof Node) td.append(v); else td.textContent = v; if (numeric) td.className = 'n'; }
function swatch(c, name) { const s = document.createElement('span'); s.className = 'sw'; if (c) s.style.background = 'rgb(' + c.join(',') + ')'; const f = document.createDocumentFragment(); f.append(s, name); return f; }
async function failure(r) { const e = await r.json().catch(() => ({})); return new Error(e.error ? e.error + ' ' + (e.hint || '') : 'HTTP ' + r.status); }
async function getJson(url) { const r = await fetch(url, { headers: auth() }); if (!r.ok) throw await failure(r); return r.json(); }
let colors = {};

async function loadCard() {
  const m = await getJson('/v1/model');
  $('task').textContent = m.task + ' (' + m.kind + ')';
  const facts = { bundle: m.bundle, task: m.task, input: m.input.width + 'x' + m.input.height, model: m.model.file,
    precision: m.model.precision, runtime: m.model.runtime, 'batch limit': m.model.batch, created: m.createdAt,
    'drift reference': m.drift ? m.drift.frames + ' target frames' : 'none in this bundle' };
  if (m.evaluation) facts['target ' + m.evaluation.metric + ' (tfjs)'] = pct(m.evaluation.tfjsScore) + ' on ' + m.evaluation.frames + ' frames';
  const dl = $('model'); dl.replaceChildren();
  for (const [k, v] of Object.entries(facts)) if (v !== undefined && v !== null) { const dt = document.createElement('dt'), dd = document.createElement('dd'); dt.textContent = k; dd.textContent = String(v); dl.append(dt, dd); }
  const classes = $('classes').tBodies[0]; classes.replaceChildren();
  for (const c of m.classes) { colors[c.name] = c.color; const tr = classes.insertRow(); cell(tr, String(c.id), true); cell(tr, swatch(c.color, c.name)); }
  const parity = $('parity').tBodies[0]; parity.replaceChildren();
  for (const p of m.parity) {
    const tr = parity.insertRow();
    cell(tr, p.format + ' ' + p.precision); cell(tr, (p.bytes / 1e6).toFixed(2) + ' MB', true); cell(tr, p.latencyMs.toFixed(1) + ' ms', true);
    cell(tr, pct(p.labelAgreement), true); cell(tr, p.score === undefined ? '' : pct(p.score), true); cell(tr, p.scoreDropVsFp32 === undefined ? '' : pct(p.scoreDropVsFp32), true);
  }
  $('parity-none').hidden = m.parity.length > 0;
}

async function segment(file) {
  if (!file) return;
  say('Segmenting ' + file.name + ' ...');
  const old = $('frame').src;
  $('frame').src = URL.createObjectURL(file);
  if (old.startsWith('blob:')) URL.revokeObjectURL(old);
  try {
    // One inference: the fractions, the drift and the overlay of the same labels.
    const r = await fetch('/segment?format=json&overlay=1&alpha=' + $('alpha').value, { method: 'POST', body: file, headers: { ...auth(), 'Content-Type': file.type || 'image/jpeg' } });
    if (!r.ok) throw await failure(r);
    const s = await r.json();
    $('overlay').src = 'data:image/jpeg;base64,' + s.overlay;
    const rows = $('fractions').tBodies[0]; rows.replaceChildren();
    for (const [name, f] of Object.entries(s.fractions).sort((a, b) => b[1] - a[1])) if (f > 0) { const tr = rows.insertRow(); cell(tr, swatch(colors[name], name)); cell(tr, pct(f), true); }
    $('drift').textContent = s.drift === null ? 'Drift: this bundle has no drift reference.'
      : 'Drift ' + s.drift.toFixed(2) + (s.drift <= 1 ? ': typical of the target domain the model was adapted to.' : ': beyond the 95th percentile of the target frames; treat the result with care.');
    say(file.name + ': ' + s.width + 'x' + s.height + ', inference ' + s.timings.infer.toFixed(1) + ' ms (batch ' + s.batch + ').');
  } catch (e) { say(e.message, true); }
}

function showStreams() {
  if (!config.streams.length) return;
  $('streams').hidden = false;
  // An <img> cannot send a bearer token: under auth the MJPEG views are for clients that can.
  if (config.auth) { const p = document.createElement('p'); p.textContent = 'This server needs a token, which an image tag cannot send: open ' + config.streams.map((n) => '/streams/' + n + '.mjpeg').join(', ') + ' with a client that sends Authorization.'; $('views').append(p); return; }
  for (const name of config.streams) {
    const fig = document.createElement('figure'), img = document.createElement('img'), cap = document.createElement('figcaption');
    img.alt = 'live overlay of ' + name; img.src = '/streams/' + encodeURIComponent(name) + '.mjpeg'; cap.textContent = name;
    fig.append(img, cap); $('views').append(fig);
    const tick = () => getJson('/streams/' + encodeURIComponent(name)).then((s) => {
      cap.textContent = name + ': ' + s.state + ', ' + s.fps.toFixed(1) + ' frames/s of ' + s.sourceFps.toFixed(1) + ', ' + s.frames.dropped + ' dropped' + (s.drift === null ? '' : ', drift ' + s.drift.toFixed(2));
    }, () => undefined);
    tick(); setInterval(tick, 2000);
  }
}

const drop = $('drop');
$('file').addEventListener('change', () => segment($('file').files[0]));
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); segment(e.dataTransfer.files[0]); });
const start = () => loadCard().then(() => say('Ready: drop a frame.'), (e) => say(e.message, true));
if (config.auth) { $('auth').open = true; say('This server needs a bearer token: enter it above.'); $('token').addEventListener('change', () => { start(); }); }
else start();
showStreams();
`;

const sha = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

/** The page's security policy: its own inline script and style, images and API calls from this origin only. */
export const PAGE_CSP = [
  "default-src 'none'", `script-src ${sha(SCRIPT)}`, `style-src ${sha(STYLE)}`, "img-src 'self' blob: data:",
  "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/** The page's HTML; the config travels as a JSON data block (inert, and `<` escaped so it cannot close it). */
export function pageHtml(c: PageConfig): string {
  const config = JSON.stringify(c).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>i2i-adapt segmentation server</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body><header><h1>i2i-adapt</h1><span id="task"></span></header><main>
<section><h2>Segment a frame</h2>
<label id="drop">Drop a dashcam frame here, or pick one: <input type="file" id="file" accept="image/jpeg,image/png,image/webp"></label>
<div class="controls"><label>Overlay opacity <input type="range" id="alpha" min="0" max="1" step="0.05" value="0.5"></label>
<details id="auth"><summary>Bearer token</summary><input id="token" type="password" autocomplete="off" placeholder="a token from --token-file"></details></div>
<p id="status" role="status"></p>
<div class="pair"><figure><img id="frame" alt="the frame"><figcaption>Frame</figcaption></figure>
<figure><img id="overlay" alt="the segmentation overlay"><figcaption>Overlay (POST /segment?format=json&amp;overlay=1)</figcaption></figure></div>
<p id="drift"></p>
<table id="fractions"><thead><tr><th>Class</th><th>Share of the frame</th></tr></thead><tbody></tbody></table>
</section>
<section id="streams" hidden><h2>Live streams</h2><div id="views" class="pair"></div></section>
<section><h2>Model card</h2><dl id="model"></dl>
<div class="cols"><div><h3>Classes</h3><table id="classes"><thead><tr><th>Id</th><th>Class</th></tr></thead><tbody></tbody></table></div>
<div><h3>Parity (measured when the bundle was converted)</h3><p id="parity-none" hidden>No parity figures in this bundle.</p>
<table id="parity"><thead><tr><th>Model</th><th>Size</th><th>Latency</th><th>Labels as tfjs</th><th>Score</th><th>Drop vs fp32</th></tr></thead><tbody></tbody></table></div></div>
</section></main>
<script type="application/json" id="config">${config}</script>
<script>${SCRIPT}</script></body></html>`;
}
