/**
 * Text rendering of a trace: the steps by thread (with the locks the thread holds after
 * each), the scenario's notes at the step where they were made, the sanitizer's reports,
 * the machine state after the last step, and the kernel log as dmesg prints it.
 */
import type { Trace, TraceLogLine, TraceProcessState, TraceSnapshot } from './format.js';

const hex = (n: number): string => `0x${n.toString(16)}`;

export function formatLogLine(l: TraceLogLine): string {
  const us = Math.floor(l.ns / 1000);
  const sec = Math.floor(us / 1e6);
  return `[${String(sec).padStart(5, ' ')}.${String(us % 1e6).padStart(6, '0')}] ${l.text}`;
}

export function renderDmesg(t: Trace): string {
  return t.log.map(formatLogLine).join('\n');
}

export function renderSteps(t: Trace): string {
  const width = Math.max(6, ...t.threads.map((th) => th.name.length));
  const notesAt = new Map<number, string[]>();
  for (const n of t.notes) {
    const l = notesAt.get(n.step) ?? [];
    l.push(`${n.thread}: ${n.text}`);
    notesAt.set(n.step, l);
  }
  const lines: string[] = [];
  for (const n of notesAt.get(-1) ?? []) lines.push(`      | ${n}`);
  for (const s of t.steps) {
    const access = s.kind + (s.shared ? '(shared)' : '');
    const held = s.held && s.held.length > 0 ? `  [holds ${s.held.join(', ')}]` : '';
    const extra =
      (s.also?.length ? ` +write ${s.also.join(', ')}` : '') +
      (s.reads?.length ? ` +read ${s.reads.join(', ')}` : '');
    lines.push(
      `${String(s.index).padStart(5)} ${s.thread.padEnd(width)}  ${(s.what ?? '').padEnd(26)} ${access.padEnd(14)} ${s.obj}${extra}${held}`,
    );
    for (const n of notesAt.get(s.index) ?? []) lines.push(`      | ${n}`);
  }
  return lines.join('\n');
}

/** The sanitizer's reports, as printed (title, sites, owner history). */
export function renderReports(t: Trace): string {
  const out: string[] = [];
  for (const r of t.reports) {
    if (out.length > 0) out.push('');
    if (r.text.length > 0) out.push(...r.text);
    else {
      out.push(`${r.title} (${r.code}), pfn ${hex(r.pfn)}, ${r.thread} at step ${r.step}`);
      for (const [label, s] of [
        ['obtained', r.obtained],
        ['guarantee ended', r.ended],
        ['used', r.used],
      ] as const) {
        if (!s) continue;
        out.push(`  ${label} by ${s.thread} at step ${s.step} (${s.what}):`);
        for (const f of s.path) out.push(`    ${f}`);
      }
      for (const h of r.history)
        out.push(`  gen ${h.gen}: ${h.owner} (step ${h.step}, ${h.thread})`);
    }
  }
  return out.join('\n');
}

/** Present entries of a process grouped in runs of consecutive addresses and pfns. */
function entryRuns(p: TraceProcessState, start: number, end: number): string[] {
  const es = p.ptes.filter((e) => e.addr >= start && e.addr < end);
  const out: string[] = [];
  for (let i = 0; i < es.length;) {
    const a = es[i]!;
    const step = a.level === 'pte' ? 4096 : a.level === 'pmd' ? 2 ** 21 : 2 ** 30;
    let j = i + 1;
    while (
      j < es.length &&
      es[j]!.level === a.level &&
      es[j]!.write === a.write &&
      es[j]!.special === a.special &&
      es[j]!.addr === a.addr + (j - i) * step &&
      es[j]!.pfn === a.pfn + ((j - i) * step) / 4096
    )
      j++;
    const n = j - i;
    const pfns = n === 1 ? `pfn ${hex(a.pfn)}` : `pfn ${hex(a.pfn)}.. (${n} ${a.level}s)`;
    const bits = [a.write ? 'write' : 'read-only', ...(a.special ? ['special'] : [])].join(',');
    out.push(`      ${hex(a.addr)} ${a.level} ${pfns} ${bits}`);
    i = j;
  }
  return out;
}

/** A snapshot: processes' VMAs with their present entries, IOMMU entries, frames. */
export function renderSnapshot(s: TraceSnapshot): string {
  const out: string[] = [];
  for (const p of s.processes) {
    out.push(`process ${p.pid} (${p.comm})`);
    for (const v of p.vmas) {
      const file = v.file ? ` ${v.file}` : '';
      out.push(`  ${hex(v.start)}-${hex(v.end)} pgoff ${hex(v.pgoff)}${file} ${v.flags.join('|')}`);
      out.push(...entryRuns(p, v.start, v.end));
    }
  }
  if (s.iommu.length > 0) {
    out.push('iommu');
    for (const e of s.iommu)
      out.push(`  ${e.domain} iova ${hex(e.iova)} -> pfn ${hex(e.pfn)} ${e.prot} gen ${e.gen}`);
  }
  return out.join('\n');
}

export function renderTrace(t: Trace): string {
  const verdict = t.verdict !== undefined ? `, verdict ${t.verdict}` : '';
  const head = [
    `scenario ${t.scenario} on Linux ${t.kernel.version}: ${t.status}, ${t.steps.length} steps${verdict}`,
    `threads: ${t.threads.map((th) => `${th.tid}=${th.name}${th.kind ? `(${th.kind})` : ''}`).join(' ')}`,
    `schedule: ${formatScheduleText(t.schedule)}`,
  ];
  if (t.error) head.push(`error: ${t.error}`);
  const parts = [...head, '', '--- steps ---', renderSteps(t)];
  if (t.reports.length > 0) parts.push('', '--- reports ---', renderReports(t));
  const last = t.snapshots.at(-1);
  if (last) parts.push('', '--- state after the last step ---', renderSnapshot(last));
  parts.push('', '--- dmesg ---', renderDmesg(t));
  if (t.replay) parts.push('', `replay: ${t.replay}`);
  return parts.join('\n');
}

/** The schedule as the explorer writes it (runs of one thread as `tid*n`, dot-separated). */
function formatScheduleText(schedule: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < schedule.length;) {
    let j = i;
    while (j < schedule.length && schedule[j] === schedule[i]) j++;
    parts.push(j - i > 1 ? `${schedule[i]}*${j - i}` : `${schedule[i]}`);
    i = j;
  }
  return parts.join('.');
}
