/**
 * HTML rendering of a trace: one self-contained page (inline style and script, nothing
 * fetched, no fonts downloaded) that shows the threads as columns grouped by kind, the
 * steps as rows with the locks held after each, the notes and kernel log at their steps,
 * the sanitizer reports with their three call paths, and the machine state (VMAs, present
 * entries, IOMMU entries, frames with owners and generations) at the selected step.
 *
 * The page reads only the embedded trace (format `pfnsim-trace`, version 2); a trace of
 * another format or version is shown as a clear message, not rendered.
 */
import { TRACE_FORMAT, TRACE_VERSION, type Trace } from './format.js';
import { VIEWER_CSS } from './html/style.js';
import { VIEWER_JS } from './html/viewer.js';

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * JSON for a `<script type="application/json">` element: `<` is written as `\u003c`, so no
 * string in the trace can close the element or open a comment; U+2028/2029 are escaped too.
 */
export function embedJson(value: unknown): string {
  const json = JSON.stringify(value) ?? 'null';
  return json
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** The page title, from whatever the document holds (it may not be a valid trace). */
function titleOf(trace: unknown): string {
  const t = trace as Partial<Trace> | null;
  if (
    t &&
    t.format === TRACE_FORMAT &&
    t.version === TRACE_VERSION &&
    typeof t.scenario === 'string'
  )
    return `pfnsim trace: ${t.scenario}${t.kernel?.version ? ` on Linux ${t.kernel.version}` : ''}`;
  return 'pfnsim trace viewer';
}

/** Nothing leaves the page: no fetch, no frames, no external scripts, styles or images. */
const CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; " +
  "base-uri 'none'; form-action 'none'";

/**
 * Renders a trace as one self-contained HTML document. Never throws on the trace's
 * content: an unknown format or version becomes a page that says so.
 */
export function renderHtml(trace: Trace): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="generator" content="pfnsim (trace format ${TRACE_FORMAT} v${TRACE_VERSION})">
<title>${escapeHtml(titleOf(trace))}</title>
<style>${VIEWER_CSS}</style>
</head>
<body>
<div id="app"><p style="padding:16px">Loading the trace&hellip;</p></div>
<noscript><p style="padding:16px">This trace viewer needs JavaScript. The trace itself is the JSON in this file's <code>trace-data</code> element; <code>pfnsim</code> can print it as text.</p></noscript>
<script type="application/json" id="trace-data">${embedJson(trace)}</script>
<script>${VIEWER_JS}</script>
</body>
</html>
`;
}
