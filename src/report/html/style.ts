/**
 * The trace viewer's stylesheet, inlined into the page by renderHtml. System fonts only
 * (no downloads); light and dark palettes follow the system unless the page's theme
 * button picks one.
 */
export const VIEWER_CSS = String.raw`
:root {
  color-scheme: light dark;
  --bg: #ffffff;
  --fg: #1b1f24;
  --muted: #57606a;
  --border: #d0d7de;
  --panel: #f6f8fa;
  --accent: #0550ae;
  --accent-bg: #ddf4ff;
  --sel: #cfe6ff;
  --sel-border: #0969da;
  --danger: #b3141f;
  --danger-bg: #ffebe9;
  --warn: #7d4e00;
  --warn-bg: #fff4c5;
  --ok: #116329;
  --ok-bg: #dafbe1;
  --lane: #d8dee4;
  --k-cpu: #0969da;
  --k-kthread: #1b7c83;
  --k-driver: #8250df;
  --k-dma: #bc4c00;
  --k-iommu: #1a7f37;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace;
}
:root[data-theme='dark'] {
  color-scheme: dark;
  --bg: #0d1117;
  --fg: #e6edf3;
  --muted: #9198a1;
  --border: #3d444d;
  --panel: #151b23;
  --accent: #79b8ff;
  --accent-bg: #12263f;
  --sel: #1c3a5e;
  --sel-border: #4493f8;
  --danger: #ff8e86;
  --danger-bg: #3d1519;
  --warn: #e3b341;
  --warn-bg: #3a2d05;
  --ok: #56d364;
  --ok-bg: #10321b;
  --lane: #30363d;
  --k-cpu: #58a6ff;
  --k-kthread: #39c5cf;
  --k-driver: #bc8cff;
  --k-dma: #f0883e;
  --k-iommu: #56d364;
}
:root[data-theme='light'] { color-scheme: light; }
@media (prefers-color-scheme: dark) {
  :root:not([data-theme='light']) {
    --bg: #0d1117;
    --fg: #e6edf3;
    --muted: #9198a1;
    --border: #3d444d;
    --panel: #151b23;
    --accent: #79b8ff;
    --accent-bg: #12263f;
    --sel: #1c3a5e;
    --sel-border: #4493f8;
    --danger: #ff8e86;
    --danger-bg: #3d1519;
    --warn: #e3b341;
    --warn-bg: #3a2d05;
    --ok: #56d364;
    --ok-bg: #10321b;
    --lane: #30363d;
    --k-cpu: #58a6ff;
    --k-kthread: #39c5cf;
    --k-driver: #bc8cff;
    --k-dma: #f0883e;
    --k-iommu: #56d364;
  }
}
* { box-sizing: border-box; }
html, body { height: 100%; margin: 0; }
body {
  display: flex;
  flex-direction: column;
  background: var(--bg);
  color: var(--fg);
  font: 14px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'DejaVu Sans', sans-serif;
}
#app { display: flex; flex-direction: column; flex: 1; min-height: 0; }
a { color: var(--accent); }
code, pre, .mono { font-family: var(--mono); font-size: 12.5px; }
button {
  font: inherit;
  color: inherit;
  background: var(--panel);
  border: 1px solid var(--border);
  border-radius: 4px;
  padding: 1px 6px;
  cursor: pointer;
}
button:hover { border-color: var(--sel-border); }
:focus-visible { outline: 2px solid var(--sel-border); outline-offset: 1px; }
.sr-only {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
header.top {
  flex: none;
  padding: 8px 16px;
  border-bottom: 1px solid var(--border);
  background: var(--panel);
}
header.top h1 { font-size: 18px; margin: 0 0 4px; display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
header.top h1 .scenario { font-family: var(--mono); font-size: 17px; }
.meta { display: flex; flex-wrap: wrap; gap: 4px 20px; margin: 0; }
.meta div { display: flex; gap: 6px; align-items: baseline; min-width: 0; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
.verdict { font-weight: 600; padding: 0 6px; border-radius: 4px; font-family: var(--mono); }
.verdict.safe { color: var(--ok); background: var(--ok-bg); }
.verdict.bad { color: var(--danger); background: var(--danger-bg); }
.verdict.none { color: var(--muted); }
.toolbar { display: flex; gap: 10px; align-items: center; margin-top: 4px; color: var(--muted); font-size: 12.5px; flex-wrap: wrap; }
kbd { font-family: var(--mono); font-size: 11px; border: 1px solid var(--border); border-bottom-width: 2px; border-radius: 3px; padding: 0 3px; background: var(--bg); color: var(--fg); }
.run-error { margin-top: 4px; color: var(--danger); font-family: var(--mono); }
details.config summary { cursor: pointer; color: var(--muted); }
details.config ul { columns: 3 16em; margin: 4px 0; padding-left: 18px; font-family: var(--mono); font-size: 12px; }
main.viewer {
  flex: 1;
  min-height: 0;
  display: grid;
  grid-template-columns: minmax(0, 1fr) minmax(330px, 33%);
  grid-template-rows: minmax(0, 1fr);
}
#timeline-pane { overflow: auto; min-height: 0; position: relative; overflow-anchor: none; }
#side { min-height: 0; position: relative; border-left: 1px solid var(--border); display: flex; flex-direction: column; }
#reports { flex: none; max-height: 50%; overflow: auto; padding: 4px 14px 8px; border-bottom: 1px solid var(--border); position: relative; }
#state-pane { flex: 1; min-height: 0; overflow: auto; padding: 0 14px 24px; position: relative; }
details.report-text summary { cursor: pointer; font-weight: 600; font-size: 13px; margin-top: 6px; }
table { border-collapse: separate; border-spacing: 0; }
#timeline { min-width: 100%; }
#timeline thead { position: sticky; top: 0; z-index: 3; }
#timeline th {
  background: var(--panel);
  text-align: left;
  font-weight: 600;
  padding: 3px 8px;
  border-bottom: 1px solid var(--border);
  white-space: nowrap;
}
#timeline tr.groups th.group { text-align: center; color: var(--muted); font-weight: 500; font-size: 12px; border-left: 1px solid var(--border); }
#timeline th.lane { border-top: 3px solid var(--kc, var(--border)); font-family: var(--mono); min-width: 9.5em; white-space: normal; overflow-wrap: anywhere; }
#timeline th .kindlabel { display: block; font-family: inherit; font-weight: 400; font-size: 11px; color: var(--muted); }
.kind-cpu { --kc: var(--k-cpu); }
.kind-kthread { --kc: var(--k-kthread); }
.kind-driver { --kc: var(--k-driver); }
.kind-dma { --kc: var(--k-dma); }
.kind-iommu { --kc: var(--k-iommu); }
#timeline td { vertical-align: top; padding: 2px 8px; border-bottom: 1px solid transparent; }
#timeline td.lane {
  min-width: 9.5em;
  padding: 2px 5px;
  background-image: linear-gradient(var(--lane), var(--lane));
  background-size: 2px 100%;
  background-position: 14px 0;
  background-repeat: no-repeat;
}
#timeline tr.step { cursor: pointer; }
#timeline tr.step:hover td { background-color: var(--accent-bg); }
#timeline tr.step.selected td { background-color: var(--sel); }
#timeline tr.step.selected td:first-child { box-shadow: inset 4px 0 0 var(--sel-border); }
#timeline tr.step.has-report td:first-child { box-shadow: inset 4px 0 0 var(--danger); }
#timeline tr.step.selected.has-report td:first-child { box-shadow: inset 4px 0 0 var(--sel-border), inset 7px 0 0 var(--danger); }
#timeline .stepno, #timeline .marks { width: 1%; }
td.stepno { text-align: right; white-space: nowrap; }
button.stepbtn { font-family: var(--mono); min-width: 3.2em; text-align: right; background: transparent; border-color: transparent; }
tr.selected button.stepbtn { font-weight: 700; }
td.marks { white-space: nowrap; }
button.report-mark {
  color: var(--danger);
  background: var(--danger-bg);
  border-color: var(--danger);
  font-family: var(--mono);
  font-size: 12px;
  font-weight: 600;
}
button.report-mark[aria-pressed='true'] { outline: 2px solid var(--danger); outline-offset: 1px; }
.site-chip { display: inline-block; font-size: 11px; font-family: var(--mono); padding: 0 4px; border-radius: 3px; margin-left: 3px; border: 1px solid currentColor; }
.site-chip.obtained { color: var(--accent); }
.site-chip.ended { color: var(--warn); }
.site-chip.used { color: var(--danger); }
.op {
  position: relative;
  background: var(--bg);
  border: 1px solid var(--border);
  border-left: 4px solid var(--kc, var(--border));
  border-radius: 4px;
  padding: 1px 5px 2px;
  margin: 1px 0;
  overflow-wrap: anywhere;
}
tr.selected .op { border-color: var(--sel-border); border-left-color: var(--kc, var(--sel-border)); }
.op .what { font-family: var(--mono); font-weight: 600; }
.op .kind { display: inline-block; white-space: nowrap; overflow-wrap: normal; font-size: 10.5px; color: var(--muted); margin-left: 4px; text-transform: uppercase; letter-spacing: 0.03em; }
.op .kind.k-acquire { color: var(--accent); }
.op .kind.k-release { color: var(--ok); }
.op .kind.k-write { color: var(--warn); }
.op .obj { font-family: var(--mono); font-size: 12px; overflow-wrap: anywhere; }
.op .held { font-size: 11.5px; color: var(--muted); overflow-wrap: anywhere; }
.op .held b { font-weight: 600; color: var(--fg); }
td.setup-cell { color: var(--muted); font-style: italic; }
tr.annot td { padding-top: 0; padding-bottom: 2px; }
tr.annot td.annot-body { background: transparent; }
.annot-inner { position: sticky; left: var(--annot-left, 0); max-width: var(--annot-w, 60vw); }
.note { font-size: 12.5px; padding: 1px 6px; border-left: 3px solid var(--accent); margin: 1px 0; background: var(--accent-bg); border-radius: 0 3px 3px 0; }
.note .who { font-family: var(--mono); font-weight: 600; margin-right: 6px; }
pre.klog { margin: 1px 0; padding: 2px 6px; background: var(--panel); border-left: 3px solid var(--muted); white-space: pre-wrap; overflow-wrap: anywhere; }
pre.klog .l-err { color: var(--danger); }
pre.klog .l-warn { color: var(--warn); }
pre.klog .ts { color: var(--muted); }
#side h2 { font-size: 15px; margin: 14px 0 6px; border-bottom: 1px solid var(--border); padding-bottom: 2px; }
#side h2:first-child { margin-top: 4px; }
#side h3 { font-size: 13.5px; margin: 10px 0 4px; }
#side h4 { font-size: 13px; margin: 8px 0 3px; }
#side table { width: 100%; font-size: 12.5px; margin-bottom: 4px; }
#side th, #side td { text-align: left; padding: 1px 6px; border-bottom: 1px solid var(--border); vertical-align: top; }
#side th { color: var(--muted); font-weight: 600; }
#side td.num, #side td.mono { font-family: var(--mono); white-space: nowrap; }
#side td.flags { font-family: var(--mono); font-size: 11px; }
.muted { color: var(--muted); }
.empty { color: var(--muted); font-style: italic; margin: 2px 0; }
tr.stale td { background: var(--danger-bg); color: var(--danger); }
tr.stale td:first-child { box-shadow: inset 3px 0 0 var(--danger); }
tr.changed td:first-child { box-shadow: inset 3px 0 0 var(--warn); }
.badge { display: inline-block; font-size: 11px; padding: 0 5px; border-radius: 3px; border: 1px solid currentColor; margin-left: 4px; white-space: nowrap; font-family: system-ui, sans-serif; }
.badge.stale { color: var(--danger); background: var(--danger-bg); }
.badge.changed { color: var(--warn); background: var(--warn-bg); }
.stepinfo dl { display: grid; grid-template-columns: max-content 1fr; gap: 1px 10px; margin: 0; }
.stepinfo dt { color: var(--muted); }
.stepinfo dd { margin: 0; font-family: var(--mono); font-size: 12.5px; overflow-wrap: anywhere; }
.snapinfo { color: var(--muted); margin: 2px 0 6px; }
ul.reportlist { list-style: none; padding: 0; margin: 0; display: flex; flex-direction: column; gap: 3px; }
ul.reportlist button { width: 100%; text-align: left; }
ul.reportlist button[aria-pressed='true'] { border-color: var(--danger); background: var(--danger-bg); }
.report-detail { border: 1px solid var(--danger); border-radius: 6px; padding: 4px 10px 8px; margin-top: 6px; background: var(--bg); }
.report-detail h3 { color: var(--danger); font-family: var(--mono); margin-top: 2px; }
.sites { display: grid; gap: 6px; }
.site { border-left: 3px solid var(--muted); padding-left: 8px; }
.site.obtained { border-left-color: var(--accent); }
.site.ended { border-left-color: var(--warn); }
.site.used { border-left-color: var(--danger); }
.site .label { font-weight: 600; margin-right: 6px; }
ol.callpath { margin: 2px 0 0; padding-left: 22px; font-family: var(--mono); font-size: 12px; }
pre.report-text { white-space: pre-wrap; overflow-wrap: anywhere; background: var(--panel); padding: 4px 6px; border-radius: 4px; margin: 4px 0; }
.fatal { margin: 40px auto; max-width: 46em; padding: 16px 20px; border: 2px solid var(--danger); border-radius: 8px; background: var(--danger-bg); color: var(--fg); }
.fatal h1 { font-size: 20px; margin: 0 0 8px; color: var(--danger); }
@media (max-width: 900px) {
  main.viewer { grid-template-columns: minmax(0, 1fr); grid-template-rows: minmax(0, 3fr) minmax(0, 2fr); }
  #side { border-left: 0; border-top: 1px solid var(--border); }
}
`;
