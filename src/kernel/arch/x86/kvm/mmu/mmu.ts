/**
 * The x86 KVM secondary MMU, reduced to a flat sPTE table gfn -> pfn (the EPT/NPT leaf
 * entries a direct, TDP-style MMU installs): the guest page-fault path (direct_page_fault
 * with kvm_faultin_pfn / kvm_mmu_faultin_pfn and the is_page_fault_stale check under
 * mmu_lock), the zap used by KVM's MMU notifier (kvm_unmap_gfn_range), and a model-only
 * guest access Op: a vCPU touching a gfn through its sPTE (one Step per access, faulting
 * the gfn in when it is absent or read-only for a write).
 *
 * Each sPTE records pfnsan_gen(pfn) when it is installed, and a guest access calls
 * pfnsan_access with it: an sPTE left behind after its host mapping went away (the VM
 * without its MMU notifier) reaches a frame that may have a new owner.
 *
 * Left out: paging structures and levels (no huge sPTEs, host_pfn_mapping_level),
 * shadow paging of guest page tables, the TDP MMU's read_lock fault path (the model takes
 * mmu_lock for write as the legacy MMU does), remote TLB flushes (zapping an sPTE takes
 * effect at once), async page faults, MMIO sPTEs (no memslot ⇒ RET_PF_EMULATE),
 * write-protection/dirty logging, private (guest_memfd) faults, A/D bits.
 *
 * @kernel arch/x86/kvm/mmu/mmu.c (v5.7+), arch/x86/kvm/mmu/mmu_internal.h
 */
import type { Op } from '../../../../../sched/index.js';
import { since } from '../../../../version.js';
import { EFAULT, EINTR } from '../../../../include/linux/errno.js';
import { FOLL_WRITE } from '../../../../include/linux/mm.js';
import type { page } from '../../../../include/linux/mm_types.js';
import { PAGE_SIZE } from '../../include/asm/pgtable_types.js';
import { pfnsan_access, pfnsan_gen, pfnsan_use } from '../../../../mm/pfnsan/pfnsan.js';
import type { bool_ptr } from '../../../../mm/gup.js';
import {
  KVM_PFN_ERR_HWPOISON,
  KVM_PFN_ERR_RO_FAULT,
  KVM_PFN_ERR_SIGPENDING,
  __gfn_to_pfn_memslot,
  __kvm_faultin_pfn,
  gfn_to_memslot,
  is_error_noslot_pfn,
  kvm_read_mmu_invalidate_seq,
  kvm_release_page_clean,
  kvm_release_pfn_clean,
  mmu_invalidate_retry_gfn,
  mmu_invalidate_retry_hva,
  mmu_notifier_retry,
  mmu_notifier_retry_hva,
  type gfn_t,
  type kvm,
  type kvm_gfn_range,
  type kvm_memory_slot,
  type kvm_pfn_t,
  type kvm_vcpu,
} from '../../../../virt/kvm/kvm_main.js';

/** One leaf sPTE: the host pfn, writability, and the frame generation it was made for. */
export interface kvm_spte {
  readonly pfn: number;
  readonly writable: boolean;
  readonly gen: number;
}

/** kvm->arch MMU state of the model: the sPTE table. */
export interface kvm_mmu_state {
  readonly sptes: Map<gfn_t, kvm_spte>;
}

/** enum: the page-fault handlers' results (mmu_internal.h). */
export const RET_PF_CONTINUE = 0;
export const RET_PF_RETRY = 1;
export const RET_PF_EMULATE = 2;
export const RET_PF_INVALID = 3;
export const RET_PF_FIXED = 4;
export const RET_PF_SPURIOUS = 5;

/** struct kvm_page_fault, reduced. */
export interface kvm_page_fault {
  readonly addr: number;
  readonly write: boolean;
  readonly gfn: gfn_t;
  readonly slot: kvm_memory_slot | null;
  mmu_seq: number;
  pfn: kvm_pfn_t;
  hva: number;
  map_writable: boolean;
  /** v6.13+: the page kvm_follow_pfn took a reference on (NULL for remapped pfns). */
  refcounted_page: page | null;
}

function spteObj(k: kvm, gfn: gfn_t): string {
  return `kvm${k.id}.spte.0x${gfn.toString(16)}`;
}

/** The sPTE of gfn, read without a step (inspection for tests and reports). */
export function kvm_spte_of(k: kvm, gfn: gfn_t): kvm_spte | null {
  return k.arch.sptes.get(gfn) ?? null;
}

/**
 * kvm_unmap_gfn_range(kvm, range): zaps the sPTEs of [range->start, range->end) (the rmap
 * and TDP MMU zaps).
 * @kernel arch/x86/kvm/mmu/mmu.c:kvm_unmap_gfn_range (v5.13+; kvm_unmap_hva_range before)
 * Locking: kvm->mmu_lock held for write.
 * Return: whether a TLB flush is needed (something was zapped).
 */
export function* kvm_unmap_gfn_range(k: kvm, range: kvm_gfn_range): Op<boolean> {
  let flush = false;
  for (let gfn = range.start; gfn < range.end; gfn++) {
    if (!k.arch.sptes.has(gfn)) continue;
    yield { obj: spteObj(k, gfn), kind: 'write', what: 'kvm_zap_spte' };
    k.arch.sptes.delete(gfn);
    flush = true;
  }
  return flush;
}

/**
 * kvm_flush_shadow_all / kvm_mmu_zap_all: every sPTE of the VM goes (mm release).
 * @kernel arch/x86/kvm/mmu/mmu.c:kvm_mmu_zap_all (all versions)
 * Locking: takes kvm->mmu_lock for write.
 */
export function* kvm_flush_shadow_all(k: kvm): Op<void> {
  yield* k.mmu_lock.downWrite('write_lock');
  for (const gfn of [...k.arch.sptes.keys()]) {
    yield { obj: spteObj(k, gfn), kind: 'write', what: 'kvm_zap_spte' };
    k.arch.sptes.delete(gfn);
  }
  yield* k.mmu_lock.upWrite('write_unlock');
}

/**
 * kvm_handle_error_pfn(vcpu, fault): KVM_PFN_ERR_RO_FAULT ⇒ RET_PF_EMULATE; HWPOISON ⇒
 * RET_PF_RETRY (after a SIGBUS to the VMM, not modelled); SIGPENDING ⇒ -EINTR (v6.4+);
 * anything else ⇒ -EFAULT (an exit to userspace).
 * @kernel arch/x86/kvm/mmu/mmu.c:kvm_handle_error_pfn (kvm_handle_bad_page before v6.1)
 */
export function kvm_handle_error_pfn(fault: kvm_page_fault): number {
  if (since(6, 4) && fault.pfn === KVM_PFN_ERR_SIGPENDING) return -EINTR;
  if (fault.pfn === KVM_PFN_ERR_RO_FAULT) return RET_PF_EMULATE;
  if (fault.pfn === KVM_PFN_ERR_HWPOISON) return RET_PF_RETRY;
  return -EFAULT;
}

/**
 * kvm_faultin_pfn(vcpu, fault) (kvm_mmu_faultin_pfn from v6.13, 447c375c9104): samples
 * the invalidation sequence (`fault->mmu_seq = kvm->mmu_invalidate_seq; smp_rmb();`),
 * then resolves the pfn without mmu_lock: __gfn_to_pfn_memslot (≤ v6.12) or
 * __kvm_faultin_pfn (v6.13+, which also returns the refcounted page). Because this path
 * re-checks the sequence under mmu_lock before installing anything, a remapped pfn's
 * lease is guarded by the VM's MMU-notifier subscription (when it has one).
 * @kernel arch/x86/kvm/mmu/mmu.c:kvm_faultin_pfn (v5.17+; inline in direct_page_fault
 *   as try_async_pf before)
 * Locking: mmu_lock not held.
 * Return: RET_PF_CONTINUE, or what kvm_handle_error_pfn says.
 */
export function* kvm_faultin_pfn(vcpu: kvm_vcpu, fault: kvm_page_fault): Op<number> {
  const k = vcpu.kvm;
  fault.mmu_seq = yield* kvm_read_mmu_invalidate_seq(k);
  if (!fault.slot) return RET_PF_EMULATE; // MMIO: kvm_handle_noslot_fault
  const guard = k.has_mmu_notifier ? { sub: k.mmu_notifier, mm: k.mm } : null;
  const writable: bool_ptr = { value: false };
  if (since(6, 13)) {
    const ref = { value: null as page | null };
    fault.pfn = yield* __kvm_faultin_pfn(
      fault.slot,
      fault.gfn,
      fault.write ? FOLL_WRITE : 0,
      writable,
      ref,
      guard,
    );
    fault.refcounted_page = ref.value;
  } else {
    fault.pfn = yield* __gfn_to_pfn_memslot(fault.slot, fault.gfn, fault.write, writable, guard);
  }
  fault.map_writable = writable.value;
  fault.hva = fault.slot.userspace_addr + (fault.gfn - fault.slot.base_gfn) * PAGE_SIZE;
  if (is_error_noslot_pfn(fault.pfn)) return kvm_handle_error_pfn(fault);
  return RET_PF_CONTINUE;
}

/** kvm_mmu_faultin_pfn: the v6.13+ name of kvm_faultin_pfn (447c375c9104). */
export const kvm_mmu_faultin_pfn = kvm_faultin_pfn;

/**
 * is_page_fault_stale(vcpu, fault): an MMU-notifier invalidation covering the fault is
 * running or has completed since mmu_seq was sampled, so the pfn may be stale: retry.
 * The check per version: mmu_notifier_retry (≤ v5.11), mmu_notifier_retry_hva (v5.12–
 * v5.19), mmu_invalidate_retry_hva (v6.0–v6.7), mmu_invalidate_retry_gfn (v6.8+).
 * @kernel arch/x86/kvm/mmu/mmu.c:is_page_fault_stale (v5.16+; the same test inline in
 *   direct_page_fault before; obsolete-root checks left out)
 * Locking: kvm->mmu_lock held.
 */
export function is_page_fault_stale(vcpu: kvm_vcpu, fault: kvm_page_fault): boolean {
  const k = vcpu.kvm;
  if (!fault.slot) return false;
  if (since(6, 8)) return mmu_invalidate_retry_gfn(k, fault.mmu_seq, fault.gfn);
  if (since(6, 0)) return mmu_invalidate_retry_hva(k, fault.mmu_seq, fault.hva);
  if (since(5, 12)) return mmu_notifier_retry_hva(k, fault.mmu_seq, fault.hva);
  return mmu_notifier_retry(k, fault.mmu_seq);
}

/**
 * direct_map(vcpu, fault) (__direct_map before v6.1): installs the leaf sPTE gfn -> pfn,
 * writable iff the fault says the host mapping is (map_writable), recording the frame's
 * pfnsan generation; the pfn is consumed here (pfnsan_use).
 * @kernel arch/x86/kvm/mmu/mmu.c:direct_map (all versions as __direct_map/direct_map)
 * Locking: kvm->mmu_lock held for write.
 * Return: RET_PF_FIXED.
 */
export function* direct_map(vcpu: kvm_vcpu, fault: kvm_page_fault): Op<number> {
  const k = vcpu.kvm;
  pfnsan_use(fault.pfn, 1, `kvm${k.id} sPTE gfn 0x${fault.gfn.toString(16)}`);
  yield { obj: spteObj(k, fault.gfn), kind: 'write', what: 'mmu_set_spte' };
  k.arch.sptes.set(fault.gfn, {
    pfn: fault.pfn,
    writable: fault.map_writable,
    gen: pfnsan_gen(fault.pfn),
  });
  return RET_PF_FIXED;
}

/**
 * direct_page_fault(vcpu, fault) (kvm_tdp_page_fault): faultin the pfn without mmu_lock,
 * take mmu_lock, give up (RET_PF_RETRY) if is_page_fault_stale, else map; then drop the
 * lookup's reference (kvm_release_pfn_clean ≤ v6.12; v6.13+ kvm_mmu_finish_page_fault
 * releases only fault->refcounted_page).
 * @kernel arch/x86/kvm/mmu/mmu.c:direct_page_fault (all versions)
 * Locking: takes and drops kvm->mmu_lock for write.
 * Return: RET_PF_* or -errno.
 */
export function* direct_page_fault(vcpu: kvm_vcpu, fault: kvm_page_fault): Op<number> {
  const k = vcpu.kvm;
  let r = yield* kvm_faultin_pfn(vcpu, fault);
  if (r !== RET_PF_CONTINUE) return r;
  r = RET_PF_RETRY;
  yield* k.mmu_lock.downWrite('write_lock');
  if (!is_page_fault_stale(vcpu, fault)) r = yield* direct_map(vcpu, fault);
  yield* k.mmu_lock.upWrite('write_unlock');
  if (since(6, 13)) kvm_release_page_clean(fault.refcounted_page);
  else kvm_release_pfn_clean(fault.pfn);
  return r;
}

/**
 * kvm_mmu_page_fault(vcpu, gpa, write): the EPT-violation handler for a guest physical
 * address (error code reduced to read/write).
 * @kernel arch/x86/kvm/mmu/mmu.c:kvm_mmu_page_fault, kvm_tdp_page_fault (all versions)
 * Return: RET_PF_* or -errno.
 */
export function* kvm_mmu_page_fault(vcpu: kvm_vcpu, gpa: number, write: boolean): Op<number> {
  const gfn = Math.floor(gpa / PAGE_SIZE);
  const fault: kvm_page_fault = {
    addr: gpa,
    write,
    gfn,
    slot: gfn_to_memslot(vcpu.kvm, gfn),
    mmu_seq: 0,
    pfn: 0,
    hva: 0,
    map_writable: false,
    refcounted_page: null,
  };
  return yield* direct_page_fault(vcpu, fault);
}

/** What a guest access ends with. */
export type kvm_guest_access_result =
  | { readonly kind: 'ok'; readonly pfn: number; readonly faults: number }
  | { readonly kind: 'emulate'; readonly faults: number }
  | { readonly kind: 'error'; readonly err: number; readonly faults: number };

/** Bound on RET_PF_RETRY loops of one access before the model gives up (a livelock). */
export const KVM_GUEST_ACCESS_MAX_FAULTS = 64;

/**
 * Model: the vCPU accesses gpa (the hardware walk of the EPT leaf, one Step). A present
 * sPTE that allows the access is used: pfnsan_access(pfn, gen) and the pfn returned.
 * Otherwise the EPT violation goes to kvm_mmu_page_fault and the access is retried;
 * RET_PF_EMULATE ends it as 'emulate' (MMIO or a write to a read-only host mapping),
 * -errno as 'error'.
 */
export function* kvm_vcpu_guest_access(
  vcpu: kvm_vcpu,
  gpa: number,
  how: 'read' | 'write',
): Op<kvm_guest_access_result> {
  const k = vcpu.kvm;
  const gfn = Math.floor(gpa / PAGE_SIZE);
  let faults = 0;
  for (;;) {
    yield { obj: spteObj(k, gfn), kind: 'read', what: `guest ${how}` };
    const spte = k.arch.sptes.get(gfn);
    if (spte && (how === 'read' || spte.writable)) {
      pfnsan_access(
        spte.pfn,
        spte.gen,
        how,
        `kvm${k.id} vcpu${vcpu.vcpu_id} gpa 0x${gpa.toString(16)}`,
      );
      return { kind: 'ok', pfn: spte.pfn, faults };
    }
    if (faults >= KVM_GUEST_ACCESS_MAX_FAULTS)
      throw new Error(
        `kvm_vcpu_guest_access: gpa 0x${gpa.toString(16)} still faulting after ${faults} faults`,
      );
    faults++;
    const r = yield* kvm_mmu_page_fault(vcpu, gpa, how === 'write');
    if (r === RET_PF_EMULATE) return { kind: 'emulate', faults };
    if (r < 0) return { kind: 'error', err: r, faults };
    if (r === RET_PF_RETRY && k.mmu_invalidate_in_progress > 0) {
      // The vCPU re-enters the guest and faults again until the invalidation ends: model
      // that spin as a wait for mmu_invalidate_in_progress to drop to 0 (the re-entries in
      // between change nothing), so a paused invalidation is not a livelock.
      yield {
        obj: k.seqObj,
        kind: 'read',
        what: 'RET_PF_RETRY: vCPU re-faults until the invalidation ends',
        enabled: () => k.mmu_invalidate_in_progress === 0,
      };
    }
  }
}
