/**
 * Debian's Chromium, driven by playwright-core (which downloads no browser of its own). Where none
 * is found the browser tests say so in one line and skip; with I2I_REQUIRE_CHROMIUM=1 (CI) that is
 * a failure instead.
 */
import * as fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

const CANDIDATES = [process.env.I2I_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => Boolean(p));

export function chromiumPath(): string | undefined {
  return CANDIDATES.find((p) => fs.existsSync(p));
}

/** Launches the browser, or skips the suite (mocha's `this`) in one line when there is none. */
export async function launchOrSkip(ctx: Mocha.Context, what: string): Promise<Browser> {
  const exe = chromiumPath();
  if (!exe) {
    if (process.env.I2I_REQUIRE_CHROMIUM === '1') throw new Error('I2I_REQUIRE_CHROMIUM=1 but no Chromium found (apt-get install -y chromium, or set I2I_CHROMIUM)');
    process.stderr.write(`  (no Chromium at ${CANDIDATES.join(', ')}: ${what} skipped; apt-get install chromium)\n`);
    ctx.skip();
  }
  return chromium.launch({ executablePath: exe, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
}

/**
 * What a page did that a test must see: console errors, uncaught exceptions, failed requests and
 * every URL it asked for (to prove it made no external request).
 */
export function watch(page: Page): { errors: string[]; requests: string[] } {
  const w = { errors: [] as string[], requests: [] as string[] };
  page.on('console', (m) => { if (m.type() === 'error') w.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => w.errors.push(`page: ${e.message}`));
  page.on('requestfailed', (r) => w.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`));
  page.on('request', (r) => w.requests.push(r.url()));
  return w;
}

// Browser-side code is passed as strings: the project's TypeScript has no DOM types (it runs on Node).
// Waits poll page.evaluate from here: Playwright's waitForFunction evaluates strings with eval inside
// the page, which the page's own Content-Security-Policy rightly forbids.

/** Polls `expression` in the page until it is truthy. */
export async function until(page: Page, expression: string, timeout = 15000): Promise<void> {
  for (const t0 = Date.now(); !(await page.evaluate(expression));) {
    if (Date.now() - t0 > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${expression}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Images on the page that did not decode (naturalWidth 0), by their id or src. */
export async function undecodedImages(page: Page, selector = 'img'): Promise<string[]> {
  return page.evaluate(`[...document.querySelectorAll(${JSON.stringify(selector)})].filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.id || i.src.slice(0, 80))`);
}

/** Waits until the image at `selector` has decoded; its natural [width, height]. */
export async function decodedSize(page: Page, selector: string, timeout = 15000): Promise<[number, number]> {
  const sel = JSON.stringify(selector);
  await until(page, `(() => { const i = document.querySelector(${sel}); return Boolean(i && i.complete && i.naturalWidth > 0); })()`, timeout);
  return page.evaluate(`(() => { const i = document.querySelector(${sel}); return [i.naturalWidth, i.naturalHeight]; })()`);
}

/** The cells of a table body's rows, as text. */
export function tableRows(page: Page, selector: string): Promise<string[][]> {
  return page.evaluate(`[...document.querySelectorAll(${JSON.stringify(selector + ' tbody tr')})].map((r) => [...r.cells].map((c) => c.textContent))`);
}

/** Waits until the text of `selector` matches `re`. */
export async function textMatching(page: Page, selector: string, re: RegExp, timeout = 15000): Promise<string> {
  await until(page, `new RegExp(${JSON.stringify(re.source)}).test(document.querySelector(${JSON.stringify(selector)})?.textContent ?? '')`, timeout);
  return (await page.locator(selector).first().textContent()) ?? '';
}
