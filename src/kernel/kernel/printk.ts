/**
 * printk and the kernel log buffer (kernel/printk/printk.c), with log levels.
 * The log is per kernel instance and timestamped with the logical clock.
 *
 * @kernel kernel/printk/printk.c:printk (all versions)
 * Locking: none needed in the model (the log is appended atomically within a step).
 */
import { currentThread } from '../../sched/index.js';
import { currentKernel, type LogLine } from './kernel.js';

export const KERN_EMERG = 0;
export const KERN_ALERT = 1;
export const KERN_CRIT = 2;
export const KERN_ERR = 3;
export const KERN_WARNING = 4;
export const KERN_NOTICE = 5;
export const KERN_INFO = 6;
export const KERN_DEBUG = 7;

export const LEVEL_NAMES = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];

/** printk(level, text): appends one line per '\n'-separated line of text. */
export function printk(level: number, text: string): void {
  const k = currentKernel();
  const thread = currentThread().name;
  for (const line of text.replace(/\n$/, '').split('\n')) {
    k.log.push({ level, text: line, ns: k.ktime_ns, step: k.step, thread });
  }
}

export const pr_emerg = (t: string): void => printk(KERN_EMERG, t);
export const pr_alert = (t: string): void => printk(KERN_ALERT, t);
export const pr_crit = (t: string): void => printk(KERN_CRIT, t);
export const pr_err = (t: string): void => printk(KERN_ERR, t);
export const pr_warn = (t: string): void => printk(KERN_WARNING, t);
export const pr_notice = (t: string): void => printk(KERN_NOTICE, t);
export const pr_info = (t: string): void => printk(KERN_INFO, t);
export const pr_debug = (t: string): void => printk(KERN_DEBUG, t);

/** One dmesg line: "[    0.000123] text". */
export function formatLogLine(l: LogLine): string {
  const us = Math.floor(l.ns / 1000);
  const sec = Math.floor(us / 1e6);
  const frac = String(us % 1e6).padStart(6, '0');
  return `[${String(sec).padStart(5, ' ')}.${frac}] ${l.text}`;
}

/** The whole log as `dmesg` prints it. */
export function dmesg(lines: readonly LogLine[] = currentKernel().log): string {
  return lines.map(formatLogLine).join('\n');
}

/**
 * struct ratelimit_state and ___ratelimit(): at most `burst` messages per `interval`
 * jiffies; the first message after a suppressed stretch reports how many were dropped.
 * @kernel lib/ratelimit.c:___ratelimit (all versions)
 */
export class ratelimit_state {
  begin = 0;
  printed = 0;
  missed = 0;
  constructor(
    readonly interval: number,
    readonly burst: number,
  ) {}
}

/** Returns true when the caller may print. */
export function ___ratelimit(rs: ratelimit_state, func: string): boolean {
  const j = currentKernel().jiffies;
  if (rs.interval === 0) return true;
  if (rs.begin === 0 && rs.printed === 0 && rs.missed === 0) rs.begin = j;
  if (j >= rs.begin + rs.interval) {
    if (rs.missed) pr_warn(`${func}: ${rs.missed} callbacks suppressed`);
    rs.begin = j;
    rs.printed = 0;
    rs.missed = 0;
  }
  if (rs.burst && rs.burst > rs.printed) {
    rs.printed++;
    return true;
  }
  rs.missed++;
  return false;
}

/** DEFAULT_RATELIMIT_INTERVAL (5 * HZ) and DEFAULT_RATELIMIT_BURST (10). */
export function DEFINE_RATELIMIT_STATE(): ratelimit_state {
  const hz = currentKernel().config.CONFIG_HZ as number;
  return new ratelimit_state(5 * hz, 10);
}
