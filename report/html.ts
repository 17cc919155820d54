/**
 * The report's HTML: one self-contained page (images as data: URIs, charts as inline SVG, one
 * inline style sheet), under a CSP that forbids every request, so that a report mailed around or
 * opened from disk shows the same thing everywhere and can fetch nothing.
 */

/** Text for HTML element content and attribute values. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const pngDataUri = (png: Buffer) => `data:image/png;base64,${png.toString('base64')}`;

/** A table; cells are text unless given as { html }. */
export type Cell = string | number | { html: string };
export function table(id: string, head: string[], rows: Cell[][], caption?: string): string {
  const cell = (c: Cell, tag: string) => `<${tag}>${typeof c === 'object' ? c.html : esc(c)}</${tag}>`;
  return `<div class="wide"><table id="${esc(id)}">${caption ? `<caption>${esc(caption)}</caption>` : ''}<thead><tr>${head.map((h) => cell(h, 'th')).join('')}</tr></thead>`
    + `<tbody>${rows.map((r) => `<tr>${r.map((c) => cell(c, 'td')).join('')}</tr>`).join('')}</tbody></table></div>`;
}

export function figure(id: string, src: string, alt: string, caption: string): string {
  return `<figure><img id="${esc(id)}" src="${esc(src)}" alt="${esc(alt)}"><figcaption>${esc(caption)}</figcaption></figure>`;
}

export interface Section { id: string; title: string; html: string }

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
nav a{margin-right:1rem}table{border-collapse:collapse;margin:.6rem 0;font-size:13px}
th,td{border:1px solid #ccc;padding:.2rem .45rem;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
caption{text-align:left;font-weight:600;padding:.3rem 0}figure{margin:.8rem 0}img{max-width:100%;image-rendering:pixelated}
figcaption{font-size:13px;color:#555}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:.8rem}
.note{color:#555;font-size:13px}.wide{overflow-x:auto}svg{background:#fff;border:1px solid #eee}`;

/** No requests at all: images are data: URIs, the style is inline, there is no script. */
export const REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

export function page(title: string, intro: string, sections: Section[]): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">
<title>${esc(title)}</title><link rel="icon" href="data:,"><style>${STYLE}</style></head>
<body><h1>${esc(title)}</h1>${intro}
<nav>${sections.map((s) => `<a href="#${esc(s.id)}">${esc(s.title)}</a>`).join('')}</nav>
${sections.map((s) => `<section id="${esc(s.id)}"><h2>${esc(s.title)}</h2>${s.html}</section>`).join('\n')}
</body></html>
`;
}
