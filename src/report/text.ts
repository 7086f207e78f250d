/**
 * Text rendering of a trace: the steps by thread, the scenario's notes at the step where
 * they were made, and the kernel log as dmesg prints it.
 */
import type { Trace, TraceLogLine } from './format.js';

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
    lines.push(
      `${String(s.index).padStart(5)} ${s.thread.padEnd(width)}  ${(s.what ?? '').padEnd(26)} ${access.padEnd(14)} ${s.obj}`,
    );
    for (const n of notesAt.get(s.index) ?? []) lines.push(`      | ${n}`);
  }
  return lines.join('\n');
}

export function renderTrace(t: Trace): string {
  const head = [
    `scenario ${t.scenario} on Linux ${t.kernel.version}: ${t.status}, ${t.steps.length} steps`,
    `threads: ${t.threads.map((th) => `${th.tid}=${th.name}`).join(' ')}`,
    `schedule: ${t.schedule.join('')}`,
  ];
  if (t.error) head.push(`error: ${t.error}`);
  return [...head, '', '--- steps ---', renderSteps(t), '', '--- dmesg ---', renderDmesg(t)].join(
    '\n',
  );
}
