/**
 * KVM's remapped-pfn lookup (kernel-spec.md R-CALL-2) per era, and KVM's MMU notifier
 * against the secondary MMU (§8 R-MMUN-2): an unmap_mapping_range of the backing PFNMAP
 * VMA zaps the sPTE so the guest refaults to the new pfn; a VM without its MMU notifier
 * (model knob) keeps the stale sPTE.
 *
 * Layout: the VMM task maps a test driver's VM_IO|VM_PFNMAP region (fault handler
 * vmf_insert_pfn of `base + pgoff`) at HVA; memslot 0 maps GPA 0x100000 (gfn 0x100) to it.
 * The driver's buffer is BAR pfns 0xfe000.. (no struct page) unless a test says otherwise.
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../../sched/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { create_user_task } from '../../kernel/fork.js';
import { KernelBug } from '../../kernel/panic.js';
import type { task_struct } from '../../include/linux/sched.js';
import type {
  file,
  page,
  vm_area_struct,
  vm_fault,
  vm_operations_struct,
} from '../../include/linux/mm_types.js';
import { FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_TRIED } from '../../include/linux/mm_types.js';
import {
  FOLL_WRITE,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_FAULT_RETRY,
  VM_FAULT_SIGBUS,
  VM_IO,
  VM_PFNMAP,
} from '../../include/linux/mm.js';
import { PAGE_READONLY, PAGE_SIZE } from '../../arch/x86/include/asm/pgtable_types.js';
import { mmap_read_lock, mmap_read_unlock } from '../../include/linux/mmap_lock.js';
import { page_ref_count } from '../../include/linux/page_ref.js';
import { alloc_file, new_inode, O_RDWR } from '../../fs/inode.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE, vm_mmap_pgoff } from '../../mm/mmap.js';
import { vm_flags_set, vmf_insert_pfn, vmf_insert_pfn_prot } from '../../mm/memory.pfnmap.js';
import { unmap_mapping_range } from '../../mm/memory.zap.js';
import { alloc_pages, GFP_KERNEL, page_is_free } from '../../mm/page_alloc.js';
import { vma_lookup } from '../../mm/vma.js';
import { notifierLog } from '../../mm/mmu_notifier.js';
import {
  KVM_PFN_ERR_FAULT,
  KVM_PFN_ERR_RO_FAULT,
  __gfn_to_pfn_memslot,
  __kvm_faultin_pfn,
  __kvm_vcpu_map,
  allow_unsafe_mappings,
  gfn_to_memslot,
  hva_to_pfn_remapped,
  kvm_create_vm,
  kvm_follow_pfn_init,
  kvm_release_pfn_clean,
  kvm_set_memory_region,
  kvm_vcpu_create,
  mmu_invalidate_retry,
  mmu_notifier_retry,
  set_allow_unsafe_mappings,
  type kvm,
  type kvm_host_map,
  type kvm_vcpu,
} from './kvm_main.js';
import { kvm_spte_of, kvm_vcpu_guest_access } from '../../arch/x86/kvm/mmu/mmu.js';

const MiB = 2 ** 20;
/** BAR 0xfe000000..0xfe100000: pfns 0xfe000..0xfe0ff, no struct page. */
const BAR = 0xfe000000;
const BAR_PFN = 0xfe000;
/** Guest physical 0x100000 (gfn 0x100), 4 pages. */
const GPA = 0x100000;
const GFN = 0x100;
const NPAGES = 4;

/** A driver mapping `base + pgoff` from its fault handler (VM_IO|VM_PFNMAP). */
interface Drv {
  file: file;
  base: number;
  readonly: boolean;
  /** Return VM_FAULT_RETRY (dropping mmap_lock) the first time a retry is allowed. */
  retryOnce: boolean;
  /** fault flags of every ->fault call. */
  calls: number[];
  vma: vm_area_struct | null;
  /** Moves the buffer: new base, then unmap_mapping_range of the whole file. */
  move(newBase: number): Op<void>;
}

function pfnDriver(base: number): Drv {
  const d: Drv = {
    file: null as unknown as file,
    base,
    readonly: false,
    retryOnce: false,
    calls: [],
    vma: null,
    *move(newBase: number) {
      yield { obj: 'kvmtest.base', kind: 'write', what: 'move buffer' };
      d.base = newBase;
      yield* unmap_mapping_range(d.file.f_mapping, 0, NPAGES * PAGE_SIZE, 1);
    },
  };
  const ops: vm_operations_struct = {
    name: 'kvmtest_vm_ops',
    *fault(vmf: vm_fault): Op<number> {
      d.calls.push(vmf.flags);
      if (d.retryOnce && vmf.flags & FAULT_FLAG_ALLOW_RETRY && !(vmf.flags & FAULT_FLAG_TRIED)) {
        yield* mmap_read_unlock(vmf.vma.vm_mm);
        return VM_FAULT_RETRY;
      }
      if (vmf.pgoff >= NPAGES) return VM_FAULT_SIGBUS;
      yield { obj: 'kvmtest.base', kind: 'read', what: 'kvmtest fault' };
      if (d.readonly)
        return yield* vmf_insert_pfn_prot(vmf.vma, vmf.address, d.base + vmf.pgoff, PAGE_READONLY);
      return yield* vmf_insert_pfn(vmf.vma, vmf.address, d.base + vmf.pgoff);
    },
  };
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  d.file = alloc_file('/dev/kvmtest', O_RDWR, inode, {
    name: 'kvmtest_fops',
    *mmap(_f, vma) {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      vma.vm_ops = ops;
      d.vma = vma;
      return 0;
    },
  });
  return d;
}

interface World {
  k: Kernel;
  task: task_struct;
  drv: Drv;
  hva: number;
  kvm: kvm;
  vcpu: kvm_vcpu;
  run<T>(op: Op<T>): T;
}

function world(
  version: string,
  o: { notifier?: boolean; debugVm?: boolean; base?: number } = {},
): World {
  const k = new Kernel({
    version,
    config: o.debugVm === false ? { CONFIG_DEBUG_VM: false } : {},
  });
  start_kernel(k, {
    map: [...x86_64_e820(2 ** 32), { start: BAR, end: BAR + MiB, kind: 'mmio', name: 'BAR' }],
  });
  const task = create_user_task('qemu');
  const run = <T>(op: Op<T>): T =>
    k.run(op, new SchedThread(0, task.comm, op as Op<unknown>, task));
  const drv = pfnDriver(o.base ?? BAR_PFN);
  const hva = run(
    vm_mmap_pgoff(task.mm!, drv.file, 0, NPAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 0),
  );
  expect(hva).toBeGreaterThan(0);
  const kvm = run(kvm_create_vm(task.mm!, { mmu_notifier: o.notifier }));
  expect(
    kvm_set_memory_region(kvm, {
      slot: 0,
      flags: 0,
      guest_phys_addr: GPA,
      memory_size: NPAGES * PAGE_SIZE,
      userspace_addr: hva,
    }),
  ).toBe(0);
  return { k, task, drv, hva, kvm, vcpu: kvm_vcpu_create(kvm), run };
}

/** A page of a non-compound order-1 allocation other than the first: valid struct page,
 *  refcount 0, not reserved (the CVE-2021-22543 shape). */
function tailPageOfNonCompound(): number {
  const head = alloc_pages(GFP_KERNEL, 1)!;
  const tail = (head as number) + 1;
  expect(page_ref_count(tail as page)).toBe(0);
  return tail;
}

const ALL_ERAS = ['5.10', '5.12', '5.13', '6.1', '6.10', '6.12', '6.13', '6.18'];

describe('hva_to_pfn_remapped', () => {
  for (const v of ALL_ERAS) {
    it(`R-CALL-2 (${v}): a guest read of gfn 0x100 faults the PFNMAP page in (fixup_user_fault) and maps pfn 0xfe000`, () => {
      const w = world(v);
      const r = w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'));
      expect(r).toEqual({ kind: 'ok', pfn: BAR_PFN, faults: 1 });
      // the driver's fault handler ran once, from fixup_user_fault (no FAULT_FLAG_WRITE)
      expect(w.drv.calls.length).toBe(1);
      expect(kvm_spte_of(w.kvm, GFN)?.pfn).toBe(BAR_PFN);
      // gpa 0x102000 -> hva + 0x2000 -> pfn 0xfe002
      expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA + 2 * PAGE_SIZE, 'write'))).toMatchObject({
        kind: 'ok',
        pfn: BAR_PFN + 2,
      });
    });
  }

  it('R-CALL-2 (5.10): no write check — a read fault on a read-only PTE maps the sPTE writable, and a guest write then goes through', () => {
    const w = world('5.10');
    w.drv.readonly = true;
    expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toMatchObject({ kind: 'ok' });
    expect(kvm_spte_of(w.kvm, GFN)?.writable).toBe(true);
    expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'write'))).toEqual({
      kind: 'ok',
      pfn: BAR_PFN,
      faults: 0,
    });
  });

  for (const v of ['5.12', '5.13', '6.1', '6.10', '6.12', '6.13', '6.18']) {
    it(`R-CALL-2 (${v}): a write fault on a read-only PTE is KVM_PFN_ERR_RO_FAULT (RET_PF_EMULATE); the read-fault sPTE is read-only`, () => {
      const w = world(v);
      w.drv.readonly = true;
      expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toMatchObject({ kind: 'ok' });
      expect(kvm_spte_of(w.kvm, GFN)?.writable).toBe(false);
      expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'write'))).toEqual({
        kind: 'emulate',
        faults: 1,
      });
      // the lookup itself: pfn KVM_PFN_ERR_RO_FAULT, r = 0
      const slot = gfn_to_memslot(w.kvm, GFN);
      const kfp = kvm_follow_pfn_init(slot, GFN, FOLL_WRITE);
      kfp.hva = w.hva;
      const res = w.run(
        (function* () {
          yield* mmap_read_lock(w.task.mm!);
          const r = yield* hva_to_pfn_remapped(vma_lookup(w.task.mm!, w.hva)!, kfp);
          yield* mmap_read_unlock(w.task.mm!);
          return r;
        })(),
      );
      expect(res).toEqual({ r: 0, pfn: KVM_PFN_ERR_RO_FAULT });
    });
  }

  for (const v of ['5.10', '6.1', '6.12', '6.13']) {
    it(`R-CALL-2 (${v}): fixup_user_fault dropping mmap_lock (VM_FAULT_RETRY) ⇒ -EAGAIN, and hva_to_pfn retries the VMA lookup`, () => {
      const w = world(v);
      w.drv.retryOnce = true;
      const kfp = kvm_follow_pfn_init(gfn_to_memslot(w.kvm, GFN), GFN, 0);
      kfp.hva = w.hva;
      const first = w.run(
        (function* () {
          yield* mmap_read_lock(w.task.mm!);
          const r = yield* hva_to_pfn_remapped(vma_lookup(w.task.mm!, w.hva)!, kfp);
          yield* mmap_read_unlock(w.task.mm!);
          return r;
        })(),
      );
      expect(first.r).toBe(-11); // -EAGAIN
      // ->fault ran twice inside fixup_user_fault: ALLOW_RETRY, then TRIED (which inserted)
      expect(w.drv.calls.length).toBe(2);
      expect(w.drv.calls[0]! & FAULT_FLAG_ALLOW_RETRY).toBeTruthy();
      expect(w.drv.calls[1]! & FAULT_FLAG_TRIED).toBeTruthy();
      // the whole path now succeeds (the PTE is there)
      expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toMatchObject({
        kind: 'ok',
        pfn: BAR_PFN,
      });
    });
  }

  it('R-CALL-2 (5.12): kvm_get_pfn takes a page with refcount 0 — VM_BUG_ON with CONFIG_DEBUG_VM', () => {
    const w = world('5.12');
    w.drv.base = tailPageOfNonCompound();
    expect(() => w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toThrow(KernelBug);
  });

  it('R-CALL-2 (5.10, CVE-2021-22543): without DEBUG_VM the refcount-0 page goes 0 -> 1 -> 0 and is freed while the guest maps it', () => {
    const w = world('5.10', { debugVm: false });
    const tail = tailPageOfNonCompound();
    w.drv.base = tail;
    expect(page_is_free(tail)).toBe(false);
    expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toMatchObject({
      kind: 'ok',
      pfn: tail,
    });
    expect(page_is_free(tail)).toBe(true);
    expect(kvm_spte_of(w.kvm, GFN)?.pfn).toBe(tail);
  });

  for (const v of ['5.13', '6.1', '6.10', '6.12']) {
    it(`R-CALL-2 (${v}): get_page_unless_zero refuses the refcount-0 page: -EFAULT, KVM_PFN_ERR_FAULT, no sPTE`, () => {
      const w = world(v);
      const tail = tailPageOfNonCompound();
      w.drv.base = tail;
      expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toEqual({
        kind: 'error',
        err: -14,
        faults: 1,
      });
      expect(kvm_spte_of(w.kvm, GFN)).toBeNull();
      expect(page_ref_count(tail as page)).toBe(0);
    });
  }

  for (const v of ['6.13', '6.18']) {
    it(`R-CALL-2 (${v}): no page reference at all — the refcount-0 page is mapped, refcounted_page NULL, refcount unchanged`, () => {
      const w = world(v);
      const tail = tailPageOfNonCompound();
      w.drv.base = tail;
      const ref = { value: 1 as unknown as page | null };
      const wr = { value: false };
      const pfn = w.run(__kvm_faultin_pfn(gfn_to_memslot(w.kvm, GFN), GFN, FOLL_WRITE, wr, ref));
      expect(pfn).toBe(tail);
      expect(ref.value).toBeNull();
      expect(wr.value).toBe(true);
      expect(page_ref_count(tail as page)).toBe(0);
      expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toMatchObject({
        kind: 'ok',
        pfn: tail,
      });
    });
  }

  it('R-CALL-2 (6.12): a refcounted pfn (order-0 kernel page, refcount 1) gets a reference until kvm_release_pfn_clean', () => {
    const w = world('6.12');
    const p = alloc_pages(GFP_KERNEL, 0)! as number;
    w.drv.base = p;
    const pfn = w.run(__gfn_to_pfn_memslot(gfn_to_memslot(w.kvm, GFN), GFN, false, null));
    expect(pfn).toBe(p);
    expect(page_ref_count(p as page)).toBe(2);
    kvm_release_pfn_clean(pfn);
    expect(page_ref_count(p as page)).toBe(1);
  });

  it('R-CALL-2 (6.13): the same refcounted pfn is returned without a reference', () => {
    const w = world('6.13');
    const p = alloc_pages(GFP_KERNEL, 0)! as number;
    w.drv.base = p;
    const ref = { value: null as page | null };
    const pfn = w.run(__kvm_faultin_pfn(gfn_to_memslot(w.kvm, GFN), GFN, 0, { value: false }, ref));
    expect(pfn).toBe(p);
    expect(ref.value).toBeNull();
    expect(page_ref_count(p as page)).toBe(1);
  });
});

describe('__kvm_vcpu_map', () => {
  for (const v of ['6.13', '6.18']) {
    it(`R-CALL-2 (${v}): kfp->pin on a remapped pfn is -EINVAL unless kvm.allow_unsafe_mappings (default off)`, () => {
      const w = world(v);
      expect(allow_unsafe_mappings()).toBe(false);
      // host PTE present first (a guest read maps it)
      w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'));
      const map: kvm_host_map = { pinned_page: null, pfn: 0, gfn: 0, writable: false };
      expect(w.run(__kvm_vcpu_map(w.vcpu, GFN, map, true))).toBe(-22);
      expect(map.pfn).toBe(KVM_PFN_ERR_FAULT);
      set_allow_unsafe_mappings(true);
      expect(w.run(__kvm_vcpu_map(w.vcpu, GFN, map, true))).toBe(0);
      expect(map.pfn).toBe(BAR_PFN);
      expect(map.pinned_page).toBeNull();
    });
  }

  it('R-CALL-2 (6.12): the module parameter does not exist before 6.13', () => {
    world('6.12');
    expect(() => set_allow_unsafe_mappings(true)).toThrow(/68e51d0a437b/);
  });
});

describe('kvm_mmu_notifier_invalidate_range_start', () => {
  for (const v of ['5.10', '5.13', '6.1', '6.12', '6.13', '6.18']) {
    it(`R-MMUN-2, R-CALL-2 (${v}): unmap_mapping_range of the PFNMAP VMA zaps the sPTE; the next guest access refaults to the new pfn 0xfe010`, () => {
      const w = world(v);
      expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toMatchObject({ pfn: BAR_PFN });
      const seq = w.kvm.mmu_invalidate_seq;
      w.run(w.drv.move(BAR_PFN + 0x10));
      expect(kvm_spte_of(w.kvm, GFN)).toBeNull();
      expect(w.kvm.mmu_invalidate_seq).toBe(seq + 1);
      expect(w.kvm.mmu_invalidate_in_progress).toBe(0);
      expect(notifierLog().some((e) => e.event === 'MMU_NOTIFY_CLEAR' && e.phase === 'start')).toBe(
        true,
      );
      expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toEqual({
        kind: 'ok',
        pfn: BAR_PFN + 0x10,
        faults: 1,
      });
    });
  }

  it('R-CALL-2 (6.13, model knob): a VM without its MMU notifier keeps the stale sPTE to pfn 0xfe000 after the move', () => {
    const w = world('6.13', { notifier: false });
    expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toMatchObject({ pfn: BAR_PFN });
    w.run(w.drv.move(BAR_PFN + 0x10));
    expect(kvm_spte_of(w.kvm, GFN)?.pfn).toBe(BAR_PFN);
    expect(w.kvm.mmu_invalidate_seq).toBe(0);
    expect(w.run(kvm_vcpu_guest_access(w.vcpu, GPA, 'read'))).toEqual({
      kind: 'ok',
      pfn: BAR_PFN,
      faults: 0,
    });
  });

  it('R-MMUN-2 (6.1, 5.10): the retry helper carries the version name (mmu_invalidate_retry vs mmu_notifier_retry)', () => {
    const w = world('6.1');
    expect(mmu_invalidate_retry(w.kvm, w.kvm.mmu_invalidate_seq)).toBe(false);
    expect(() => mmu_notifier_retry(w.kvm, 0)).toThrow(/20ec3ebd707c/);
    expect(w.kvm.seqObj).toMatch(/mmu_invalidate_seq$/);
    const o = world('5.10');
    expect(mmu_notifier_retry(o.kvm, o.kvm.mmu_invalidate_seq)).toBe(false);
    expect(o.kvm.seqObj).toMatch(/mmu_notifier_seq$/);
  });
});

/**
 * The race the retry protocol closes. A (vCPU) faults gfn 0x100 in: it samples the
 * sequence, resolves the hva to pfn 0xfe000 and ends the lookup, and is stopped just
 * before it takes mmu_lock. B (driver) moves the buffer to 0xfe010 and zaps the PFNMAP
 * range (MMU notifier start/end). Then A continues.
 * With the notifier: is_page_fault_stale ⇒ RET_PF_RETRY, A refaults and maps 0xfe010.
 * Without it: A installs the stale pfn 0xfe000 and keeps using it.
 * The schedule A^n B^m A^rest is recorded once and replayed on a fresh machine.
 */
describe('direct_page_fault (2-thread fixed schedule)', () => {
  function setup(v: string, notifier: boolean) {
    const w = world(v, { notifier });
    const driverTask = create_user_task('driver');
    const r = w.k.runner();
    const a = r.spawn('vcpu', kvm_vcpu_guest_access(w.vcpu, GPA, 'read'), w.task);
    const b = r.spawn('driver', w.drv.move(BAR_PFN + 0x10), driverTask);
    return { w, r, a, b };
  }

  function record(v: string, notifier: boolean): number[] {
    const { w, r, a, b } = setup(v, notifier);
    const lock = w.kvm.mmu_lock.name;
    // A up to (not including) its first mmu_lock acquire
    while (!(a.pending?.obj === lock && a.pending.kind === 'acquire'))
      expect(r.step(a.id)).toBe(true);
    while (!b.done) expect(r.step(b.id)).toBe(true);
    while (!a.done) expect(r.step(a.id)).toBe(true);
    return [...r.schedule];
  }

  for (const v of ['5.10', '6.1', '6.13', '6.18']) {
    it(`R-CALL-2, R-MMUN-2 (${v}): with the MMU notifier the stale lookup is retried and the guest maps the new pfn 0xfe010`, () => {
      const schedule = record(v, true);
      const n = schedule.indexOf(1);
      expect(n).toBeGreaterThan(0);
      const { w, r, a } = setup(v, true);
      const res = r.run(schedule);
      expect(res.status).toBe('done');
      expect(res.schedule).toEqual(schedule);
      // A's pending step at the switch was its mmu_lock acquire; it faulted twice
      expect(res.trace[n - 1]!.tid).toBe(0);
      expect(a.result).toEqual({ kind: 'ok', pfn: BAR_PFN + 0x10, faults: 2 });
      expect(kvm_spte_of(w.kvm, GFN)?.pfn).toBe(BAR_PFN + 0x10);
    });

    it(`R-CALL-2 (${v}, model knob): without the MMU notifier the same schedule installs and keeps the stale pfn 0xfe000`, () => {
      const schedule = record(v, false);
      const { w, r, a } = setup(v, false);
      const res = r.run(schedule);
      expect(res.status).toBe('done');
      expect(a.result).toEqual({ kind: 'ok', pfn: BAR_PFN, faults: 1 });
      expect(kvm_spte_of(w.kvm, GFN)?.pfn).toBe(BAR_PFN);
      // the host page table now maps nothing there; the driver's buffer is elsewhere
      expect(w.drv.base).toBe(BAR_PFN + 0x10);
    });
  }
});
