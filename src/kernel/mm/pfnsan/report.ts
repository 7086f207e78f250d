/**
 * pfnsan reports, printed the way KASAN prints its reports: a line of '=', the title
 * "BUG: pfnsan: <code> in <consumer>", what happened to which frame by which thread at
 * which step, the call paths (used, obtained, ended), the frame's owner history, and a
 * closing line of '='. Each distinct report is printed once per run.
 *
 * @kernel mm/kasan/report.c:start_report, print_report, end_report (the layout)
 */
import { pr_err } from '../../kernel/printk.js';
import type { pfnsan_code, pfnsan_history_entry, pfnsan_report, pfnsan_site } from './pfnsan.js';
import type { PfnsanState } from './state.js';

const RULE = '='.repeat(66);

export const hex = (n: number): string => `0x${n.toString(16)}`;

function stepStr(step: number): string {
  return step < 0 ? 'setup' : `step ${step}`;
}

function siteLines(head: string, s: pfnsan_site): string[] {
  const out = [`${head} by thread ${s.thread} at ${stepStr(s.step)} (${s.what}):`];
  if (s.path.length) for (const f of s.path) out.push(` ${f.fn} (${f.file})`);
  else out.push(' (no kernel call path)');
  return out;
}

export function historyLines(pfn: number, h: readonly pfnsan_history_entry[]): string[] {
  if (!h.length) return [];
  const out = [`Owner history of pfn ${hex(pfn)} (oldest first):`];
  for (const e of h) {
    out.push(
      ` gen ${e.gen}: ${e.owner.kind}: ${e.owner.desc} (thread ${e.thread}, ${stepStr(e.step)})`,
    );
  }
  return out;
}

export interface ReportInput {
  readonly code: pfnsan_code;
  readonly consumer: string;
  /** A complete title ("BUG: pfnsan: ..."), instead of "BUG: pfnsan: <code> in <consumer>". */
  readonly title?: string;
  readonly pfn: number;
  /** Lines after the title: what happened. */
  readonly what: readonly string[];
  readonly used: pfnsan_site;
  readonly obtained?: pfnsan_site;
  readonly obtainedHead?: string;
  readonly ended?: pfnsan_site;
  readonly endedHead?: string;
  readonly history: readonly pfnsan_history_entry[];
  /** Identity of the finding: the same key is reported once. */
  readonly key: string;
}

/** Builds, records and prints a report unless an identical one was made. */
export function emit(s: PfnsanState, r: ReportInput): pfnsan_report | null {
  const key = `${r.code}|${r.key}`;
  if (s.reported.has(key)) return null;
  s.reported.add(key);
  const title = r.title ?? `BUG: pfnsan: ${r.code} in ${r.consumer}`;
  const text: string[] = [RULE, title, ...r.what, ''];
  text.push(...siteLines('Used', r.used));
  if (r.obtained) text.push('', ...siteLines(r.obtainedHead ?? 'Obtained', r.obtained));
  if (r.ended) text.push('', ...siteLines(r.endedHead ?? 'Guarantee ended', r.ended));
  if (r.history.length) text.push('', ...historyLines(r.pfn, r.history));
  text.push(RULE);
  const rep: pfnsan_report = {
    code: r.code,
    title,
    pfn: r.pfn,
    thread: r.used.thread,
    step: r.used.step,
    ...(r.obtained ? { obtained: r.obtained } : {}),
    ...(r.ended ? { ended: r.ended } : {}),
    used: r.used,
    history: r.history,
    text,
  };
  s.reports.push(rep);
  for (const line of text) pr_err(line);
  return rep;
}
