/**
 * The HTML document renderHtml writes, checked without a browser (the viewer's behaviour
 * is tested in Chromium under test/browser/).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { embedJson, escapeHtml, renderHtml } from './html.js';
import { VIEWER_JS } from './html/viewer.js';
import { VIEWER_CSS } from './html/style.js';
import { TRACE_FORMAT, TRACE_VERSION, type Trace } from './format.js';

const fixture = (): Trace =>
  JSON.parse(
    readFileSync(
      new URL('../../test/fixtures/traces/vfio-follow-pfnmap-zap.json', import.meta.url),
      'utf8',
    ),
  ) as Trace;

/** The text of the one `<script type="application/json" id="trace-data">` element. */
function embedded(html: string): string {
  const m = /<script type="application\/json" id="trace-data">([\s\S]*?)<\/script>/.exec(html);
  if (!m) throw new Error('no trace-data element');
  return m[1]!;
}

describe('embedJson', () => {
  it('writes < as \\u003c so no string can close the script element, and round-trips', () => {
    const v = { s: '</script><!-- <b>', t: 'line\u2028sep\u2029' };
    const out = embedJson(v);
    expect(out).not.toMatch(/</);
    expect(out).not.toMatch(/[\u2028\u2029]/);
    expect(JSON.parse(out)).toEqual(v);
  });
  it('writes null for undefined', () => {
    expect(embedJson(undefined)).toBe('null');
  });
});

describe('escapeHtml', () => {
  it('escapes the five markup characters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe(
      '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;',
    );
  });
});

describe('renderHtml', () => {
  it('embeds the trace unchanged, once', () => {
    const t = fixture();
    const html = renderHtml(t);
    expect(JSON.parse(embedded(html))).toEqual(t);
    expect(html.match(/id="trace-data"/g)).toHaveLength(1);
  });

  it('is self-contained: no URL outside the page, a policy that forbids fetching', () => {
    const html = renderHtml(fixture());
    expect(html).not.toMatch(/\b(?:https?:)?\/\/[a-z0-9]/i);
    expect(html).not.toMatch(/<link\b|<img\b|<iframe\b|@import|url\(/i);
    expect(html).not.toMatch(/<script[^>]*\bsrc=/i);
    expect(html).toContain(`content="default-src 'none';`);
    // Exactly two scripts: the data and the viewer.
    expect(html.match(/<script\b/g)).toHaveLength(2);
  });

  it('a hostile trace string cannot end the data element or inject markup in the title', () => {
    const t = { ...fixture(), scenario: '</script><script>alert(1)</script>' };
    const html = renderHtml(t);
    expect(html.match(/<script\b/g)).toHaveLength(2);
    expect(JSON.parse(embedded(html)).scenario).toBe(t.scenario);
    expect(html).toContain(
      '<title>pfnsim trace: &#60;/script&#62;&#60;script&#62;alert(1)&#60;/script&#62; on Linux 6.12</title>',
    );
  });

  it('does not throw on a document of another version; the page shows the problem', () => {
    const doc = { ...fixture(), version: 3 } as unknown as Trace;
    const html = renderHtml(doc);
    expect(html).toContain('<title>pfnsim trace viewer</title>');
    expect(JSON.parse(embedded(html)).version).toBe(3);
    expect(() => renderHtml(null as unknown as Trace)).not.toThrow();
  });
});

describe('viewer assets', () => {
  it('the script parses as JavaScript and cannot close its element', () => {
    expect(() => new Function(VIEWER_JS)).not.toThrow();
    expect(VIEWER_JS).not.toMatch(/<\/script|<!--/i);
    expect(VIEWER_CSS).not.toMatch(/<\/style/i);
  });
  it('the script checks for the format and version this module writes', () => {
    expect(VIEWER_JS).toContain(`var FORMAT = "${TRACE_FORMAT}";`);
    expect(VIEWER_JS).toContain(`var VERSION = ${TRACE_VERSION};`);
  });
});
