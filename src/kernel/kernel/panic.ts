/**
 * Taint, WARN and BUG (kernel/panic.c, include/asm-generic/bug.h, lib/bug.c).
 *
 * WARN*() prints a "cut here" report with the call path to the log, taints the kernel
 * with TAINT_WARN and carries on. BUG() prints an oops and throws {@link KernelBug}: the
 * execution ends there, as the thread would die in the kernel. _ONCE variants fire once
 * per call site per kernel instance.
 */
import { currentKernel } from './kernel.js';
import { call_path, formatCallPath, type Frame } from './callpath.js';
import { printk, pr_warn, KERN_EMERG, KERN_WARNING } from './printk.js';
import { get_current } from '../include/linux/sched.js';

/** @kernel include/linux/panic.h:TAINT_* (all versions) */
export const TAINT_PROPRIETARY_MODULE = 0;
export const TAINT_FORCED_MODULE = 1;
export const TAINT_CPU_OUT_OF_SPEC = 2;
export const TAINT_FORCED_RMMOD = 3;
export const TAINT_MACHINE_CHECK = 4;
export const TAINT_BAD_PAGE = 5;
export const TAINT_USER = 6;
export const TAINT_DIE = 7;
export const TAINT_OVERRIDDEN_ACPI_TABLE = 8;
export const TAINT_WARN = 9;
export const TAINT_CRAP = 10;
export const TAINT_FIRMWARE_WORKAROUND = 11;
export const TAINT_OOT_MODULE = 12;
export const TAINT_UNSIGNED_MODULE = 13;
export const TAINT_SOFTLOCKUP = 14;
export const TAINT_LIVEPATCH = 15;
export const TAINT_AUX = 16;
export const TAINT_RANDSTRUCT = 17;
export const TAINT_TEST = 18;
const TAINT_CHARS = 'PFSRMBUDAWCIOELKXTN';

export const LOCKDEP_STILL_OK = true;
export const LOCKDEP_NOW_UNRELIABLE = false;

/**
 * add_taint(flag, lockdep_ok): sets the taint bit; a taint that makes lockdep unreliable
 * turns lock debugging off, once, with the kernel's message.
 * @kernel kernel/panic.c:add_taint (all versions)
 */
export function add_taint(flag: number, lockdep_ok: boolean): void {
  const k = currentKernel();
  if (lockdep_ok === LOCKDEP_NOW_UNRELIABLE && k.debug_locks) {
    k.debug_locks = false;
    pr_warn('Disabling lock debugging due to kernel taint');
  }
  k.tainted_mask |= 1 << flag;
}

/** test_taint(flag) */
export function test_taint(flag: number): boolean {
  return (currentKernel().tainted_mask & (1 << flag)) !== 0;
}

/** print_tainted(): "Tainted: G        W" style, or "Not tainted". */
export function print_tainted(): string {
  const m = currentKernel().tainted_mask;
  if (m === 0) return 'Not tainted';
  let s = (m & 1) !== 0 ? 'P' : 'G';
  for (let i = 1; i < TAINT_CHARS.length; i++) s += (m & (1 << i)) !== 0 ? TAINT_CHARS[i] : ' ';
  return `Tainted: ${s.trimEnd()}`;
}

function cpuLine(): string {
  const t = get_current();
  const k = currentKernel();
  return `CPU: 0 PID: ${t.pid} Comm: ${t.comm} ${print_tainted()} ${k.version.name}.0-pfnsim #1`;
}

function site(frames: readonly Frame[]): string {
  const f = frames[0];
  return f ? `${f.file}:${f.fn}` : 'unknown';
}

function callTrace(frames: readonly Frame[]): string[] {
  return ['Call Trace:', ' <TASK>', ...formatCallPath(frames), ' </TASK>'];
}

/** Raised by BUG(): the thread dies with an oops. */
export class KernelBug extends Error {
  constructor(
    readonly report: string,
    readonly where: string,
    readonly frames: readonly Frame[],
  ) {
    super(report.split('\n')[0]);
    this.name = 'KernelBug';
  }
}

/**
 * __warn(): the WARNING report. Prints "cut here", the message, the site, the CPU line
 * and the call trace, then taints TAINT_WARN (LOCKDEP_STILL_OK).
 * @kernel kernel/panic.c:__warn (all versions)
 */
function __warn(msg: string | undefined, skip: number): void {
  const frames = call_path(skip);
  const lines = ['------------[ cut here ]------------'];
  if (msg) lines.push(msg);
  lines.push(`WARNING: CPU: 0 PID: ${get_current().pid} at ${site(frames)}`);
  lines.push('Modules linked in:');
  lines.push(cpuLine());
  lines.push(`RIP: 0010:${frames[0]?.fn ?? 'unknown'}`);
  lines.push(...callTrace(frames));
  lines.push('---[ end trace 0000000000000000 ]---');
  printk(KERN_WARNING, lines.join('\n'));
  add_taint(TAINT_WARN, LOCKDEP_STILL_OK);
}

/** WARN_ON(cond): reports when cond is true; returns cond. */
export function WARN_ON(cond: boolean): boolean {
  if (cond) __warn(undefined, 0);
  return cond;
}

/** WARN(cond, fmt): reports with a message when cond is true; returns cond. */
export function WARN(cond: boolean, msg: string): boolean {
  if (cond) __warn(msg, 0);
  return cond;
}

function onceKey(): string {
  const f = call_path(0)[1];
  return f ? `${f.file}:${f.fn}` : 'unknown';
}

/** WARN_ON_ONCE(cond): as WARN_ON, once per call site. */
export function WARN_ON_ONCE(cond: boolean, key?: string): boolean {
  if (!cond) return false;
  const k = currentKernel();
  const id = key ?? onceKey();
  if (!k.onceFired.has(`WARN_ON_ONCE:${id}`)) {
    k.onceFired.add(`WARN_ON_ONCE:${id}`);
    __warn(undefined, 0);
  }
  return true;
}

/** WARN_ONCE(cond, fmt): as WARN, once per call site. */
export function WARN_ONCE(cond: boolean, msg: string, key?: string): boolean {
  if (!cond) return false;
  const k = currentKernel();
  const id = key ?? onceKey();
  if (!k.onceFired.has(`WARN_ONCE:${id}`)) {
    k.onceFired.add(`WARN_ONCE:${id}`);
    __warn(msg, 0);
  }
  return true;
}

/**
 * BUG(): prints "kernel BUG at <file>!" and an oops, taints TAINT_DIE and throws
 * KernelBug, ending the execution.
 * @kernel include/asm-generic/bug.h:BUG, arch/x86/kernel/dumpstack.c:die (all versions)
 */
export function BUG(msg?: string): never {
  const frames = call_path(0);
  const where = site(frames);
  const lines: string[] = [];
  if (msg) lines.push(msg);
  lines.push(`kernel BUG at ${where}!`);
  lines.push('Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI');
  add_taint(TAINT_DIE, LOCKDEP_NOW_UNRELIABLE);
  lines.push(cpuLine());
  lines.push(`RIP: 0010:${frames[0]?.fn ?? 'unknown'}`);
  lines.push(...callTrace(frames));
  lines.push('---[ end trace 0000000000000000 ]---');
  const report = lines.join('\n');
  printk(KERN_EMERG, report);
  throw new KernelBug(report, where, frames);
}

/** BUG_ON(cond) */
export function BUG_ON(cond: boolean, msg?: string): void {
  if (cond) BUG(msg);
}

/** VM_BUG_ON(cond): BUG_ON with CONFIG_DEBUG_VM, otherwise compiled out. */
export function VM_BUG_ON(cond: boolean, msg?: string): void {
  if (cond && currentKernel().config.CONFIG_DEBUG_VM === true) BUG(msg);
}

/** VM_WARN_ON_ONCE(cond): WARN_ON_ONCE with CONFIG_DEBUG_VM, otherwise compiled out. */
export function VM_WARN_ON_ONCE(cond: boolean): boolean {
  if (currentKernel().config.CONFIG_DEBUG_VM !== true) return cond;
  return WARN_ON_ONCE(cond, onceKey());
}

/** VM_WARN_ON(cond) */
export function VM_WARN_ON(cond: boolean): boolean {
  if (currentKernel().config.CONFIG_DEBUG_VM !== true) return cond;
  if (cond) __warn(undefined, 0);
  return cond;
}

/**
 * lockdep_assert_held(lock): with CONFIG_LOCKDEP, WARN_ON(debug_locks && !held).
 * @kernel include/linux/lockdep.h:lockdep_assert_held (all versions)
 */
export function lockdep_assert(held: boolean): void {
  const k = currentKernel();
  if (k.config.CONFIG_LOCKDEP !== true || !k.debug_locks) return;
  if (!held) __warn(undefined, 0);
}

/** VMEMMAP_START on x86-64 4-level paging; struct page is 64 bytes. */
const VMEMMAP_START = 0xffffea0000000000n;

/** The vmemmap address of pfn's struct page (what pfn_to_page() computes). */
export function vmemmap_addr(pfn: number): string {
  return (VMEMMAP_START + BigInt(pfn) * 64n).toString(16);
}

/**
 * A kernel-mode page fault on an unmapped address: the oops of
 * arch/x86/mm/fault.c:page_fault_oops. Used when the model dereferences the struct page
 * of a pfn that has none (its vmemmap is not populated). Throws KernelBug.
 * @kernel arch/x86/mm/fault.c:page_fault_oops (all versions)
 */
export function page_fault_oops(address: string, write: boolean, why: string): never {
  const frames = call_path(0);
  add_taint(TAINT_DIE, LOCKDEP_NOW_UNRELIABLE);
  const lines = [
    `BUG: unable to handle page fault for address: ${address}`,
    `#PF: supervisor ${write ? 'write' : 'read'} access in kernel mode`,
    `#PF: error_code(0x000${write ? 2 : 0}) - not-present page`,
    `Oops: 000${write ? 2 : 0} [#1] PREEMPT SMP NOPTI`,
    cpuLine(),
    `RIP: 0010:${frames[0]?.fn ?? 'unknown'}`,
    ...callTrace(frames),
    `---[ end trace 0000000000000000 ]---`,
  ];
  const report = lines.join('\n');
  printk(KERN_EMERG, report);
  throw new KernelBug(`${report.split('\n')[0]} (${why})`, site(frames), frames);
}

/**
 * dump_stack(): the CPU line and the call trace, at KERN_DEFAULT.
 * @kernel lib/dump_stack.c:dump_stack (all versions)
 */
export function dump_stack(): void {
  const frames = call_path(0);
  printk(KERN_WARNING, [cpuLine(), ...callTrace(frames)].join('\n'));
}
