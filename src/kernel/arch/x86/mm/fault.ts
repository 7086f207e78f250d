/**
 * x86 page faults and the MMU: the user-address fault handler (do_user_addr_fault with
 * access_error), the CPU's own accesses to user memory (a page-table walk that reads each
 * entry locklessly, checks present/user/write, sets accessed/dirty as the hardware does,
 * faults and retries the access as the hardware restarts the instruction), and the
 * user-copy helpers kernel code uses (copy_from_user / copy_to_user, and the
 * page-fault-disabled __copy_from_user_inatomic).
 *
 * The CPU functions (cpu_user_read, cpu_user_write) are the model's hardware, not
 * kernel functions. A migration entry is a not-present entry to the MMU: the access
 * faults, handle_mm_fault sleeps in migration_entry_wait (or pmd_migration_entry_wait)
 * until the migration ends and returns 0, and the restarted access walks to the new
 * frame. There is no TLB: every access walks the page tables, so stale-TLB windows (an
 * access through an entry already cleared but not yet flushed) are not modelled. A
 * physical address that no range of the machine's map backs reads as zeroes.
 *
 * Left out of do_user_addr_fault: the per-VMA lock path (the mmap_lock path is always
 * taken), stack expansion (VM_GROWSDOWN below vm_start is SEGV_MAPERR), vsyscall
 * emulation, protection keys, shadow stacks, SGX, kprobes, the OOM killer (VM_FAULT_OOM
 * is reported as a result instead of running pagefault_out_of_memory), signal delivery
 * (the result names the signal).
 *
 * @kernel arch/x86/mm/fault.c, arch/x86/lib/usercopy_64.c, include/linux/uaccess.h
 *   (all versions)
 */
import type { Op } from '../../../../sched/index.js';
import type { entry_ptr, mm_struct, vm_area_struct } from '../../../include/linux/mm_types.js';
import {
  FAULT_FLAG_INSTRUCTION,
  FAULT_FLAG_TRIED,
  FAULT_FLAG_USER,
  FAULT_FLAG_WRITE,
} from '../../../include/linux/mm_types.js';
import type { task_struct } from '../../../include/linux/sched.js';
import { get_current } from '../../../include/linux/sched.js';
import {
  VM_FAULT_COMPLETED,
  VM_FAULT_ERROR,
  VM_FAULT_HWPOISON,
  VM_FAULT_HWPOISON_LARGE,
  VM_FAULT_OOM,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_FAULT_SIGSEGV,
  VM_WRITE,
} from '../../../include/linux/mm.js';
import {
  __pte,
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_PSE,
  _PAGE_RW,
  _PAGE_USER,
  PAGE_SIZE,
  pte_flags,
  pte_pfn,
  TASK_SIZE_MAX,
  type pteval_t,
} from '../include/asm/pgtable_types.js';
import {
  entry_table,
  pgd_offset,
  pmd_index,
  pte_index,
  pud_index,
  ptep_get_lockless,
  slotName,
} from '../../../include/linux/pgtable.js';
import { mmap_read_lock, mmap_read_unlock } from '../../../include/linux/mmap_lock.js';
import { find_vma } from '../../../mm/vma.js';
import { phys_read, phys_write } from '../../../mm/sparse.js';
import { mmio_or_phys_read_op, mmio_or_phys_write_op } from '../../../drivers/pci/access.js';
import { BUG } from '../../../kernel/panic.js';
import { pfnsan_user_access } from '../../../mm/pfnsan/pfnsan.js';
import {
  arch_vma_access_permitted,
  FAULT_FLAG_DEFAULT,
  handle_mm_fault,
  vma_is_accessible,
} from '../../../mm/memory.fault.js';

/** enum x86_pf_error_code (arch/x86/include/asm/trap_pf.h). */
export const X86_PF_PROT = 1 << 0;
export const X86_PF_WRITE = 1 << 1;
export const X86_PF_USER = 1 << 2;
export const X86_PF_RSVD = 1 << 3;
export const X86_PF_INSTR = 1 << 4;
export const X86_PF_PK = 1 << 5;
export const X86_PF_SHSTK = 1 << 6;
export const X86_PF_SGX = 1 << 15;

/** The outcome of a page fault on a user address, as the task sees it. */
export type x86_fault_result =
  | { readonly kind: 'ok' }
  | {
      readonly kind: 'SIGSEGV';
      readonly si_code: 'SEGV_MAPERR' | 'SEGV_ACCERR';
      readonly addr: number;
    }
  | {
      readonly kind: 'SIGBUS';
      readonly si_code: 'BUS_ADRERR' | 'BUS_MCEERR_AR';
      readonly addr: number;
    }
  /** VM_FAULT_OOM from a user fault: the kernel would run the OOM killer and retry. */
  | { readonly kind: 'OOM'; readonly addr: number }
  /** VM_FAULT_RETRY with a fatal signal pending: the task dies on its way out. */
  | { readonly kind: 'fatal_signal'; readonly addr: number }
  /** A kernel-mode fault the exception table fixed up (the uaccess returns an error). */
  | { readonly kind: 'fixup'; readonly addr: number }
  /** Model only: the access faulted again and again without progress (the CPU would spin). */
  | { readonly kind: 'FAULT_LOOP'; readonly addr: number };

const OK: x86_fault_result = { kind: 'ok' };

/**
 * access_error(error_code, vma): the VMA does not allow the access: writes need VM_WRITE;
 * reads of a present page that faulted (X86_PF_PROT) are errors; reads need the VMA to
 * be accessible at all.
 * @kernel arch/x86/mm/fault.c:access_error (all versions; shadow stack v6.6+, SGX v5.11+
 *   not modelled)
 * Return: true for an access error (SEGV_ACCERR).
 */
export function access_error(error_code: number, vma: vm_area_struct): boolean {
  if (error_code & X86_PF_PK) return true;
  if (
    !arch_vma_access_permitted(
      vma,
      (error_code & X86_PF_WRITE) !== 0,
      (error_code & X86_PF_INSTR) !== 0,
      false,
    )
  )
    return true;
  if (error_code & X86_PF_WRITE) {
    // write, present and write, not present:
    return !(vma.vm_flags & VM_WRITE);
  }
  // read, present:
  if (error_code & X86_PF_PROT) return true;
  // read, not present:
  return !vma_is_accessible(vma);
}

/**
 * do_user_addr_fault(task, error_code, address, user_mode): the #PF handler for user
 * addresses: takes mmap_lock for read, finds the VMA (none ⇒ SIGSEGV SEGV_MAPERR),
 * checks access_error (⇒ SIGSEGV SEGV_ACCERR), calls handle_mm_fault with
 * FAULT_FLAG_DEFAULT | USER | WRITE | INSTRUCTION as the access says, retries on
 * VM_FAULT_RETRY (FAULT_FLAG_TRIED; the handler dropped mmap_lock), and turns errors into
 * signals: VM_FAULT_SIGBUS/HWPOISON ⇒ SIGBUS (BUS_ADRERR / BUS_MCEERR_AR),
 * VM_FAULT_SIGSEGV ⇒ SIGSEGV SEGV_MAPERR, VM_FAULT_OOM ⇒ 'OOM'. A kernel-mode fault
 * (uaccess) that fails is fixed up instead ('fixup').
 * @kernel arch/x86/mm/fault.c:do_user_addr_fault, access_error, bad_area,
 *   bad_area_access_error, do_sigbus (all versions; lock_mm_and_find_vma v6.5+)
 * Locking: takes and releases mmap_lock (read).
 * Return: the result, never thrown.
 */
export function* do_user_addr_fault(
  task: task_struct,
  error_code: number,
  address: number,
  user_mode = true,
): Op<x86_fault_result> {
  const mm = task.mm;
  const bad = (kind: 'SEGV_MAPERR' | 'SEGV_ACCERR'): x86_fault_result =>
    user_mode
      ? { kind: 'SIGSEGV', si_code: kind, addr: address }
      : { kind: 'fixup', addr: address };
  // A user address beyond TASK_SIZE_MAX is kernel space (do_kern_addr_fault ⇒ bad area).
  if (address >= TASK_SIZE_MAX) return bad('SEGV_MAPERR');
  if (!mm) return bad('SEGV_MAPERR');
  let flags = FAULT_FLAG_DEFAULT;
  if (error_code & X86_PF_WRITE) flags |= FAULT_FLAG_WRITE;
  if (error_code & X86_PF_INSTR) flags |= FAULT_FLAG_INSTRUCTION;
  if (user_mode) flags |= FAULT_FLAG_USER;
  let fault: number;
  for (;;) {
    // lock_mm_and_find_vma (stack expansion not modelled)
    yield* mmap_read_lock(mm);
    const vma = find_vma(mm, address);
    if (!vma || vma.vm_start > address) {
      yield* mmap_read_unlock(mm);
      return bad('SEGV_MAPERR');
    }
    if (access_error(error_code, vma)) {
      yield* mmap_read_unlock(mm);
      return bad('SEGV_ACCERR');
    }
    fault = yield* handle_mm_fault(vma, address, flags, user_mode ? 'user' : null);
    if (fault & VM_FAULT_RETRY && task.fatal_signal) {
      // fault_signal_pending: the core mm code has unlocked the mm for us.
      return user_mode ? { kind: 'fatal_signal', addr: address } : { kind: 'fixup', addr: address };
    }
    // The fault is fully completed (including releasing mmap lock).
    if (fault & VM_FAULT_COMPLETED) return OK;
    if (fault & VM_FAULT_RETRY) {
      flags |= FAULT_FLAG_TRIED;
      continue;
    }
    yield* mmap_read_unlock(mm);
    break;
  }
  if (!(fault & VM_FAULT_ERROR)) return OK;
  if (!user_mode) return { kind: 'fixup', addr: address };
  if (fault & VM_FAULT_OOM) return { kind: 'OOM', addr: address };
  if (fault & (VM_FAULT_SIGBUS | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)) {
    return {
      kind: 'SIGBUS',
      si_code:
        fault & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE) ? 'BUS_MCEERR_AR' : 'BUS_ADRERR',
      addr: address,
    };
  }
  if (fault & VM_FAULT_SIGSEGV) return bad('SEGV_MAPERR');
  BUG(`do_user_addr_fault: unexpected fault result 0x${fault.toString(16)}`);
}

/** What a page-table walk found for an access. */
type Walk =
  | { readonly ok: true; readonly pfn: number; readonly leaf: entry_ptr; readonly value: pteval_t }
  | { readonly ok: false; readonly error_code: number };

/**
 * The MMU's page-table walk for one access (model hardware). Each level's entry is read
 * locklessly (a step); a missing or not-present level faults (not-present), a level
 * without _PAGE_USER (user accesses) or _PAGE_RW (writes; CR0.WP applies to the kernel
 * too) faults with X86_PF_PROT. Huge PUD/PMD leaves translate at their level.
 */
function* mmu_walk(mm: mm_struct, addr: number, write: boolean, user: boolean): Op<Walk> {
  const base = (write ? X86_PF_WRITE : 0) | (user ? X86_PF_USER : 0);
  let p: entry_ptr = pgd_offset(mm, addr);
  const levels = [pud_index, pmd_index, pte_index];
  for (let level = 0; ; level++) {
    const v = yield* ptep_get_lockless(p, 'mmu walk');
    const fl = pte_flags(v);
    if (!(fl & _PAGE_PRESENT)) return { ok: false, error_code: base };
    if ((user && !(fl & _PAGE_USER)) || (write && !(fl & _PAGE_RW)))
      return { ok: false, error_code: base | X86_PF_PROT };
    const leafLevel = level === 3 || ((level === 1 || level === 2) && (fl & _PAGE_PSE) !== 0);
    if (leafLevel) {
      const span = level === 3 ? 1 : level === 2 ? 512 : 512 * 512;
      const pfn = pte_pfn(v) + (Math.floor(addr / PAGE_SIZE) % span);
      return { ok: true, pfn, leaf: p, value: v };
    }
    const t = entry_table(p);
    if (!t) return { ok: false, error_code: base };
    p = { t, i: levels[level]!(addr) };
  }
}

/**
 * The hardware's accessed/dirty update: an atomic read-modify-write of the leaf entry
 * (one step). Returns false when the entry no longer allows the access (the walk is
 * redone).
 */
function* mmu_set_accessed_dirty(w: Extract<Walk, { ok: true }>, write: boolean): Op<boolean> {
  const need = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
  if ((pte_flags(w.value) & need) === need) return true;
  yield { obj: slotName(w.leaf), kind: 'write', what: 'mmu set accessed/dirty' };
  const cur = w.leaf.t.entries[w.leaf.i]!;
  const fl = pte_flags(cur);
  if (pte_pfn(cur) !== pte_pfn(w.value) || !(fl & _PAGE_PRESENT) || (write && !(fl & _PAGE_RW)))
    return false;
  w.leaf.t.entries[w.leaf.i] = __pte(pte_pfn(cur), fl | need);
  return true;
}

/** One CPU access of up to a page (model hardware): walk, A/D, data step. */
function* mmu_access(
  mm: mm_struct,
  addr: number,
  write: boolean,
  user: boolean,
  what: string,
): Op<{ ok: true; pa: number } | { ok: false; error_code: number }> {
  for (;;) {
    const w = yield* mmu_walk(mm, addr, write, user);
    if (!w.ok) return w;
    if (!(yield* mmu_set_accessed_dirty(w, write))) continue;
    yield { obj: `pfn${w.pfn}`, kind: write ? 'write' : 'read', what };
    return { ok: true, pa: w.pfn * PAGE_SIZE + (addr % PAGE_SIZE) };
  }
}

/** Consecutive faults on one address after which the model reports FAULT_LOOP. */
const MAX_FAULT_RETRIES = 64;

/**
 * cpu_user_read(task, addr, len): the task reads user memory (model hardware): each page
 * is translated by the MMU; a fault enters do_user_addr_fault and, if it returns, the
 * access is restarted; a signal ends the access.
 * Locking: none held; the fault handler takes mmap_lock.
 * Return: { kind: 'ok', data } or the fault result (SIGSEGV, SIGBUS, OOM, ...).
 */
export function* cpu_user_read(
  task: task_struct,
  addr: number,
  len: number,
): Op<
  { readonly kind: 'ok'; readonly data: Uint8Array } | Exclude<x86_fault_result, { kind: 'ok' }>
> {
  const out = new Uint8Array(len);
  let done = 0;
  let faults = 0;
  while (done < len) {
    const a = addr + done;
    const n = Math.min(PAGE_SIZE - (a % PAGE_SIZE), len - done);
    const mm = task.mm;
    const r =
      mm && a < TASK_SIZE_MAX ? yield* mmu_access(mm, a, false, true, 'cpu_user_read') : null;
    if (r && r.ok) {
      pfnsan_user_access(mm!, a, r.pa, 'read');
      out.set(yield* mmio_or_phys_read_op(r.pa, n, 'cpu_user_read'), done);
      done += n;
      faults = 0;
      continue;
    }
    if (++faults > MAX_FAULT_RETRIES) return { kind: 'FAULT_LOOP', addr: a };
    const res = yield* do_user_addr_fault(task, r ? r.error_code : X86_PF_USER, a, true);
    if (res.kind !== 'ok') return res;
  }
  return { kind: 'ok', data: out };
}

/**
 * cpu_user_write(task, addr, data): the task writes user memory (model hardware), as
 * cpu_user_read; the MMU sets the dirty bit of each leaf it writes through.
 * Return: 'ok' or the fault result.
 */
export function* cpu_user_write(
  task: task_struct,
  addr: number,
  data: Uint8Array,
): Op<x86_fault_result> {
  let done = 0;
  let faults = 0;
  while (done < data.length) {
    const a = addr + done;
    const n = Math.min(PAGE_SIZE - (a % PAGE_SIZE), data.length - done);
    const mm = task.mm;
    const r =
      mm && a < TASK_SIZE_MAX ? yield* mmu_access(mm, a, true, true, 'cpu_user_write') : null;
    if (r && r.ok) {
      pfnsan_user_access(mm!, a, r.pa, 'write');
      yield* mmio_or_phys_write_op(r.pa, data.subarray(done, done + n), 'cpu_user_write');
      done += n;
      faults = 0;
      continue;
    }
    if (++faults > MAX_FAULT_RETRIES) return { kind: 'FAULT_LOOP', addr: a };
    const res = yield* do_user_addr_fault(
      task,
      r ? r.error_code : X86_PF_USER | X86_PF_WRITE,
      a,
      true,
    );
    if (res.kind !== 'ok') return res;
  }
  return OK;
}

/**
 * The kernel-mode user copy loop: each page through the MMU (supervisor access, SMAP
 * lifted by stac); on a fault, either stop at once (page faults disabled) or run the
 * fault handler and retry, stopping when it cannot resolve the fault.
 * Return: bytes not copied.
 */
function* raw_copy_user(
  mm: mm_struct | null,
  uaddr: number,
  n: number,
  write: boolean,
  buf: Uint8Array,
  faults_enabled: boolean,
): Op<number> {
  if (!mm || uaddr + n > TASK_SIZE_MAX || uaddr + n < uaddr) return n; // !access_ok
  let done = 0;
  let faults = 0;
  while (done < n) {
    const a = uaddr + done;
    const len = Math.min(PAGE_SIZE - (a % PAGE_SIZE), n - done);
    const r = yield* mmu_access(mm, a, write, false, write ? 'copy_to_user' : 'copy_from_user');
    if (r.ok) {
      if (write) phys_write(r.pa, buf.subarray(done, done + len));
      else buf.set(phys_read(r.pa, len), done);
      done += len;
      faults = 0;
      continue;
    }
    if (!faults_enabled || ++faults > MAX_FAULT_RETRIES) return n - done;
    // The fault handler works on current->mm (the mm being copied from).
    const res = yield* do_user_addr_fault(get_current(), r.error_code, a, false);
    if (res.kind !== 'ok') return n - done;
  }
  return 0;
}

/**
 * __copy_from_user_inatomic(mm, to, from, n): copies from user memory with page faults
 * disabled: any fault ends the copy (the exception table fixes it up). `mm` is the
 * address space the CPU is running on (current->mm).
 * @kernel include/linux/uaccess.h:__copy_from_user_inatomic (all versions)
 * Return: the number of bytes not copied.
 */
export function __copy_from_user_inatomic(
  mm: mm_struct | null,
  to: Uint8Array,
  from: number,
  n: number,
): Op<number> {
  return raw_copy_user(mm, from, n, false, to, false);
}

/**
 * copy_from_user(to, from, n): copies from the current task's user memory, faulting
 * pages in; the uncopied tail of `to` is zeroed.
 * @kernel include/linux/uaccess.h:copy_from_user, _copy_from_user (all versions)
 * Locking: may sleep (mmap_lock must not be held).
 * Return: the number of bytes not copied.
 */
export function* copy_from_user(to: Uint8Array, from: number, n: number): Op<number> {
  const res = yield* raw_copy_user(get_current().mm, from, n, false, to, true);
  if (res) to.fill(0, n - res, n);
  return res;
}

/**
 * copy_to_user(to, from, n): copies into the current task's user memory, faulting pages
 * in (write faults break COW).
 * @kernel include/linux/uaccess.h:copy_to_user, _copy_to_user (all versions)
 * Locking: may sleep (mmap_lock must not be held).
 * Return: the number of bytes not copied.
 */
export function* copy_to_user(to: number, from: Uint8Array, n: number): Op<number> {
  return yield* raw_copy_user(get_current().mm, to, n, true, from, true);
}
