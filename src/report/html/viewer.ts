/**
 * The trace viewer's script, inlined into the page by renderHtml. Plain browser
 * JavaScript kept as a string (no build step, no modules, nothing fetched). It reads the
 * trace from the page's `<script type="application/json" id="trace-data">`, checks that it
 * is `pfnsim-trace` version 2, and builds the page with DOM calls (trace text is only ever
 * set as text, never parsed as HTML).
 *
 * The script must not contain a backtick, a closing script tag or a dollar-brace other than
 * the two that insert the format and version it reads.
 */
import { TRACE_FORMAT, TRACE_VERSION } from '../format.js';

export const VIEWER_JS = String.raw`
(function () {
  'use strict';
  var FORMAT = ${JSON.stringify(TRACE_FORMAT)};
  var VERSION = ${JSON.stringify(TRACE_VERSION)};
  var GROUPS = [
    { kind: 'cpu', label: 'CPU threads', one: 'CPU thread' },
    { kind: 'kthread', label: 'Kernel threads', one: 'kernel thread' },
    { kind: 'driver', label: 'Drivers', one: 'driver' },
    { kind: 'dma', label: 'DMA engines', one: 'DMA engine' },
    { kind: 'iommu', label: 'IOMMU', one: 'IOMMU' }
  ];
  var LEVELS = ['EMERG', 'ALERT', 'CRIT', 'ERR', 'WARNING', 'NOTICE', 'INFO', 'DEBUG'];
  var SITES = [
    { key: 'obtained', label: 'Obtained', verb: 'pfn obtained' },
    { key: 'ended', label: 'Ended', verb: 'guarantee ended' },
    { key: 'used', label: 'Used', verb: 'pfn used' }
  ];

  var app = document.getElementById('app');

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  /** Appends children: nodes, text, nested lists; null/undefined/false are skipped. */
  function add(el) {
    for (var j = 1; j < arguments.length; j++) {
      var c = arguments[j];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) {
        for (var i = 0; i < c.length; i++) add(el, c[i]);
        continue;
      }
      el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
  }
  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }
  function hex(n) {
    return typeof n === 'number' && isFinite(n) ? '0x' + n.toString(16) : String(n);
  }
  function describe(v) {
    if (v === undefined) return 'missing';
    if (v === null) return 'null';
    if (Array.isArray(v)) return 'a list';
    return JSON.stringify(v);
  }

  /** Why the embedded data cannot be shown, or null. */
  function traceProblem(t) {
    if (t === null || typeof t !== 'object' || Array.isArray(t))
      return 'The embedded data is not a pfnsim trace: expected a JSON object, found ' + describe(t) + '.';
    if (t.format !== FORMAT)
      return 'The embedded data is not a pfnsim trace: its "format" is ' + describe(t.format) +
        ', this viewer reads "' + FORMAT + '".';
    if (t.version !== VERSION)
      return 'This trace is ' + FORMAT + ' version ' + describe(t.version) + '; this viewer reads version ' +
        VERSION + ' only. Write the trace again with this pfnsim (pfnsim run ... --html), or open it ' +
        'with the pfnsim release that wrote it.';
    var lists = ['threads', 'schedule', 'steps', 'log', 'notes', 'reports', 'snapshots'];
    for (var i = 0; i < lists.length; i++)
      if (!Array.isArray(t[lists[i]]))
        return 'This ' + FORMAT + ' version ' + VERSION + ' trace is incomplete: "' + lists[i] +
          '" is ' + describe(t[lists[i]]) + ', expected a list.';
    if (typeof t.scenario !== 'string')
      return 'This ' + FORMAT + ' version ' + VERSION + ' trace is incomplete: "scenario" is ' + describe(t.scenario) + '.';
    if (!t.kernel || typeof t.kernel.version !== 'string')
      return 'This ' + FORMAT + ' version ' + VERSION + ' trace is incomplete: "kernel.version" is missing.';
    for (var j = 0; j < t.steps.length; j++) {
      var s = t.steps[j];
      if (!s || typeof s.index !== 'number' || typeof s.thread !== 'string')
        return 'This ' + FORMAT + ' version ' + VERSION + ' trace has a malformed step at position ' + j + '.';
    }
    return null;
  }

  function fatal(message) {
    clear(app);
    document.title = 'pfnsim trace viewer: cannot show this trace';
    add(app, h('div', { class: 'fatal', role: 'alert', id: 'fatal' },
      h('h1', null, 'Cannot show this trace'),
      h('p', null, message)));
    document.documentElement.setAttribute('data-ready', 'error');
  }

  var trace;
  try {
    trace = JSON.parse(document.getElementById('trace-data').textContent);
  } catch (e) {
    fatal('The embedded trace is not valid JSON: ' + (e && e.message ? e.message : String(e)) + '.');
    return;
  }
  var problem = traceProblem(trace);
  if (problem) {
    fatal(problem);
    return;
  }

  // ---- the model of the page ------------------------------------------------------------

  var threads = trace.threads.slice();
  var knownTid = {};
  threads.forEach(function (th) { knownTid[th.tid] = true; });
  trace.steps.forEach(function (s) {
    if (!knownTid[s.tid]) {
      knownTid[s.tid] = true;
      threads.push({ tid: s.tid, name: s.thread, kind: 'cpu' });
    }
  });
  var groups = GROUPS.map(function (g) {
    return { kind: g.kind, label: g.label, one: g.one, threads: threads.filter(function (th) { return (th.kind || 'cpu') === g.kind; }) };
  });
  var other = threads.filter(function (th) {
    return !GROUPS.some(function (g) { return g.kind === (th.kind || 'cpu'); });
  });
  groups.push({ kind: 'other', label: 'Other', one: 'thread', threads: other });
  groups = groups.filter(function (g) { return g.threads.length > 0; });
  var lanes = [];
  groups.forEach(function (g) { g.threads.forEach(function (th) { lanes.push({ thread: th, group: g }); }); });
  var laneOfTid = {};
  lanes.forEach(function (l, i) { laneOfTid[l.thread.tid] = i; });
  var kindOfName = {};
  threads.forEach(function (th) { kindOfName[th.name] = th.kind || 'cpu'; });

  // Rows: the setup row (step -1), then every step.
  var rows = [{ step: -1, rec: null }];
  trace.steps.forEach(function (s) { rows.push({ step: s.index, rec: s }); });
  var rowOfStep = {};
  rows.forEach(function (r, i) { rowOfStep[r.step] = i; });
  function rowFor(step) {
    if (rowOfStep[step] !== undefined) return rowOfStep[step];
    // A step past the last recorded one (or before setup) goes to the nearest row.
    return step < 0 ? 0 : rows.length - 1;
  }
  function byStep(list) {
    var m = {};
    list.forEach(function (x, i) {
      var k = typeof x.step === 'number' ? x.step : -1;
      (m[k] = m[k] || []).push(i);
    });
    return m;
  }
  var notesAt = byStep(trace.notes);
  var logAt = byStep(trace.log);
  var reportsAt = byStep(trace.reports);
  var snapshots = trace.snapshots.slice().sort(function (a, b) { return a.step - b.step; });

  var selRow = -1;
  var selReport = -1;
  var rowEls = [];

  // ---- header -------------------------------------------------------------------------

  function verdictBadge() {
    var v = trace.verdict;
    if (typeof v !== 'string' || v === '')
      return h('span', { class: 'verdict none', id: 'verdict' }, 'not recorded');
    return h('span', { class: 'verdict ' + (v === 'SAFE' ? 'safe' : 'bad'), id: 'verdict' }, v);
  }
  function metaItem(label, value, id) {
    return h('div', null, h('dt', null, label), h('dd', id ? { id: id } : null, value));
  }
  var themes = ['auto', 'light', 'dark'];
  var theme = 0;
  function themeLabel() {
    return 'Theme: ' + themes[theme] + (theme === 0 ? ' (follows the system)' : '');
  }
  var themeBtn = h('button', {
    type: 'button', id: 'theme',
    onclick: function () {
      theme = (theme + 1) % themes.length;
      if (theme === 0) document.documentElement.removeAttribute('data-theme');
      else document.documentElement.setAttribute('data-theme', themes[theme]);
      themeBtn.textContent = themeLabel();
    }
  }, themeLabel());

  function copyButton(text, what) {
    var b = h('button', { type: 'button', 'aria-label': 'Copy the ' + what }, 'Copy');
    b.addEventListener('click', function () {
      var done = function () { b.textContent = 'Copied'; };
      try {
        navigator.clipboard.writeText(text).then(done, function () { b.textContent = 'Select and copy'; });
      } catch (e) {
        b.textContent = 'Select and copy';
      }
    });
    return b;
  }

  var schedule = trace.schedule.join(trace.schedule.some(function (x) { return x > 9; }) ? ',' : '');
  var configKeys = Object.keys(trace.kernel.config || {}).sort();
  var header = h('header', { class: 'top' },
    h('h1', null, h('span', null, 'pfnsim trace'), h('span', { class: 'scenario', id: 'scenario' }, trace.scenario)),
    h('dl', { class: 'meta' },
      metaItem('Kernel', 'Linux ' + trace.kernel.version, 'kernel'),
      h('div', null, h('dt', null, 'Verdict'), h('dd', null, verdictBadge())),
      metaItem('Status', String(trace.status), 'status'),
      metaItem('Steps', String(trace.steps.length), 'nsteps'),
      metaItem('Schedule', h('code', { id: 'schedule' }, schedule || '(default)')),
      trace.replay ? h('div', null, h('dt', null, 'Replay'),
        h('dd', null, h('code', { id: 'replay' }, trace.replay), ' ', copyButton(trace.replay, 'replay command'))) : null),
    trace.error ? h('div', { class: 'run-error', role: 'note', id: 'run-error' }, 'Run ended: ' + trace.error) : null,
    h('div', { class: 'toolbar' },
      h('span', { id: 'keys-help' }, 'Keys: ', h('kbd', null, '\u2193'), '/', h('kbd', null, 'j'), ' next step, ',
        h('kbd', null, '\u2191'), '/', h('kbd', null, 'k'), ' previous, ', h('kbd', null, 'Home'), '/',
        h('kbd', null, 'End'), ' first/last, ', h('kbd', null, 'n'), '/', h('kbd', null, 'p'), ' next/previous report'),
      themeBtn,
      configKeys.length ? h('details', { class: 'config' },
        h('summary', null, 'Kernel config (' + configKeys.length + ' options)'),
        h('ul', null, configKeys.map(function (k) {
          var v = trace.kernel.config[k];
          return h('li', null, k + '=' + (v === true ? 'y' : v === false ? 'n' : String(v)));
        }))) : null));

  // ---- timeline -----------------------------------------------------------------------

  function threadLabel(name) {
    var k = kindOfName[name];
    var g = GROUPS.filter(function (x) { return x.kind === k; })[0];
    return g ? name + ' (' + g.one + ')' : name;
  }
  function opText(s) {
    return (s.what ? s.what + ' ' : '') + s.kind + (s.shared ? ' (shared)' : '') + ' ' + s.obj;
  }
  function heldList(held) {
    return held && held.length ? held.join(', ') : 'no locks';
  }

  var nLanes = lanes.length;
  var groupRow = h('tr', { class: 'groups' },
    h('th', { scope: 'col', rowspan: 2, class: 'stepno' }, 'Step'),
    h('th', { scope: 'col', rowspan: 2, class: 'marks' }, 'Reports'),
    groups.map(function (g) {
      return h('th', { scope: 'colgroup', colspan: g.threads.length, class: 'group kind-' + g.kind, 'data-group': g.kind }, g.label);
    }));
  var laneRow = h('tr', { class: 'lanes' }, lanes.map(function (l) {
    return h('th', {
      scope: 'col', class: 'lane kind-' + l.group.kind, 'data-tid': l.thread.tid, 'data-kind': l.group.kind,
      title: l.group.one + ' ' + l.thread.name + ' (tid ' + l.thread.tid + ')'
    }, l.thread.name, h('span', { class: 'kindlabel' }, l.group.one + ' \u00b7 tid ' + l.thread.tid));
  }));

  function markButtons(step) {
    var ids = reportsAt[step] || [];
    return ids.map(function (ri) {
      var r = trace.reports[ri];
      return h('button', {
        type: 'button', class: 'report-mark', 'data-report': ri, 'aria-pressed': 'false',
        'aria-label': 'Report: ' + (r.title || r.code) + ' at step ' + r.step + '; show it',
        onclick: function (ev) { ev.stopPropagation(); selectReport(ri); }
      }, '\u26a0 ' + r.code);
    });
  }

  function annotationRow(ri, step) {
    var notes = (notesAt[step] || []).map(function (i) {
      var n = trace.notes[i];
      return h('div', { class: 'note' }, h('span', { class: 'who' }, n.thread), n.text);
    });
    var logs = (logAt[step] || []).map(function (i) { return trace.log[i]; });
    if (!notes.length && !logs.length) return null;
    var body = h('td', { colspan: nLanes, class: 'annot-body' }, h('div', { class: 'annot-inner' }, notes,
      logs.length ? h('pre', { class: 'klog', 'aria-label': 'Kernel log at ' + (step < 0 ? 'setup' : 'step ' + step) },
        logs.map(function (l, i) {
          var us = Math.floor((l.ns || 0) / 1000);
          var ts = '[' + String(Math.floor(us / 1e6)).padStart(5, ' ') + '.' + String(us % 1e6).padStart(6, '0') + '] ';
          var cls = l.level <= 3 ? 'l-err' : l.level === 4 ? 'l-warn' : '';
          return h('span', { class: cls, title: 'KERN_' + (LEVELS[l.level] || l.level) + ' from ' + l.thread },
            h('span', { class: 'ts' }, ts), l.text, i < logs.length - 1 ? '\n' : '');
        })) : null));
    return h('tr', { class: 'annot', 'data-owner': step, onclick: function () { selectRow(ri, true); } },
      h('td', null), h('td', null), body);
  }

  var tbody = h('tbody', null);
  rows.forEach(function (r, ri) {
    var s = r.rec;
    var label = s ? 'Step ' + s.index + ', ' + threadLabel(s.thread) + ': ' + opText(s) : 'Setup, before the first step';
    var cells = [
      h('td', { class: 'stepno' }, h('button', {
        type: 'button', class: 'stepbtn', 'aria-label': label,
        onclick: function (ev) { ev.stopPropagation(); selectRow(ri, true); }
      }, s ? String(s.index) : 'setup')),
      h('td', { class: 'marks' }, markButtons(r.step))
    ];
    if (!s) {
      cells.push(h('td', { colspan: nLanes, class: 'setup-cell' }, 'Setup: the machine and the scenario before the first step'));
    } else {
      var lane = laneOfTid[s.tid];
      for (var i = 0; i < nLanes; i++) {
        if (i !== lane) {
          cells.push(h('td', { class: 'lane kind-' + lanes[i].group.kind }));
          continue;
        }
        cells.push(h('td', { class: 'lane active kind-' + lanes[i].group.kind, 'data-tid': s.tid },
          h('div', { class: 'op' },
            h('div', null, h('span', { class: 'what' }, s.what || s.kind),
              h('span', { class: 'kind k-' + s.kind }, s.kind + (s.shared ? ' shared' : ''))),
            h('div', { class: 'obj' }, s.obj),
            s.held ? h('div', { class: 'held' }, s.held.length ? [h('b', null, 'holds '), s.held.join(', ')] : 'holds no locks') : null)));
      }
    }
    var tr = h('tr', {
      class: 'step' + ((reportsAt[r.step] || []).length ? ' has-report' : ''),
      id: 'step-' + r.step, 'data-step': r.step, 'data-row': ri,
      onclick: function () { selectRow(ri, true); }
    }, cells);
    rowEls.push(tr);
    add(tbody, tr);
    add(tbody, annotationRow(ri, r.step));
  });
  var table = h('table', { id: 'timeline', 'aria-label': 'Timeline: one row per step, one column per thread' },
    h('thead', null, groupRow, laneRow), tbody);
  var timelinePane = h('section', { id: 'timeline-pane', 'aria-label': 'Timeline', tabindex: '-1' }, table);

  // ---- side panel ---------------------------------------------------------------------

  var live = h('div', { class: 'sr-only', role: 'status', 'aria-live': 'polite', id: 'live' });
  var reportsBox = h('section', { id: 'reports', 'aria-label': 'Sanitizer reports' });
  var stepBox = h('section', { id: 'stepinfo', class: 'stepinfo', 'aria-label': 'Selected step' });
  var stateBox = h('section', { id: 'state', 'aria-label': 'Machine state at the selected step' });
  var side = h('aside', { id: 'side', 'aria-label': 'Details' }, reportsBox,
    h('div', { id: 'state-pane' }, stepBox, stateBox), live);

  function stepLink(step, text, site) {
    return h('a', {
      href: '#step=' + step, class: 'site-link', 'data-step': step, 'data-site': site || null,
      onclick: function (ev) { ev.preventDefault(); selectRow(rowFor(step), true); }
    }, text);
  }
  function stepName(step) {
    return step < 0 ? 'setup' : 'step ' + step;
  }

  function renderReports() {
    clear(reportsBox);
    add(reportsBox, h('h2', null, 'Reports (' + trace.reports.length + ')'));
    if (!trace.reports.length) {
      add(reportsBox, h('p', { class: 'empty' }, 'No sanitizer reports in this run.'));
      return;
    }
    add(reportsBox, h('ul', { class: 'reportlist' }, trace.reports.map(function (r, i) {
      return h('li', null, h('button', {
        type: 'button', 'data-report': i, 'aria-pressed': String(i === selReport),
        onclick: function () { selectReport(i === selReport ? -1 : i); }
      }, (r.title || r.code) + ' \u00b7 ' + stepName(r.step) + ' \u00b7 pfn ' + hex(r.pfn)));
    })));
    if (selReport < 0) return;
    var r = trace.reports[selReport];
    var detail = h('div', { class: 'report-detail', id: 'report-detail', role: 'region', 'aria-label': 'Report ' + r.code },
      h('h3', null, r.title || r.code),
      h('div', { class: 'stepinfo' }, h('dl', null,
        h('dt', null, 'code'), h('dd', null, r.code),
        h('dt', null, 'pfn'), h('dd', null, hex(r.pfn)),
        h('dt', null, 'thread'), h('dd', null, r.thread),
        h('dt', null, 'at'), h('dd', null, stepLink(r.step, stepName(r.step))))),
      h('h4', null, 'Call paths'),
      h('div', { class: 'sites' }, SITES.map(function (def) {
        var site = r[def.key];
        if (!site) {
          return h('div', { class: 'site ' + def.key, 'data-site': def.key },
            h('span', { class: 'label' }, def.label), h('span', { class: 'muted' }, 'not recorded'));
        }
        return h('div', { class: 'site ' + def.key, 'data-site': def.key },
          h('span', { class: 'label' }, def.label),
          stepLink(site.step, stepName(site.step) + ' \u00b7 ' + site.thread + ' \u00b7 ' + site.what, def.key),
          site.path && site.path.length ? h('ol', { class: 'callpath', 'aria-label': def.verb + ': call path, innermost first' },
            site.path.map(function (f) { return h('li', null, f); })) : h('p', { class: 'empty' }, 'no call path'));
      })),
      r.history && r.history.length ? [h('h4', null, 'Frame history (pfn ' + hex(r.pfn) + ')'),
        h('table', null, h('thead', null, h('tr', null, h('th', null, 'gen'), h('th', null, 'owner'), h('th', null, 'since'), h('th', null, 'thread'))),
          h('tbody', null, r.history.map(function (x) {
            return h('tr', null, h('td', { class: 'num' }, String(x.gen)), h('td', null, x.owner),
              h('td', { class: 'mono' }, stepLink(x.step, stepName(x.step))), h('td', { class: 'mono' }, x.thread));
          })))] : null,
      r.text && r.text.length ? h('details', { class: 'report-text' }, h('summary', null, 'Report text (' + r.text.length + ' lines)'),
        h('pre', { class: 'report-text', id: 'report-text' }, r.text.join('\n'))) : null,
      h('button', { type: 'button', onclick: function () { selectReport(-1); } }, 'Close report'));
    add(reportsBox, detail);
  }

  function renderStep() {
    clear(stepBox);
    var r = rows[selRow];
    var s = r.rec;
    if (!s) {
      add(stepBox, h('h2', { id: 'step-title' }, 'Setup'), h('p', { class: 'muted' }, 'The state before the first step.'));
      return;
    }
    var held = [];
    // Locks held by every thread after this step: each thread's latest step so far.
    var last = {};
    for (var i = 1; i <= selRow; i++) {
      var x = rows[i].rec;
      if (x.held) last[x.thread] = x.held;
    }
    Object.keys(last).forEach(function (name) {
      if (last[name].length) held.push(h('tr', null, h('td', { class: 'mono' }, name), h('td', { class: 'mono' }, last[name].join(', '))));
    });
    add(stepBox,
      h('h2', { id: 'step-title' }, 'Step ' + s.index + ' of ' + trace.steps.length),
      h('dl', null,
        h('dt', null, 'thread'), h('dd', null, threadLabel(s.thread)),
        h('dt', null, 'what'), h('dd', null, s.what || '\u2014'),
        h('dt', null, 'access'), h('dd', null, s.kind + (s.shared ? ' (shared)' : '')),
        h('dt', null, 'object'), h('dd', null, s.obj),
        h('dt', null, 'holds after'), h('dd', null, s.held ? heldList(s.held) : 'not recorded')),
      h('h3', null, 'Locks held after this step'),
      held.length ? h('table', { id: 'locks' }, h('thead', null, h('tr', null, h('th', null, 'thread'), h('th', null, 'locks'))), h('tbody', null, held))
        : h('p', { class: 'empty', id: 'locks' }, 'No thread holds a lock.'));
  }

  function snapshotAt(step) {
    var found = null;
    var prev = null;
    for (var i = 0; i < snapshots.length; i++) {
      if (snapshots[i].step <= step) {
        prev = found;
        found = snapshots[i];
      }
    }
    return { snap: found, prev: prev };
  }

  function table2(caption, id, heads, body) {
    return h('table', { id: id, 'aria-label': caption },
      h('thead', null, h('tr', null, heads.map(function (x) { return h('th', { scope: 'col' }, x); }))),
      h('tbody', null, body));
  }

  function renderState() {
    clear(stateBox);
    var step = rows[selRow].step;
    var found = snapshotAt(step);
    var snap = found.snap;
    add(stateBox, h('h2', null, 'State'));
    if (!snap) {
      add(stateBox, h('p', { class: 'empty', id: 'snapinfo' }, 'No state snapshot at or before ' + stepName(step) + '.'));
      return;
    }
    add(stateBox, h('p', { class: 'snapinfo', id: 'snapinfo', 'data-snapshot': snap.step },
      snap.step === step ? 'After ' + stepName(step) + '.'
        : 'After ' + stepName(snap.step) + ', the latest snapshot at or before ' + stepName(step) + '.'));
    var frames = snap.frames || [];
    var iommu = snap.iommu || [];
    var frameBy = {};
    frames.forEach(function (f) { frameBy[f.pfn] = f; });
    var prevBy = {};
    if (found.prev) (found.prev.frames || []).forEach(function (f) { prevBy[f.pfn] = f; });
    function entryStale(e) {
      var f = frameBy[e.pfn];
      return !!f && f.gen !== e.gen;
    }
    function frameStale(f) {
      return f.stale === true || iommu.some(function (e) { return e.pfn === f.pfn && e.gen !== f.gen; });
    }
    function staleBadge(text) {
      return h('span', { class: 'badge stale' }, text || 'owner changed under a live mapping');
    }
    function frameCell(pfn) {
      var f = frameBy[pfn];
      if (!f) return h('td', { class: 'muted' }, '\u2014');
      return h('td', null, f.owner + ' \u00b7 gen ' + f.gen, frameStale(f) ? staleBadge('stale frame') : null);
    }

    (snap.processes || []).forEach(function (p) {
      add(stateBox, h('h3', null, 'pid ' + p.pid + ' \u00b7 ' + p.comm));
      var sec = h('div', { class: 'process', 'data-pid': p.pid });
      add(sec, h('h4', null, 'VMAs (' + p.vmas.length + ')'));
      add(sec, p.vmas.length ? table2('VMAs of pid ' + p.pid, null, ['start', 'end', 'flags', 'pgoff', 'file'],
        p.vmas.map(function (v) {
          return h('tr', null, h('td', { class: 'num' }, hex(v.start)), h('td', { class: 'num' }, hex(v.end)),
            h('td', { class: 'flags' }, (v.flags || []).join(' ')), h('td', { class: 'num' }, hex(v.pgoff)),
            h('td', { class: 'mono' }, v.file || '\u2014'));
        })) : h('p', { class: 'empty' }, 'none'));
      add(sec, h('h4', null, 'Present entries (' + p.ptes.length + ')'));
      add(sec, p.ptes.length ? table2('Present entries of pid ' + p.pid, null, ['address', 'pfn', 'level', 'access', 'frame'],
        p.ptes.map(function (e) {
          var f = frameBy[e.pfn];
          var stale = !!f && f.stale === true;
          return h('tr', { class: 'pte' + (stale ? ' frame-stale' : ''), 'data-pfn': e.pfn },
            h('td', { class: 'num' }, hex(e.addr)), h('td', { class: 'num' }, hex(e.pfn)), h('td', null, e.level),
            h('td', { class: 'mono' }, (e.write ? 'rw' : 'ro') + (e.special ? ' special' : '')), frameCell(e.pfn));
        })) : h('p', { class: 'empty' }, 'none'));
      add(stateBox, sec);
    });

    add(stateBox, h('h3', null, 'IOMMU entries (' + iommu.length + ')'));
    add(stateBox, iommu.length ? table2('IOMMU entries', 'iommu-table', ['domain', 'iova', 'pfn', 'prot', 'gen', 'frame now'],
      iommu.map(function (e) {
        var stale = entryStale(e);
        var f = frameBy[e.pfn];
        return h('tr', { class: stale ? 'stale' : '', 'data-pfn': e.pfn, 'data-stale': String(stale) },
          h('td', { class: 'mono' }, e.domain), h('td', { class: 'num' }, hex(e.iova)), h('td', { class: 'num' }, hex(e.pfn)),
          h('td', { class: 'mono' }, e.prot), h('td', { class: 'num' }, String(e.gen)),
          h('td', null, f ? f.owner + ' \u00b7 gen ' + f.gen : '\u2014',
            stale ? staleBadge('made for gen ' + e.gen + ', frame is gen ' + f.gen) : null));
      })) : h('p', { class: 'empty', id: 'iommu-table' }, 'none'));

    add(stateBox, h('h3', null, 'Frames (' + frames.length + ')'));
    add(stateBox, frames.length ? table2('Frames involved', 'frames-table', ['pfn', 'owner', 'gen', ''],
      frames.map(function (f) {
        var stale = frameStale(f);
        var p = prevBy[f.pfn];
        var changed = !!found.prev && (!p || p.gen !== f.gen || p.owner !== f.owner);
        return h('tr', {
          class: (stale ? 'stale' : '') + (changed ? ' changed' : ''), 'data-pfn': f.pfn,
          'data-stale': String(stale), 'data-changed': String(changed)
        },
          h('td', { class: 'num' }, hex(f.pfn)), h('td', null, f.owner), h('td', { class: 'num' }, String(f.gen)),
          h('td', null, stale ? staleBadge() : null,
            changed ? h('span', { class: 'badge changed' }, 'changed since ' + stepName(found.prev.step)) : null));
      })) : h('p', { class: 'empty', id: 'frames-table' }, 'none'));
  }

  function markSites() {
    rowEls.forEach(function (tr) {
      var chips = tr.querySelectorAll('.site-chip');
      for (var i = 0; i < chips.length; i++) chips[i].parentNode.removeChild(chips[i]);
    });
    var marks = document.querySelectorAll('button.report-mark');
    for (var m = 0; m < marks.length; m++)
      marks[m].setAttribute('aria-pressed', String(Number(marks[m].getAttribute('data-report')) === selReport));
    if (selReport < 0) return;
    var r = trace.reports[selReport];
    SITES.forEach(function (def) {
      var site = r[def.key];
      if (!site) return;
      var tr = rowEls[rowFor(site.step)];
      add(tr.querySelector('td.marks'), h('span', { class: 'site-chip ' + def.key, 'data-site': def.key, title: def.verb }, def.key));
    });
  }

  function selectReport(i) {
    selReport = i;
    renderReports();
    markSites();
    if (i >= 0) selectRow(rowFor(trace.reports[i].step), true);
  }

  /** Scrolls the timeline pane (only it, never the page) so that the row and the notes
   *  and log lines under it are visible below the sticky column headers. */
  function reveal(tr) {
    var pane = timelinePane;
    var head = table.tHead.offsetHeight;
    var base = pane.getBoundingClientRect().top - pane.scrollTop;
    var r = tr.getBoundingClientRect();
    var top = r.top - base;
    var bottom = r.bottom - base;
    var next = tr.nextElementSibling;
    if (next && next.classList.contains('annot'))
      bottom = Math.min(next.getBoundingClientRect().bottom - base, top + pane.clientHeight - head);
    if (top - head < pane.scrollTop) pane.scrollTop = top - head;
    else if (bottom > pane.scrollTop + pane.clientHeight) pane.scrollTop = bottom - pane.clientHeight;
  }

  function selectRow(ri, scroll) {
    if (ri < 0) ri = 0;
    if (ri >= rows.length) ri = rows.length - 1;
    if (selRow >= 0) {
      rowEls[selRow].classList.remove('selected');
      rowEls[selRow].removeAttribute('aria-current');
    }
    selRow = ri;
    var tr = rowEls[ri];
    tr.classList.add('selected');
    tr.setAttribute('aria-current', 'step');
    document.documentElement.setAttribute('data-selected-step', String(rows[ri].step));
    renderStep();
    renderState();
    if (scroll) reveal(tr);
    var s = rows[ri].rec;
    live.textContent = s ? 'Step ' + s.index + ': ' + s.thread + ' ' + opText(s) : 'Setup';
    try {
      history.replaceState(null, '', '#step=' + rows[ri].step);
    } catch (e) {
      /* file: URLs in some browsers refuse; the selection still works */
    }
  }

  function nextReport(dir) {
    if (!trace.reports.length) return;
    var order = trace.reports.map(function (r, i) { return i; }).sort(function (a, b) { return trace.reports[a].step - trace.reports[b].step || a - b; });
    var pos = order.indexOf(selReport);
    var next = pos < 0 ? (dir > 0 ? 0 : order.length - 1) : (pos + dir + order.length) % order.length;
    selectReport(order[next]);
  }

  document.addEventListener('keydown', function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var t = ev.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
    var handled = true;
    switch (ev.key) {
      case 'ArrowDown': case 'j': selectRow(selRow + 1, true); break;
      case 'ArrowUp': case 'k': selectRow(selRow - 1, true); break;
      case 'Home': selectRow(0, true); break;
      case 'End': selectRow(rows.length - 1, true); break;
      case 'n': nextReport(1); break;
      case 'p': case 'N': nextReport(-1); break;
      default: handled = false;
    }
    if (handled) ev.preventDefault();
  });
  window.addEventListener('hashchange', function () {
    var m = /^#step=(-?\d+)$/.exec(location.hash);
    if (m && Number(m[1]) !== rows[selRow].step) selectRow(rowFor(Number(m[1])), true);
  });

  clear(app);
  add(app, header, h('main', { class: 'viewer' }, timelinePane, side));
  // Notes and log lines span the thread columns but stay within the visible pane.
  function fitAnnotations() {
    var lead = laneRow.firstChild ? laneRow.firstChild.getBoundingClientRect().left - table.getBoundingClientRect().left : 0;
    table.style.setProperty('--annot-left', lead + 'px');
    table.style.setProperty('--annot-w', Math.max(240, timelinePane.clientWidth - lead - 24) + 'px');
  }
  fitAnnotations();
  window.addEventListener('resize', fitAnnotations);
  document.title = 'pfnsim trace: ' + trace.scenario + ' on Linux ' + trace.kernel.version;
  renderReports();
  var start = /^#step=(-?\d+)$/.exec(location.hash);
  if (start) selectRow(rowFor(Number(start[1])), true);
  else if (trace.reports.length) nextReport(1);
  else selectRow(0, false);
  document.documentElement.setAttribute('data-ready', 'true');
})();
`;
