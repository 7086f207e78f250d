/**
 * KVM's generic memory core (virt/kvm/kvm_main.c, with the inline helpers of
 * include/linux/kvm_host.h): struct kvm with its memslots (gfn range -> userspace hva), the
 * KVM MMU notifier and its invalidation sequence, and the gfn -> pfn lookup of the fault
 * path (`__gfn_to_pfn_memslot` / `hva_to_pfn`, v6.13+ `kvm_follow_pfn` / `__kvm_faultin_pfn`)
 * down to `hva_to_pfn_remapped` for VM_IO|VM_PFNMAP VMAs (R-CALL-2) in each era:
 *
 * | version     | lookup                    | write check | reference on the pfn                 |
 * |-------------|---------------------------|-------------|--------------------------------------|
 * | ≤ 5.11      | follow_pfn                | none, *writable = true | kvm_get_pfn: get_page unless reserved |
 * | 5.12        | follow_pte(mm)            | RO_FAULT    | kvm_get_pfn (bd2fae8da794)           |
 * | 5.13–6.9    | follow_pte(mm)            | RO_FAULT    | get_page_unless_zero, else -EFAULT (f8be156be163, CVE-2021-22543) |
 * | 6.10–6.11   | follow_pte(vma)           | RO_FAULT    | same (29ae7d96d166)                  |
 * | 6.12        | follow_pfnmap_start/_end  | RO_FAULT    | same (5731aacd54a8)                  |
 * | 6.13+       | follow_pfnmap, kvm_follow_pfn | RO_FAULT | none: refcounted_page NULL; `kfp->pin && !allow_unsafe_mappings` ⇒ -EINVAL (68e51d0a437b, 8b15c3764c05) |
 *
 * Field and function names follow the version: `mmu_notifier_seq` / `mmu_notifier_count` /
 * `mmu_notifier_retry*` became `mmu_invalidate_seq` / `mmu_invalidate_in_progress` /
 * `mmu_invalidate_retry*` with 20ec3ebd707c "KVM: Rename mmu_notifier_* to
 * mmu_invalidate_*" (v6.0 cycle). The model's struct keeps the new field names; the Step
 * objects and the retry helpers carry the version's names, and calling a helper under the
 * name the run's version does not have throws.
 *
 * pfnsan: the pfn handed out by the remapped lookup is leased by the lookup itself
 * (follow_pfnmap_start / follow_pte / follow_pfn, done by pfnsan); when the fault path
 * follows the mmu_invalidate_retry protocol and the VM has its MMU notifier, KVM guards that
 * lease with its subscription (`pfnsan_lease_guard`, kind 'notifier'); the sPTE install
 * calls `pfnsan_use` (arch/x86/kvm/mmu/mmu.ts).
 *
 * Model knob: `kvm_create_vm(mm, { mmu_notifier: false })` makes a VM that never registers
 * its MMU notifier ("KVM without its MMU notifier"), for the scenario "a remapped pfn with
 * and without its MMU notifier". No kernel version ships this for x86; it stands for what
 * R-CALL-2 says the remapped path relies on.
 *
 * Left out: SRCU around memslots (memslots are a plain array, changed only by
 * kvm_set_memory_region before vCPUs run), memslot deletion and moves, dirty logging,
 * async page faults, the gfn_to_pfn_cache (pfncache.c) and its invalidation, hwpoison
 * signal delivery, mn_active_invalidate_count / mn_memslots_update_rcuwait, NUMA hints.
 * kvm_pfn_t error values are scaled into the exact-integer range (see KVM_PFN_ERR_MASK).
 *
 * @kernel virt/kvm/kvm_main.c, include/linux/kvm_host.h (v5.7+)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../../kernel/kernel.js';
import { since } from '../../version.js';
import { BUG_ON, WARN_ON_ONCE } from '../../kernel/panic.js';
import { EAGAIN, EEXIST, EFAULT, EHWPOISON, EINTR, EINVAL } from '../../include/linux/errno.js';
import type { mm_struct, page, vm_area_struct } from '../../include/linux/mm_types.js';
import {
  FOLL_HONOR_NUMA_FAULT,
  FOLL_HWPOISON,
  FOLL_NOWAIT,
  FOLL_WRITE,
  VM_IO,
  VM_PFNMAP,
  VM_READ,
  VM_WRITE,
} from '../../include/linux/mm.js';
import { FAULT_FLAG_WRITE } from '../../include/linux/mm_types.js';
import { PageReserved, pfn_to_page } from '../../include/linux/page-flags.js';
import { get_page, page_ref_count, page_ref_add, put_page } from '../../include/linux/page_ref.js';
import { rw_semaphore } from '../../include/linux/spinlock.js';
import { mmap_read_lock, mmap_read_unlock } from '../../include/linux/mmap_lock.js';
import { get_current } from '../../include/linux/sched.js';
import { is_zero_pfn, ptep_get, pte_unmap_unlock } from '../../include/linux/pgtable.js';
import { PAGE_SIZE, pte_pfn, pte_write } from '../../arch/x86/include/asm/pgtable_types.js';
import { pfn_valid } from '../../mm/sparse.js';
import { vma_lookup, find_vma_intersection } from '../../mm/vma.js';
import {
  fixup_user_fault,
  get_user_pages_fast_only,
  get_user_pages_unlocked,
  gup_fast_fallback,
  pin_user_pages_fast,
  pin_user_pages_unlocked,
  type bool_ptr,
  type page_array,
} from '../../mm/gup.js';
import { FOLL_FAST_ONLY, FOLL_GET } from '../../include/linux/mm.js';
import {
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  follow_pte,
} from '../../mm/memory.pfnmap.js';
import {
  mmu_notifier_register,
  type mmu_notifier,
  type mmu_notifier_range,
} from '../../mm/mmu_notifier.js';
import { pfnsan_lease_get, pfnsan_lease_guard, pfnsan_lease_of } from '../../mm/pfnsan/pfnsan.js';
import {
  kvm_flush_shadow_all,
  kvm_unmap_gfn_range,
  type kvm_mmu_state,
} from '../../arch/x86/kvm/mmu/mmu.js';

/* ------------------------------------------------------------------------------------ */
/* Types and constants (include/linux/kvm_host.h, include/linux/kvm_types.h)            */
/* ------------------------------------------------------------------------------------ */

export type gfn_t = number;
export type kvm_pfn_t = number;

/**
 * KVM_PFN_ERR_MASK is (0x7ffULL << 52) in the kernel and KVM_PFN_NOSLOT (0x1ULL << 63);
 * the model keeps their order and tests (every error value is >= the mask, no real pfn is)
 * with values a JS number holds exactly.
 */
export const KVM_PFN_ERR_MASK = 2 ** 48;
export const KVM_PFN_ERR_NOSLOT_MASK = 2 ** 49;
export const KVM_PFN_NOSLOT = 2 ** 50;
export const KVM_PFN_ERR_FAULT = KVM_PFN_ERR_MASK;
export const KVM_PFN_ERR_HWPOISON = KVM_PFN_ERR_MASK + 1;
export const KVM_PFN_ERR_RO_FAULT = KVM_PFN_ERR_MASK + 2;
/** v6.4+ (KVM_PFN_ERR_SIGPENDING, "KVM: Add kvm_handle_signal_exit()" era); before, -EINTR
 *  from GUP fell through to the VMA path. */
export const KVM_PFN_ERR_SIGPENDING = KVM_PFN_ERR_MASK + 3;
/** v6.13+ (6769d1bcd350 "KVM: Replace "async" pointer in gfn=>pfn with "no_wait" ..."). */
export const KVM_PFN_ERR_NEEDS_IO = KVM_PFN_ERR_MASK + 4;

/** is_error_pfn(pfn) */
export function is_error_pfn(pfn: kvm_pfn_t): boolean {
  return pfn >= KVM_PFN_ERR_MASK && pfn < KVM_PFN_ERR_NOSLOT_MASK;
}
/** is_error_noslot_pfn(pfn) */
export function is_error_noslot_pfn(pfn: kvm_pfn_t): boolean {
  return pfn >= KVM_PFN_ERR_MASK;
}
/** is_noslot_pfn(pfn) */
export function is_noslot_pfn(pfn: kvm_pfn_t): boolean {
  return pfn === KVM_PFN_NOSLOT;
}

/** KVM_HVA_ERR_BAD = PAGE_OFFSET, KVM_HVA_ERR_RO_BAD = PAGE_OFFSET + PAGE_SIZE (model:
 *  PAGE_OFFSET is any address above the user range). */
export const KVM_HVA_ERR_BAD = 2 ** 47;
export const KVM_HVA_ERR_RO_BAD = KVM_HVA_ERR_BAD + PAGE_SIZE;
/** kvm_is_error_hva(addr) */
export function kvm_is_error_hva(addr: number): boolean {
  return addr >= KVM_HVA_ERR_BAD;
}

/** Memslot flags (uapi KVM_MEM_*, KVM_MEMSLOT_INVALID). */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;
export const KVM_MEMSLOT_INVALID = 1 << 16;

/** struct kvm_memory_slot, reduced. */
export interface kvm_memory_slot {
  readonly id: number;
  readonly base_gfn: gfn_t;
  readonly npages: number;
  readonly userspace_addr: number;
  flags: number;
  /** Model: the VM owning the slot (the kernel reaches it through container_of/vcpu). */
  readonly kvm: kvm;
}

/** struct kvm, reduced to the memory side. */
export interface kvm {
  readonly id: number;
  /** kvm->mm: the VMM process whose address space backs guest memory. */
  readonly mm: mm_struct;
  readonly memslots: kvm_memory_slot[];
  /** kvm->mmu_lock: an rwlock_t on x86 since v5.12 (531810caa9f4), a spinlock before; the
   *  model uses the reader/writer lock for all versions and takes it for write. */
  readonly mmu_lock: rw_semaphore;
  readonly mmu_notifier: mmu_notifier;
  /** Model: whether kvm_init_mmu_notifier registered mmu_notifier (see the file comment). */
  readonly has_mmu_notifier: boolean;
  /** mmu_invalidate_seq (mmu_notifier_seq before 20ec3ebd707c). */
  mmu_invalidate_seq: number;
  /** mmu_invalidate_in_progress (mmu_notifier_count before 20ec3ebd707c). */
  mmu_invalidate_in_progress: number;
  /** Range of the running invalidations: hvas before v6.8, gfns from v6.8 (the
   *  guest_memfd series' "KVM: Use gfn instead of hva for mmu_notifier_retry"). */
  mmu_invalidate_range_start: number;
  mmu_invalidate_range_end: number;
  /** Step object of the sequence and counter (lockless readers in the fault path). */
  readonly seqObj: string;
  /** arch state (x86 MMU: the sPTE table). */
  readonly arch: kvm_mmu_state;
}

/** struct kvm_vcpu, reduced. */
export interface kvm_vcpu {
  readonly kvm: kvm;
  readonly vcpu_id: number;
}

/** INVALID_GPA: no invalidation range recorded yet (v6.8+). */
export const INVALID_GPA = -1;

/* ------------------------------------------------------------------------------------ */
/* Module parameter kvm.allow_unsafe_mappings (v6.13+)                                   */
/* ------------------------------------------------------------------------------------ */

interface KvmModuleState {
  allow_unsafe_mappings: boolean;
}

function kvmState(): KvmModuleState {
  const k = currentKernel();
  return ((k.sub.kvm_module as KvmModuleState | undefined) ??= { allow_unsafe_mappings: false });
}

/**
 * `kvm.allow_unsafe_mappings=` (module_param bool, 0444, default off): allow direct
 * access without MMU-notifier protection (a pin of a remapped pfn).
 * @kernel virt/kvm/kvm_main.c:allow_unsafe_mappings (v6.13+, 68e51d0a437b "KVM: Disallow
 *   direct access (w/o mmu_notifier) to unpinned pfn by default")
 */
export function allow_unsafe_mappings(): boolean {
  if (!since(6, 13)) absent('kvm.allow_unsafe_mappings', 'added by 68e51d0a437b, v6.13');
  return kvmState().allow_unsafe_mappings;
}

/** Setter of the module parameter (the boot command line / modprobe option). */
export function set_allow_unsafe_mappings(v: boolean): void {
  if (!since(6, 13)) absent('kvm.allow_unsafe_mappings', 'added by 68e51d0a437b, v6.13');
  kvmState().allow_unsafe_mappings = v;
}

function absent(what: string, why: string): never {
  throw new Error(`${what} does not exist in ${currentKernel().version.name} (${why})`);
}

/* ------------------------------------------------------------------------------------ */
/* VM creation and memslots                                                              */
/* ------------------------------------------------------------------------------------ */

export interface kvm_create_opts {
  /** Model knob: false = a VM without its MMU notifier (default true). */
  readonly mmu_notifier?: boolean;
}

/**
 * kvm_create_vm(type): a VM of current's mm, with its MMU notifier registered through
 * kvm_init_mmu_notifier (unless the model knob says otherwise).
 * @kernel virt/kvm/kvm_main.c:kvm_create_vm, kvm_init_mmu_notifier (all versions)
 * Locking: takes mmap_lock for write (mmu_notifier_register).
 * Return: the VM (the kernel returns a pointer or ERR_PTR; no failure is modelled).
 */
export function* kvm_create_vm(mm: mm_struct, opts: kvm_create_opts = {}): Op<kvm> {
  const id = currentKernel().nextId('kvm');
  const seqName = since(6, 0) ? 'mmu_invalidate_seq' : 'mmu_notifier_seq';
  const k: kvm = {
    id,
    mm,
    memslots: [],
    mmu_lock: new rw_semaphore(`kvm${id}.mmu_lock`),
    mmu_notifier: { name: `kvm${id}`, mm: null, ops: kvm_mmu_notifier_ops },
    has_mmu_notifier: opts.mmu_notifier !== false,
    mmu_invalidate_seq: 0,
    mmu_invalidate_in_progress: 0,
    mmu_invalidate_range_start: INVALID_GPA,
    mmu_invalidate_range_end: INVALID_GPA,
    seqObj: `kvm${id}.${seqName}`,
    arch: { sptes: new Map() },
  };
  vms.set(k.mmu_notifier, k);
  if (k.has_mmu_notifier) yield* kvm_init_mmu_notifier(k);
  return k;
}

/** The VM of a notifier subscription (container_of(mn, struct kvm, mmu_notifier)). */
const vms = new WeakMap<mmu_notifier, kvm>();
function mmu_notifier_to_kvm(mn: mmu_notifier): kvm {
  return vms.get(mn)!;
}

/**
 * kvm_init_mmu_notifier(kvm): registers kvm->mmu_notifier on current->mm.
 * @kernel virt/kvm/kvm_main.c:kvm_init_mmu_notifier (all versions)
 * Return: 0.
 */
export function* kvm_init_mmu_notifier(k: kvm): Op<number> {
  return yield* mmu_notifier_register(k.mmu_notifier, k.mm);
}

/** kvm_vcpu for a VM (kvm_vm_ioctl_create_vcpu, reduced). */
export function kvm_vcpu_create(k: kvm, vcpu_id = 0): kvm_vcpu {
  return { kvm: k, vcpu_id };
}

/** struct kvm_userspace_memory_region */
export interface kvm_userspace_memory_region {
  readonly slot: number;
  readonly flags: number;
  readonly guest_phys_addr: number;
  readonly memory_size: number;
  readonly userspace_addr: number;
}

/**
 * kvm_set_memory_region(kvm, mem): KVM_SET_USER_MEMORY_REGION creating a memslot: flags
 * other than LOG_DIRTY_PAGES|READONLY, unaligned size, gpa or hva, or a zero size ⇒ -EINVAL;
 * overlap with another slot ⇒ -EEXIST.
 * @kernel virt/kvm/kvm_main.c:__kvm_set_memory_region (check_memory_region_flags) (all
 *   versions; model: creation only)
 * Locking: kvm->slots_lock (not modelled: called before vCPUs run).
 * Return: 0 or -errno.
 */
export function kvm_set_memory_region(k: kvm, mem: kvm_userspace_memory_region): number {
  if (mem.flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) return -EINVAL;
  if (mem.memory_size % PAGE_SIZE || mem.guest_phys_addr % PAGE_SIZE) return -EINVAL;
  if (mem.userspace_addr % PAGE_SIZE) return -EINVAL;
  if (mem.memory_size === 0) return -EINVAL; // deletion is not modelled
  const base_gfn = mem.guest_phys_addr / PAGE_SIZE;
  const npages = mem.memory_size / PAGE_SIZE;
  for (const s of k.memslots) {
    if (s.id === mem.slot) return -EEXIST;
    if (base_gfn < s.base_gfn + s.npages && s.base_gfn < base_gfn + npages) return -EEXIST;
  }
  k.memslots.push({
    id: mem.slot,
    base_gfn,
    npages,
    userspace_addr: mem.userspace_addr,
    flags: mem.flags,
    kvm: k,
  });
  return 0;
}

/** gfn_to_memslot(kvm, gfn) / kvm_vcpu_gfn_to_memslot: the slot holding gfn, or NULL. */
export function gfn_to_memslot(k: kvm, gfn: gfn_t): kvm_memory_slot | null {
  for (const s of k.memslots) if (gfn >= s.base_gfn && gfn < s.base_gfn + s.npages) return s;
  return null;
}

/** memslot_is_readonly(slot) */
export function memslot_is_readonly(slot: kvm_memory_slot): boolean {
  return (slot.flags & KVM_MEM_READONLY) !== 0;
}

/** __gfn_to_hva_memslot(slot, gfn) */
export function __gfn_to_hva_memslot(slot: kvm_memory_slot, gfn: gfn_t): number {
  return slot.userspace_addr + (gfn - slot.base_gfn) * PAGE_SIZE;
}

/**
 * __gfn_to_hva_many(slot, gfn, nr_pages, write): the hva of gfn; KVM_HVA_ERR_BAD for no or
 * an invalid slot, KVM_HVA_ERR_RO_BAD for a write to a read-only slot.
 * @kernel virt/kvm/kvm_main.c:__gfn_to_hva_many (all versions)
 */
export function __gfn_to_hva_many(
  slot: kvm_memory_slot | null,
  gfn: gfn_t,
  write: boolean,
): number {
  if (!slot || slot.flags & KVM_MEMSLOT_INVALID) return KVM_HVA_ERR_BAD;
  if (memslot_is_readonly(slot) && write) return KVM_HVA_ERR_RO_BAD;
  return __gfn_to_hva_memslot(slot, gfn);
}

/** hva_to_gfn_memslot(hva, slot) */
export function hva_to_gfn_memslot(hva: number, slot: kvm_memory_slot): gfn_t {
  return slot.base_gfn + Math.floor((hva - slot.userspace_addr) / PAGE_SIZE);
}

/* ------------------------------------------------------------------------------------ */
/* The MMU notifier                                                                      */
/* ------------------------------------------------------------------------------------ */

/** struct kvm_gfn_range: the part of an hva range that falls in one memslot. */
export interface kvm_gfn_range {
  readonly slot: kvm_memory_slot;
  readonly start: gfn_t;
  readonly end: gfn_t;
  readonly may_block: boolean;
}

/**
 * kvm_mmu_invalidate_begin(kvm[, start, end]) (inline in the notifier before v5.13;
 * kvm_inc_notifier_count v5.13–v5.19): one more invalidation in progress. Before v6.8 it
 * takes the hva range and widens the recorded one; from v6.8 it resets the range to
 * INVALID_GPA and kvm_mmu_invalidate_range_add adds gfns per memslot.
 * @kernel virt/kvm/kvm_main.c:kvm_mmu_invalidate_begin (all versions under these names)
 * Locking: kvm->mmu_lock held for write.
 */
export function* kvm_mmu_invalidate_begin(
  k: kvm,
  start = INVALID_GPA,
  end = INVALID_GPA,
): Op<void> {
  yield { obj: k.seqObj, kind: 'write', what: inProgressName() + '++' };
  k.mmu_invalidate_in_progress++;
  if (since(6, 8)) {
    if (k.mmu_invalidate_in_progress === 1) {
      k.mmu_invalidate_range_start = INVALID_GPA;
      k.mmu_invalidate_range_end = INVALID_GPA;
    }
    return;
  }
  if (k.mmu_invalidate_in_progress === 1) {
    k.mmu_invalidate_range_start = start;
    k.mmu_invalidate_range_end = end;
  } else {
    k.mmu_invalidate_range_start = Math.min(k.mmu_invalidate_range_start, start);
    k.mmu_invalidate_range_end = Math.max(k.mmu_invalidate_range_end, end);
  }
}

/**
 * kvm_mmu_invalidate_range_add(kvm, start, end): widens the in-progress range (gfns).
 * @kernel virt/kvm/kvm_main.c:kvm_mmu_invalidate_range_add (v6.8+)
 * Locking: kvm->mmu_lock held for write.
 */
export function kvm_mmu_invalidate_range_add(k: kvm, start: gfn_t, end: gfn_t): void {
  WARN_ON_ONCE(!k.mmu_invalidate_in_progress, 'kvm_mmu_invalidate_range_add');
  if (k.mmu_invalidate_range_start === INVALID_GPA) {
    k.mmu_invalidate_range_start = start;
    k.mmu_invalidate_range_end = end;
  } else {
    k.mmu_invalidate_range_start = Math.min(k.mmu_invalidate_range_start, start);
    k.mmu_invalidate_range_end = Math.max(k.mmu_invalidate_range_end, end);
  }
}

/**
 * kvm_mmu_invalidate_end(kvm): bumps the sequence, then one invalidation fewer in
 * progress (the order lockless readers rely on: smp_wmb between the two).
 * @kernel virt/kvm/kvm_main.c:kvm_mmu_invalidate_end (inline in the notifier before
 *   v5.13, with BUG_ON(count < 0); KVM_BUG_ON later)
 * Locking: kvm->mmu_lock held for write.
 */
export function* kvm_mmu_invalidate_end(k: kvm): Op<void> {
  yield { obj: k.seqObj, kind: 'write', what: seqName() + '++' };
  k.mmu_invalidate_seq++;
  k.mmu_invalidate_in_progress--;
  BUG_ON(k.mmu_invalidate_in_progress < 0, `kvm${k.id}: ${inProgressName()} < 0`);
}

function seqName(): string {
  return since(6, 0) ? 'mmu_invalidate_seq' : 'mmu_notifier_seq';
}
function inProgressName(): string {
  return since(6, 0) ? 'mmu_invalidate_in_progress' : 'mmu_notifier_count';
}

/**
 * __kvm_handle_hva_range for the two invalidation callbacks: for every memslot
 * overlapping [start, end), take mmu_lock (once, at the first overlap), run the on_lock
 * update (begin or end), then for a start zap the gfn range (kvm_mmu_unmap_gfn_range:
 * range_add v6.8+, kvm_unmap_gfn_range). Before v5.13 (3039bcc74498 "KVM: Move x86's MMU
 * notifier memslot walkers to generic code") the notifier took mmu_lock and updated the
 * count and sequence whether or not a memslot overlapped.
 */
function* kvm_handle_hva_range(
  k: kvm,
  start: number,
  end: number,
  on_lock: 'begin' | 'end',
): Op<void> {
  let locked = false;
  function* lock(): Op<void> {
    yield* k.mmu_lock.downWrite('write_lock');
    locked = true;
    if (on_lock === 'begin') yield* kvm_mmu_invalidate_begin(k, start, end);
    else yield* kvm_mmu_invalidate_end(k);
  }
  if (!since(5, 13)) yield* lock();
  for (const slot of k.memslots) {
    const s_hva = slot.userspace_addr;
    const e_hva = s_hva + slot.npages * PAGE_SIZE;
    const hs = Math.max(start, s_hva);
    const he = Math.min(end, e_hva);
    if (hs >= he) continue;
    const range: kvm_gfn_range = {
      slot,
      start: hva_to_gfn_memslot(hs, slot),
      end: hva_to_gfn_memslot(he + PAGE_SIZE - 1, slot),
      may_block: true,
    };
    if (!locked) yield* lock();
    if (on_lock === 'begin') {
      if (since(6, 8)) kvm_mmu_invalidate_range_add(k, range.start, range.end);
      yield* kvm_unmap_gfn_range(k, range);
    }
  }
  if (locked) yield* k.mmu_lock.upWrite('write_unlock');
}

/**
 * kvm_mmu_notifier_invalidate_range_start(mn, range): marks an invalidation in progress
 * and zaps the sPTEs of every gfn the hva range maps (kvm_unmap_gfn_range), flushing the
 * guest TLB. From then until _end, faults on the range retry (mmu_invalidate_retry).
 * @kernel virt/kvm/kvm_main.c:kvm_mmu_notifier_invalidate_range_start (all versions;
 *   memslot walk 3039bcc74498 v5.13)
 * Locking: called by the MMU-notifier core; takes kvm->mmu_lock for write.
 * Return: 0.
 */
export function* kvm_mmu_notifier_invalidate_range_start(
  mn: mmu_notifier,
  range: mmu_notifier_range,
): Op<number> {
  const k = mmu_notifier_to_kvm(mn);
  yield* kvm_handle_hva_range(k, range.start, range.end, 'begin');
  return 0;
}

/**
 * kvm_mmu_notifier_invalidate_range_end(mn, range): the invalidation is over: the
 * sequence moves and the in-progress count drops (kvm_mmu_invalidate_end).
 * @kernel virt/kvm/kvm_main.c:kvm_mmu_notifier_invalidate_range_end (all versions)
 * Locking: takes kvm->mmu_lock for write.
 */
export function* kvm_mmu_notifier_invalidate_range_end(
  mn: mmu_notifier,
  range: mmu_notifier_range,
): Op<void> {
  const k = mmu_notifier_to_kvm(mn);
  yield* kvm_handle_hva_range(k, range.start, range.end, 'end');
}

/**
 * kvm_mmu_notifier_release(mn, mm): the mm is going away: zap every sPTE.
 * @kernel virt/kvm/kvm_main.c:kvm_mmu_notifier_release (all versions)
 */
export function* kvm_mmu_notifier_release(mn: mmu_notifier, _mm: mm_struct): Op<void> {
  const k = mmu_notifier_to_kvm(mn);
  yield* kvm_flush_shadow_all(k);
}

/** kvm_mmu_notifier_ops */
export const kvm_mmu_notifier_ops = {
  invalidate_range_start: kvm_mmu_notifier_invalidate_range_start,
  invalidate_range_end: kvm_mmu_notifier_invalidate_range_end,
  release: kvm_mmu_notifier_release,
};

/**
 * mmu_invalidate_retry(kvm, mmu_seq) (mmu_notifier_retry before 20ec3ebd707c): true while
 * an invalidation is in progress or once one completed since mmu_seq was sampled.
 * @kernel include/linux/kvm_host.h:mmu_invalidate_retry (all versions under either name)
 * Locking: kvm->mmu_lock held.
 */
export function mmu_invalidate_retry(k: kvm, mmu_seq: number): boolean {
  if (!since(6, 0)) absent('mmu_invalidate_retry()', 'mmu_notifier_retry() before 20ec3ebd707c');
  return __mmu_invalidate_retry(k, mmu_seq);
}
/** mmu_notifier_retry(kvm, mmu_seq): the pre-20ec3ebd707c name of mmu_invalidate_retry. */
export function mmu_notifier_retry(k: kvm, mmu_seq: number): boolean {
  if (since(6, 0)) absent('mmu_notifier_retry()', 'renamed mmu_invalidate_retry() by 20ec3ebd707c');
  return __mmu_invalidate_retry(k, mmu_seq);
}
function __mmu_invalidate_retry(k: kvm, mmu_seq: number): boolean {
  if (k.mmu_invalidate_in_progress) return true;
  return k.mmu_invalidate_seq !== mmu_seq;
}

/**
 * mmu_invalidate_retry_gfn(kvm, mmu_seq, gfn) (v6.8+) / mmu_invalidate_retry_hva(kvm,
 * mmu_seq, hva) (v6.0–v6.7) / mmu_notifier_retry_hva (v5.12–v5.19): like
 * mmu_invalidate_retry, but an in-progress invalidation only forces a retry when its
 * range covers the address.
 * @kernel include/linux/kvm_host.h:mmu_invalidate_retry_gfn, mmu_invalidate_retry_hva
 * Locking: kvm->mmu_lock held.
 */
export function mmu_invalidate_retry_gfn(k: kvm, mmu_seq: number, gfn: gfn_t): boolean {
  if (!since(6, 8)) absent('mmu_invalidate_retry_gfn()', 'added with the guest_memfd series, v6.8');
  return retry_range(k, mmu_seq, gfn);
}
export function mmu_invalidate_retry_hva(k: kvm, mmu_seq: number, hva: number): boolean {
  if (!since(6, 0) || since(6, 8))
    absent('mmu_invalidate_retry_hva()', 'exists v6.0–v6.7 (20ec3ebd707c, then _gfn)');
  return retry_range(k, mmu_seq, hva);
}
export function mmu_notifier_retry_hva(k: kvm, mmu_seq: number, hva: number): boolean {
  if (!since(5, 12) || since(6, 0))
    absent('mmu_notifier_retry_hva()', 'exists v5.12–v5.19 (renamed by 20ec3ebd707c)');
  return retry_range(k, mmu_seq, hva);
}
function retry_range(k: kvm, mmu_seq: number, addr: number): boolean {
  if (
    k.mmu_invalidate_in_progress &&
    addr >= k.mmu_invalidate_range_start &&
    addr < k.mmu_invalidate_range_end
  )
    return true;
  return k.mmu_invalidate_seq !== mmu_seq;
}

/**
 * The fault path's snapshot of the sequence (`mmu_seq = kvm->mmu_invalidate_seq;
 * smp_rmb();`): a lockless read, hence a Step.
 */
export function* kvm_read_mmu_invalidate_seq(k: kvm): Op<number> {
  yield { obj: k.seqObj, kind: 'read', what: seqName() };
  return k.mmu_invalidate_seq;
}

/* ------------------------------------------------------------------------------------ */
/* Refcounted pfns                                                                       */
/* ------------------------------------------------------------------------------------ */

/**
 * kvm_is_reserved_pfn(pfn) (≤ v5.19): no struct page, or PG_reserved other than the zero
 * page (ZONE_DEVICE pages are not modelled).
 * @kernel virt/kvm/kvm_main.c:kvm_is_reserved_pfn (v5.7–v5.19)
 */
export function kvm_is_reserved_pfn(pfn: kvm_pfn_t): boolean {
  if (pfn_valid(pfn)) return PageReserved(pfn_to_page(pfn)) && !is_zero_pfn(pfn);
  return true;
}

/**
 * kvm_pfn_to_refcounted_page(pfn) (v6.0–v6.12): the struct page KVM may reference, NULL
 * for no struct page or PG_reserved (the zero page is refcounted).
 * @kernel virt/kvm/kvm_main.c:kvm_pfn_to_refcounted_page (b14b2690c50e, v6.0–v6.12)
 */
export function kvm_pfn_to_refcounted_page(pfn: kvm_pfn_t): page | null {
  if (!pfn_valid(pfn)) return null;
  const p = pfn_to_page(pfn);
  if (!PageReserved(p)) return p;
  if (is_zero_pfn(pfn)) return p;
  return null;
}

function refcounted(pfn: kvm_pfn_t): page | null {
  return since(6, 0)
    ? kvm_pfn_to_refcounted_page(pfn)
    : kvm_is_reserved_pfn(pfn)
      ? null
      : pfn_to_page(pfn);
}

/**
 * kvm_get_pfn(pfn) (≤ v5.12 on this path): get_page() unless reserved — also on a valid
 * page whose refcount is 0 (a tail page of a non-compound allocation mapped by a
 * driver), which VM_BUG_ONs with CONFIG_DEBUG_VM and otherwise takes it from 0 to 1.
 * @kernel virt/kvm/kvm_main.c:kvm_get_pfn (v5.7–v5.12 here)
 */
export function kvm_get_pfn(pfn: kvm_pfn_t): void {
  if (!kvm_is_reserved_pfn(pfn)) get_page(pfn_to_page(pfn));
}

/**
 * kvm_try_get_pfn(pfn): a reference on refcounted pfns only if the count is not zero.
 * @kernel virt/kvm/kvm_main.c:kvm_try_get_pfn (f8be156be163 "KVM: do not allow mapping
 *   valid but non-reference-counted pages", v5.13, CVE-2021-22543; removed v6.13)
 * Return: 1 for non-refcounted pfns or a reference taken, 0 when the count was zero.
 */
export function kvm_try_get_pfn(pfn: kvm_pfn_t): number {
  const p = refcounted(pfn);
  if (!p) return 1;
  if (page_ref_count(p) === 0) return 0; // get_page_unless_zero
  page_ref_add(p, 1);
  return 1;
}

/**
 * kvm_release_pfn_clean(pfn) (≤ v6.12): drops the reference the lookup took.
 * @kernel virt/kvm/kvm_main.c:kvm_release_pfn_clean (v5.7–v6.12)
 */
export function kvm_release_pfn_clean(pfn: kvm_pfn_t): void {
  if (since(6, 13)) absent('kvm_release_pfn_clean()', 'removed by 93b7da404f5b, v6.13');
  if (is_error_noslot_pfn(pfn)) return;
  const p = refcounted(pfn);
  if (p) put_page(p);
}

/**
 * kvm_release_page_clean(page) (v6.13+ form: NULL is fine): puts a refcounted page.
 * @kernel virt/kvm/kvm_main.c:kvm_release_page_clean (all versions)
 */
export function kvm_release_page_clean(p: page | null): void {
  if (!p) return;
  put_page(p);
}

/* ------------------------------------------------------------------------------------ */
/* gfn -> pfn                                                                            */
/* ------------------------------------------------------------------------------------ */

/**
 * struct kvm_follow_pfn (v6.13+, c0461f20630b "KVM: Introduce kvm_follow_pfn() ..."). The
 * model uses it in every version as the bundle of hva_to_pfn's arguments; before v6.13
 * they were separate (addr, atomic, interruptible, async, write_fault, writable):
 * `flags & FOLL_WRITE` = write_fault, `map_writable` = writable, `pin` is false.
 */
export interface kvm_follow_pfn {
  readonly slot: kvm_memory_slot | null;
  readonly gfn: gfn_t;
  flags: number;
  /** Pin (FOLL_PIN) instead of get: kvm_vcpu_map (v6.13+). */
  readonly pin: boolean;
  map_writable: bool_ptr | null;
  refcounted_page: { value: page | null } | null;
  hva: number;
  /**
   * Model: the caller follows the mmu_invalidate_retry protocol (the page-fault path)
   * and the VM has its MMU notifier: the remapped pfn's lease is guarded by `sub`.
   */
  notifier_guard: { readonly sub: mmu_notifier; readonly mm: mm_struct } | null;
}

export function kvm_follow_pfn_init(
  slot: kvm_memory_slot | null,
  gfn: gfn_t,
  flags: number,
  extra: Partial<
    Pick<kvm_follow_pfn, 'pin' | 'map_writable' | 'refcounted_page' | 'notifier_guard'>
  > = {},
): kvm_follow_pfn {
  return {
    slot,
    gfn,
    flags,
    pin: extra.pin ?? false,
    map_writable: extra.map_writable ?? null,
    refcounted_page: extra.refcounted_page ?? null,
    hva: 0,
    notifier_guard: extra.notifier_guard ?? null,
  };
}

/**
 * kvm_resolve_pfn(kfp, page, map, writable) (v6.13+): sets *map_writable and
 * *refcounted_page (the GUP page, NULL for a remapped pfn).
 * @kernel virt/kvm/kvm_main.c:kvm_resolve_pfn (v6.13+; 8b15c3764c05 dropped the last
 *   reference-taking on remapped pfns)
 */
function kvm_resolve_pfn(
  kfp: kvm_follow_pfn,
  p: page | null,
  mapPfn: number | null,
  writable: boolean,
): kvm_pfn_t {
  WARN_ON_ONCE((p !== null) === (mapPfn !== null), 'kvm_resolve_pfn');
  if (kfp.map_writable) kfp.map_writable.value = writable;
  const pfn = mapPfn !== null ? mapPfn : (p as number);
  if (kfp.refcounted_page) kfp.refcounted_page.value = p;
  return pfn;
}

/**
 * hva_to_pfn_fast(kfp, &pfn): GUP-fast for a write (or a read that may map writable):
 * get_user_page_fast_only(hva, FOLL_WRITE) (pin_user_pages_fast for kfp->pin, v6.13+).
 * @kernel virt/kvm/kvm_main.c:hva_to_pfn_fast (all versions; __get_user_pages_fast v5.7)
 * Return: { ok, pfn }.
 */
export function* hva_to_pfn_fast(kfp: kvm_follow_pfn): Op<{ ok: boolean; pfn: kvm_pfn_t }> {
  if (!(kfp.flags & FOLL_WRITE || kfp.map_writable)) return { ok: false, pfn: 0 };
  const pages: page_array = [null];
  let r: boolean;
  if (kfp.pin) r = (yield* pin_user_pages_fast(kfp.hva, 1, FOLL_WRITE, pages)) === 1;
  else if (since(5, 8)) r = (yield* get_user_pages_fast_only(kfp.hva, 1, FOLL_WRITE, pages)) === 1;
  else
    r = (yield* gup_fast_fallback(kfp.hva, 1, FOLL_WRITE | FOLL_GET | FOLL_FAST_ONLY, pages)) === 1;
  if (!r) return { ok: false, pfn: 0 };
  const p = pages[0]!;
  if (since(6, 13)) return { ok: true, pfn: kvm_resolve_pfn(kfp, p, null, true) };
  if (kfp.map_writable) kfp.map_writable.value = true;
  return { ok: true, pfn: p as number };
}

/**
 * hva_to_pfn_slow(kfp, &pfn): get_user_pages_unlocked(hva, 1, FOLL_HWPOISON|flags)
 * (pin_user_pages_unlocked for kfp->pin), then for a read that may map writable, a
 * get_user_page_fast_only(FOLL_WRITE) to upgrade.
 * @kernel virt/kvm/kvm_main.c:hva_to_pfn_slow (all versions)
 * Locking: mmap_lock not held (GUP takes it).
 * Return: { npages, pfn }: 1 or -errno as GUP returned.
 */
export function* hva_to_pfn_slow(kfp: kvm_follow_pfn): Op<{ npages: number; pfn: kvm_pfn_t }> {
  let flags = FOLL_HWPOISON | kfp.flags;
  if (since(6, 7)) flags |= FOLL_HONOR_NUMA_FAULT;
  const pages: page_array = [null];
  const npages = kfp.pin
    ? yield* pin_user_pages_unlocked(kfp.hva, 1, pages, flags)
    : yield* get_user_pages_unlocked(kfp.hva, 1, pages, flags);
  if (npages !== 1) return { npages, pfn: 0 };
  let p = pages[0]!;
  let writable = (flags & FOLL_WRITE) !== 0;
  if (!(flags & FOLL_WRITE) && kfp.map_writable && !kfp.pin) {
    const wpages: page_array = [null];
    const w = since(5, 8)
      ? yield* get_user_pages_fast_only(kfp.hva, 1, FOLL_WRITE, wpages)
      : yield* gup_fast_fallback(kfp.hva, 1, FOLL_WRITE | FOLL_GET | FOLL_FAST_ONLY, wpages);
    if (w === 1) {
      put_page(p);
      p = wpages[0]!;
      writable = true;
    }
  }
  if (since(6, 13)) return { npages, pfn: kvm_resolve_pfn(kfp, p, null, writable) };
  if (kfp.map_writable) kfp.map_writable.value = writable;
  return { npages, pfn: p as number };
}

/**
 * vma_is_valid(vma, write_fault): readable, and writable for a write.
 * @kernel virt/kvm/kvm_main.c:vma_is_valid (all versions)
 */
export function vma_is_valid(vma: vm_area_struct, write_fault: boolean): boolean {
  if (!(vma.vm_flags & VM_READ)) return false;
  if (write_fault && !(vma.vm_flags & VM_WRITE)) return false;
  return true;
}

/**
 * Guards the pfn's lease with KVM's MMU-notifier subscription when the fault path follows
 * the mmu_invalidate_retry protocol: the lease follow_pfnmap_start bound to its argument
 * block (pfnsan_lease_of), or, for follow_pte/follow_pfn whose window has ended or is about
 * to, a lease of KVM's own that only the notifier keeps valid.
 */
function guard(kfp: kvm_follow_pfn, lookup: object, pfn: number): void {
  if (!kfp.notifier_guard) return;
  const start = kfp.hva - (kfp.hva % PAGE_SIZE);
  const g = {
    kind: 'notifier' as const,
    sub: kfp.notifier_guard.sub,
    mm: kfp.notifier_guard.mm,
    start,
    end: start + PAGE_SIZE,
  };
  const lease = pfnsan_lease_of(lookup);
  if (lease) pfnsan_lease_guard(lease, g);
  else pfnsan_lease_get(pfn, 1, 'hva_to_pfn_remapped', g);
}

/**
 * hva_to_pfn_remapped(vma, kfp, &pfn): the pfn a VM_IO|VM_PFNMAP VMA maps at kfp->hva,
 * faulting it in with fixup_user_fault when the lookup fails (R-CALL-2):
 * - v6.13+: `kfp->pin && !allow_unsafe_mappings` ⇒ -EINVAL first;
 * - lookup (follow_pfn ≤5.11, follow_pte 5.12–6.11, follow_pfnmap_start 6.12+) fails ⇒
 *   fixup_user_fault(current->mm, hva, write ? FAULT_FLAG_WRITE : 0, &unlocked); unlocked
 *   ⇒ -EAGAIN (the caller re-looks-up the VMA); its error returned; the second lookup's
 *   error returned;
 * - 5.12+: a write fault on a non-writable entry ⇒ pfn KVM_PFN_ERR_RO_FAULT, r = 0;
 *   ≤5.11 there is no write check and *writable = true;
 * - ≤5.12: kvm_get_pfn(pfn) (get_page on any non-reserved page); 5.13–6.12:
 *   kvm_try_get_pfn fails (refcount 0) ⇒ r = -EFAULT; 6.13+: no reference at all,
 *   refcounted_page NULL: only KVM's MMU notifier keeps the pfn valid.
 * @kernel virt/kvm/kvm_main.c:hva_to_pfn_remapped (add6a0cd1c5b v4.8; bd2fae8da794 v5.12;
 *   f8be156be163 v5.13; 29ae7d96d166 v6.10; 5731aacd54a8 v6.12; 68e51d0a437b and
 *   8b15c3764c05 v6.13)
 * Locking: current->mm->mmap_lock held for read (dropped and retaken when -EAGAIN).
 * Return: { r: 0 or -errno, pfn }.
 */
export function* hva_to_pfn_remapped(
  vma: vm_area_struct,
  kfp: kvm_follow_pfn,
): Op<{ r: number; pfn: kvm_pfn_t }> {
  const write_fault = (kfp.flags & FOLL_WRITE) !== 0;
  const addr = kfp.hva;

  if (since(6, 13) && kfp.pin && !allow_unsafe_mappings()) return { r: -EINVAL, pfn: 0 };

  /* get_user_pages fails for VM_IO and VM_PFNMAP vmas and does not call the fault
   * handler, so do it here. */
  function* fixup(): Op<number> {
    const unlocked: bool_ptr = { value: false };
    const r = yield* fixup_user_fault(
      get_current().mm!,
      addr,
      write_fault ? FAULT_FLAG_WRITE : 0,
      unlocked,
    );
    if (unlocked.value) return -EAGAIN;
    return r;
  }

  if (since(6, 12)) {
    const args = follow_pfnmap_args_init(vma, addr);
    let r = yield* follow_pfnmap_start(args);
    if (r) {
      r = yield* fixup();
      if (r) return { r, pfn: 0 };
      r = yield* follow_pfnmap_start(args);
      if (r) return { r, pfn: 0 };
    }
    let pfn: kvm_pfn_t;
    if (write_fault && !args.writable) {
      pfn = KVM_PFN_ERR_RO_FAULT;
    } else if (since(6, 13)) {
      pfn = kvm_resolve_pfn(kfp, null, args.pfn, args.writable);
      guard(kfp, args, args.pfn);
    } else {
      if (kfp.map_writable) kfp.map_writable.value = args.writable;
      pfn = args.pfn;
      if (!kvm_try_get_pfn(pfn)) r = -EFAULT;
      guard(kfp, args, args.pfn);
    }
    yield* follow_pfnmap_end(args);
    return { r, pfn };
  }

  if (since(5, 12)) {
    const mmOrVma = since(6, 10) ? vma : vma.vm_mm;
    let l = yield* follow_pte(mmOrVma, addr);
    if (l.ret) {
      const r = yield* fixup();
      if (r) return { r, pfn: 0 };
      l = yield* follow_pte(mmOrVma, addr);
      if (l.ret) return { r: l.ret, pfn: 0 };
    }
    const pte = ptep_get(l.ptep!);
    let r = 0;
    let pfn: kvm_pfn_t;
    if (write_fault && !pte_write(pte)) {
      pfn = KVM_PFN_ERR_RO_FAULT;
    } else {
      if (kfp.map_writable) kfp.map_writable.value = pte_write(pte);
      pfn = pte_pfn(pte);
      /* Get a reference here because callers of *hva_to_pfn* and *gfn_to_pfn* ultimately
       * call kvm_release_pfn_clean on the returned pfn. */
      if (since(5, 13)) {
        if (!kvm_try_get_pfn(pfn)) r = -EFAULT;
      } else kvm_get_pfn(pfn);
      guard(kfp, l, pfn);
    }
    yield* pte_unmap_unlock(l.ptep!, l.ptl!);
    return { r, pfn };
  }

  /* ≤ v5.11: follow_pfn, no write check, writable assumed */
  let f = yield* follow_pfn(vma, addr);
  if (f.ret) {
    const r = yield* fixup();
    if (r) return { r, pfn: 0 };
    f = yield* follow_pfn(vma, addr);
    if (f.ret) return { r: f.ret, pfn: 0 };
  }
  if (kfp.map_writable) kfp.map_writable.value = true;
  kvm_get_pfn(f.pfn);
  guard(kfp, f, f.pfn);
  return { r: 0, pfn: f.pfn };
}

/**
 * hva_to_pfn(kfp): GUP-fast, GUP slow, then under mmap_lock the VMA: VM_IO|VM_PFNMAP ⇒
 * hva_to_pfn_remapped (retried on -EAGAIN, any other error KVM_PFN_ERR_FAULT), none ⇒
 * KVM_PFN_ERR_FAULT, else (FOLL_NOWAIT and a valid VMA ⇒ KVM_PFN_ERR_NEEDS_IO, v6.13+)
 * KVM_PFN_ERR_FAULT. GUP -EHWPOISON ⇒ KVM_PFN_ERR_HWPOISON; -EINTR/-EAGAIN ⇒
 * KVM_PFN_ERR_SIGPENDING (v6.4+ for -EINTR, v6.13+ for -EAGAIN).
 * @kernel virt/kvm/kvm_main.c:hva_to_pfn (all versions; vma_lookup v5.14+,
 *   find_vma_intersection before; the atomic/async parameters and the
 *   check_user_page_hwpoison() re-walk of older versions are left out)
 * Locking: mmap_lock not held on entry or return.
 * Return: a pfn or a KVM_PFN_ERR_* value.
 */
export function* hva_to_pfn(kfp: kvm_follow_pfn): Op<kvm_pfn_t> {
  if (since(6, 13) && WARN_ON_ONCE(!kfp.refcounted_page, 'hva_to_pfn:refcounted_page'))
    return KVM_PFN_ERR_FAULT;
  const fast = yield* hva_to_pfn_fast(kfp);
  if (fast.ok) return fast.pfn;
  const slow = yield* hva_to_pfn_slow(kfp);
  if (slow.npages === 1) return slow.pfn;
  if (since(6, 4) && (slow.npages === -EINTR || (since(6, 13) && slow.npages === -EAGAIN)))
    return KVM_PFN_ERR_SIGPENDING;
  if (slow.npages === -EHWPOISON) return KVM_PFN_ERR_HWPOISON;

  const mm = get_current().mm!;
  yield* mmap_read_lock(mm);
  let pfn: kvm_pfn_t;
  for (;;) {
    /* retry: */
    const vma = since(5, 14)
      ? vma_lookup(mm, kfp.hva)
      : find_vma_intersection(mm, kfp.hva, kfp.hva + 1);
    if (vma === null) pfn = KVM_PFN_ERR_FAULT;
    else if (vma.vm_flags & (VM_IO | VM_PFNMAP)) {
      const r = yield* hva_to_pfn_remapped(vma, kfp);
      if (r.r === -EAGAIN) continue;
      pfn = r.r < 0 ? KVM_PFN_ERR_FAULT : r.pfn;
    } else if (
      since(6, 13) &&
      kfp.flags & FOLL_NOWAIT &&
      vma_is_valid(vma, (kfp.flags & FOLL_WRITE) !== 0)
    ) {
      pfn = KVM_PFN_ERR_NEEDS_IO;
    } else pfn = KVM_PFN_ERR_FAULT;
    break;
  }
  yield* mmap_read_unlock(mm);
  return pfn;
}

/**
 * kvm_follow_pfn(kfp) (v6.13+) / __gfn_to_pfn_memslot(slot, gfn, ...) (≤ v6.12): the hva
 * of the gfn (RO slot written ⇒ KVM_PFN_ERR_RO_FAULT; no slot ⇒ KVM_PFN_NOSLOT), a
 * read-only slot never maps writable, then hva_to_pfn.
 * @kernel virt/kvm/kvm_main.c:kvm_follow_pfn (v6.13+), __gfn_to_pfn_memslot (≤ v6.12)
 * Locking: mmap_lock not held.
 * Return: a pfn or KVM_PFN_ERR_* / KVM_PFN_NOSLOT.
 */
export function* kvm_follow_pfn(kfp: kvm_follow_pfn): Op<kvm_pfn_t> {
  kfp.hva = __gfn_to_hva_many(kfp.slot, kfp.gfn, (kfp.flags & FOLL_WRITE) !== 0);
  if (kfp.hva === KVM_HVA_ERR_RO_BAD) {
    if (!since(6, 13) && kfp.map_writable) kfp.map_writable.value = false;
    return KVM_PFN_ERR_RO_FAULT;
  }
  if (kvm_is_error_hva(kfp.hva)) {
    if (!since(6, 13) && kfp.map_writable) kfp.map_writable.value = false;
    return KVM_PFN_NOSLOT;
  }
  /* Do not map writable pfn in the readonly memslot. */
  if (memslot_is_readonly(kfp.slot!) && kfp.map_writable) {
    kfp.map_writable.value = false;
    kfp.map_writable = null;
  }
  return yield* hva_to_pfn(kfp);
}

/**
 * __gfn_to_pfn_memslot(slot, gfn, write_fault, writable) (≤ v6.12): kvm_follow_pfn's
 * predecessor (atomic, interruptible, async and hva out-parameters left out).
 * @kernel virt/kvm/kvm_main.c:__gfn_to_pfn_memslot (v5.7–v6.12)
 */
export function* __gfn_to_pfn_memslot(
  slot: kvm_memory_slot | null,
  gfn: gfn_t,
  write_fault: boolean,
  writable: bool_ptr | null,
  notifier_guard: kvm_follow_pfn['notifier_guard'] = null,
): Op<kvm_pfn_t> {
  if (since(6, 13)) absent('__gfn_to_pfn_memslot()', 'replaced by kvm_follow_pfn in v6.13');
  const kfp = kvm_follow_pfn_init(slot, gfn, write_fault ? FOLL_WRITE : 0, {
    map_writable: writable,
    notifier_guard,
  });
  return yield* kvm_follow_pfn(kfp);
}

/**
 * __kvm_faultin_pfn(slot, gfn, foll, &writable, &refcounted_page) (v6.13+): the
 * page-fault flavour of kvm_follow_pfn; *writable and *refcounted_page start false/NULL.
 * @kernel virt/kvm/kvm_main.c:__kvm_faultin_pfn (1c7b627e9306, v6.13+)
 * Return: a pfn or KVM_PFN_ERR_*.
 */
export function* __kvm_faultin_pfn(
  slot: kvm_memory_slot | null,
  gfn: gfn_t,
  foll: number,
  writable: bool_ptr,
  refcounted_page: { value: page | null },
  notifier_guard: kvm_follow_pfn['notifier_guard'] = null,
): Op<kvm_pfn_t> {
  if (!since(6, 13)) absent('__kvm_faultin_pfn()', 'added by 1c7b627e9306, v6.13');
  const kfp = kvm_follow_pfn_init(slot, gfn, foll, {
    map_writable: writable,
    refcounted_page,
    notifier_guard,
  });
  writable.value = false;
  refcounted_page.value = null;
  return yield* kvm_follow_pfn(kfp);
}

/** The result of __kvm_vcpu_map (struct kvm_host_map, reduced). */
export interface kvm_host_map {
  pinned_page: page | null;
  pfn: kvm_pfn_t;
  gfn: gfn_t;
  writable: boolean;
}

/**
 * __kvm_vcpu_map(vcpu, gfn, map, writable) (v6.13+): a pinned (FOLL_PIN) direct access to
 * guest memory for KVM itself (nested VMX structures): outside MMU-notifier protection, so
 * a remapped pfn is refused unless allow_unsafe_mappings; mapping (kmap/memremap) left out.
 * @kernel virt/kvm/kvm_main.c:__kvm_vcpu_map (2bcb52a3602b "KVM: Pin (as in FOLL_PIN)
 *   pages during kvm_vcpu_map()", v6.13+)
 * Return: 0, or -EINVAL for an error pfn.
 */
export function* __kvm_vcpu_map(
  vcpu: kvm_vcpu,
  gfn: gfn_t,
  map: kvm_host_map,
  writable: boolean,
): Op<number> {
  if (!since(6, 13)) absent('__kvm_vcpu_map() with kvm_follow_pfn', 'v6.13+');
  const ref = { value: null as page | null };
  const kfp = kvm_follow_pfn_init(gfn_to_memslot(vcpu.kvm, gfn), gfn, writable ? FOLL_WRITE : 0, {
    pin: true,
    refcounted_page: ref,
  });
  map.pinned_page = null;
  map.gfn = gfn;
  map.writable = writable;
  map.pfn = yield* kvm_follow_pfn(kfp);
  map.pinned_page = ref.value;
  if (is_error_noslot_pfn(map.pfn)) return -EINVAL;
  return 0;
}
