/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * Shared set-up for the viewer's browser tests: Debian's Chromium driven by playwright-core.
 *
 * The tests are skipped (with a message) only when Chromium is absent and we are not in
 * CI; with CI=true they run, and fail if the browser cannot be launched.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { renderHtml } from '../../src/report/html.js';
import type { Trace } from '../../src/report/format.js';

export const CHROMIUM = process.env.PFNSIM_CHROMIUM ?? '/usr/bin/chromium';
const inCi = process.env.CI === 'true' || process.env.CI === '1';
export const HAVE_BROWSER = existsSync(CHROMIUM) || inCi;
if (!HAVE_BROWSER) {
  console.warn(
    `test/browser: SKIPPED: no Chromium at ${CHROMIUM}. Install it (apt-get install -y chromium) ` +
      'or set PFNSIM_CHROMIUM; with CI=true these tests run and fail instead of skipping.',
  );
}

export function fixture(name: string): Trace {
  const url = new URL(`../fixtures/traces/${name}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as Trace;
}

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true });
}

export interface Opened {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Every URL the page requested. */
  readonly requests: string[];
  /** Uncaught page errors and console errors. */
  readonly errors: string[];
  readonly file: string;
}

/** A temp directory for the written HTML files; removed by `cleanup`. */
let dir: string | undefined;
let n = 0;

export function cleanup(): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
}

/** Writes `html` to a file and opens it via file://, waiting for the viewer to be ready. */
export async function openHtml(
  browser: Browser,
  html: string,
  opts: {
    colorScheme?: 'light' | 'dark';
    width?: number;
    height?: number;
    hash?: string;
    waitReady?: boolean;
  } = {},
): Promise<Opened> {
  dir ??= mkdtempSync(join(tmpdir(), 'pfnsim-viewer-'));
  const file = join(dir, `trace-${n++}.html`);
  writeFileSync(file, html);
  const context = await browser.newContext({
    viewport: { width: opts.width ?? 1400, height: opts.height ?? 900 },
    colorScheme: opts.colorScheme ?? 'light',
  });
  const page = await context.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  // Anything that is not the file itself is refused (and recorded above).
  await context.route('**/*', (route) =>
    route.request().url().startsWith('file:') ? route.continue() : route.abort(),
  );
  await page.goto(pathToFileURL(file).href + (opts.hash ?? ''));
  if (opts.waitReady !== false) await page.waitForSelector('html[data-ready]');
  return { page, context, requests, errors, file };
}

export async function openTrace(
  browser: Browser,
  trace: Trace,
  opts?: Parameters<typeof openHtml>[2],
): Promise<Opened> {
  return openHtml(browser, renderHtml(trace), opts);
}

export interface Pixels {
  readonly width: number;
  readonly height: number;
  /** Distinct colours (each channel quantised to 4 bits). */
  readonly colours: number;
  /** Fraction of pixels that differ from the most common colour (the background). */
  readonly inked: number;
}

/**
 * Decodes a PNG screenshot in the browser (image -> canvas) and measures how much is drawn.
 * Runs in a blank page, so the viewer's content security policy does not apply.
 */
export async function measurePng(browser: Browser, png: Buffer): Promise<Pixels> {
  const page = await browser.newPage();
  try {
    return await page.evaluate(async (b64: string) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext('2d')!;
      ctx.drawImage(img, 0, 0);
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      const counts = new Map<number, number>();
      for (let i = 0; i < data.length; i += 4) {
        const key = ((data[i]! >> 4) << 8) | ((data[i + 1]! >> 4) << 4) | (data[i + 2]! >> 4);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      const total = data.length / 4;
      const most = Math.max(...counts.values());
      return {
        width: canvas.width,
        height: canvas.height,
        colours: counts.size,
        inked: (total - most) / total,
      };
    }, png.toString('base64'));
  } finally {
    await page.close();
  }
}
