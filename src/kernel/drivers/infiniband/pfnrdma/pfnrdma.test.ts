/**
 * RDMA memory registration on the model device pfnrdma: ib_umem_get's FOLL_LONGTERM pins
 * (R-GUP-8: CMA pages are migrated out first, so cma_alloc succeeds while the MR lives;
 * R-GUP-2: a VM_IO|VM_PFNMAP range is refused with -EFAULT), pinned_vm accounting
 * against RLIMIT_MEMLOCK, and ODP MRs (R-MMUN-3): no pins, the device page table filled
 * by page faults through ib_umem_odp_map_dma_and_lock, and invalidations that zap it
 * under umem_mutex with the sequence check — under fixed two-thread schedules a device
 * access racing munmap/MADV_DONTNEED never reaches a freed frame.
 *
 * Machine: 1 GiB RAM, CMA area 'reserved' 4 MiB at 0x20000000 (frames 0x20000-0x203ff);
 * 0000:01:00.0 pfnrdma (1b36:0f1d) behind an IOMMU DMA domain. Process 'app' registers
 * memory at 0x10000000 (A).
 */
import { describe, expect, it } from 'vitest';
import type { Op, Runner } from '../../../../sched/index.js';
import type { Kernel } from '../../../kernel/kernel.js';
import { pci_boot_machine, pci_dev_by_bdf } from '../../pci/probe.js';
import { SchedThread } from '../../../../sched/index.js';
import { create_user_task } from '../../../kernel/fork.js';
import type { task_struct } from '../../../include/linux/sched.js';
import { do_syscall } from '../../../arch/x86/entry/common.js';
import { sys_madvise, sys_mmap, sys_munmap } from '../../../arch/x86/entry/syscall_64.js';
import { sys_ioctl } from '../../../fs/ioctl.js';
import { cpu_user_read, cpu_user_write } from '../../../arch/x86/mm/fault.js';
import type { file, page } from '../../../include/linux/mm_types.js';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_PFNMAP } from '../../../include/linux/mm.js';
import { PAGE_SIZE, pte_pfn } from '../../../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf } from '../../../include/linux/pgtable.js';
import { fd_install, get_unused_fd_flags } from '../../../include/linux/fdtable.js';
import { page_ref_count } from '../../../include/linux/page_ref.js';
import { alloc_file, new_inode, O_RDWR } from '../../../fs/inode.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../../../mm/mmap.js';
import { MADV_DONTNEED } from '../../../mm/madvise.js';
import { remap_pfn_range, vm_flags_set } from '../../../mm/memory.pfnmap.js';
import {
  alloc_page,
  GFP_KERNEL,
  is_migrate_cma_page,
  page_is_free,
} from '../../../mm/page_alloc.js';
import { phys_read } from '../../../mm/sparse.js';
import { cma_alloc, cma_find, cma_release } from '../../../mm/cma.js';
import { frame_obj } from '../../dma/engine.js';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_ON_DEMAND,
  IB_ACCESS_REMOTE_WRITE,
} from '../core/umem.js';
import type { ib_umem_odp } from '../core/umem_odp.js';
import {
  PFNRDMA_DEREG_MR,
  PFNRDMA_REG_MR,
  pfnrdma_dma,
  pfnrdma_fault_retries,
  pfnrdma_init,
  pfnrdma_of,
  pfnrdma_open,
  type pfnrdma_dev,
  type pfnrdma_mr,
  type pfnrdma_reg_mr,
} from './pfnrdma.js';

/** A user process for these tests: system calls and user accesses as its task. */
class Process {
  readonly th: SchedThread;
  readonly op = {
    munmap: (a: number, l: number): Op<number> => do_syscall(this.task, sys_munmap(a, l)),
    madvise: (a: number, l: number, adv: number): Op<number> =>
      do_syscall(this.task, sys_madvise(a, l, adv)),
  };
  constructor(
    readonly k: Kernel,
    readonly task: task_struct,
  ) {
    this.th = new SchedThread(0, `${task.comm}:${task.pid}`, (function* () {})(), task);
  }
  run<T>(op: Op<T>): T {
    return this.k.run(op, this.th);
  }
  mmap(addr: number, len: number, prot: number, flags: number, fd = -1, off = 0): number {
    return this.run(do_syscall(this.task, sys_mmap(addr, len, prot, flags, fd, off)));
  }
  munmap(a: number, l: number): number {
    return this.run(this.op.munmap(a, l));
  }
  ioctl(fd: number, cmd: number, arg: unknown): number {
    return this.run(do_syscall(this.task, sys_ioctl(fd, cmd, arg)));
  }
  store(addr: number, bytes: Uint8Array | readonly number[]): 0 | string {
    const r = this.run(cpu_user_write(this.task, addr, Uint8Array.from(bytes)));
    return r.kind === 'ok' ? 0 : r.kind;
  }
  load(addr: number, len: number): Uint8Array | string {
    const r = this.run(cpu_user_read(this.task, addr, len));
    return r.kind === 'ok' ? r.data : r.kind;
  }
}

function spawnProcess(
  k: Kernel,
  comm: string,
  o: { rlimit_memlock?: number; root?: boolean } = {},
): Process {
  k.activate();
  const t = create_user_task(comm, {
    caps: o.root === false ? [] : ['CAP_SYS_ADMIN', 'CAP_IPC_LOCK', 'CAP_SYS_RAWIO'],
    rlimit_memlock: o.rlimit_memlock,
  });
  return new Process(k, t);
}

const MiB = 2 ** 20;
const CMA_BASE = 0x20000;
const A = 0x10000000;
const RW = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE;

interface Env {
  k: Kernel;
  app: Process;
  dev: pfnrdma_dev;
  fd: number;
}

function boot(version: string, o: { odp?: boolean; rlimit?: number; root?: boolean } = {}): Env {
  const k = pci_boot_machine({
    version,
    ram: 1024 * MiB,
    config: { CONFIG_INFINIBAND_ON_DEMAND_PAGING: o.odp ?? true },
    cma: [{ name: 'reserved', base: CMA_BASE * PAGE_SIZE, size: 4 * MiB }],
    devices: [{ bdf: '0000:01:00.0', vendor: 0x1b36, device: 0x0f1d, bars: [{ size: 0x1000 }] }],
  });
  expect(k.run(pfnrdma_init())).toBe(0);
  const pdev = pci_dev_by_bdf(k, '0000:01:00.0');
  const app = spawnProcess(k, 'app', { rlimit_memlock: o.rlimit, root: o.root });
  const fd = app.run(pfnrdma_open(pdev));
  expect(fd).toBeGreaterThanOrEqual(0);
  return { k, app, dev: pfnrdma_of(pdev)!, fd };
}

function pfnAt(p: Process, addr: number): number | null {
  const l = walkToLeaf(p.task.mm!, addr);
  if (!l) return null;
  const v = ptep_get(l.ptr);
  return v === 0 ? null : pte_pfn(v);
}

function anon(env: Env, pages: number, fill = 0x5a): void {
  expect(
    env.app.mmap(
      A,
      pages * PAGE_SIZE,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
    ),
  ).toBe(A);
  expect(env.app.store(A, new Uint8Array(pages * PAGE_SIZE).fill(fill))).toBe(0);
}

function regMr(
  env: Env,
  addr: number,
  length: number,
  access: number,
): { ret: number; mr: pfnrdma_mr | null } {
  const a: pfnrdma_reg_mr = { addr, length, access };
  const ret = env.app.ioctl(env.fd, PFNRDMA_REG_MR, a);
  return { ret, mr: ret === 0 ? env.dev.mrs.get(a.lkey!)! : null };
}

function dev(env: Env, mr: pfnrdma_mr, off: number, len: number, pattern: number) {
  return env.k.run(
    pfnrdma_dma(mr, off, len, 'write', new Uint8Array(len).fill(pattern)),
    'pfnrdma-dma',
  );
}

describe('ib_umem_get', () => {
  for (const v of ['5.7', '5.12', '6.1', '6.18']) {
    it(`R-GUP-8 (${v}): reg_mr pins long-term: a page in the CMA area is migrated out first, cma_alloc succeeds, pinned_vm counts it until dereg`, () => {
      const env = boot(v);
      expect(
        env.app.mmap(
          A,
          2 * PAGE_SIZE,
          PROT_READ | PROT_WRITE,
          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        ),
      ).toBe(A);
      expect(env.app.store(A + PAGE_SIZE, [1])).toBe(0);
      const c = cma_find('reserved')!;
      const p = env.k.run(cma_alloc(c, 1, 0, true))!;
      expect(env.k.run(cma_release(c, p, 1))).toBe(true);
      expect(env.app.store(A, [0x42])).toBe(0);
      const old = pfnAt(env.app, A)!;
      expect(is_migrate_cma_page(old)).toBe(true);
      const { ret, mr } = regMr(env, A, PAGE_SIZE, RW);
      expect(ret).toBe(0);
      const now = pfnAt(env.app, A)!;
      expect(now).not.toBe(old);
      expect(is_migrate_cma_page(now)).toBe(false);
      expect(env.app.task.mm!.pinned_vm).toBe(1);
      expect(page_ref_count(now as page)).toBeGreaterThanOrEqual(1025);
      const area = env.k.run(cma_alloc(c, 1024, 0, true));
      expect(area).toBe(CMA_BASE);
      env.k.run(cma_release(c, area!, 1024));
      // The device writes through the MR into the (migrated) page.
      expect(dev(env, mr!, 0, 8, 0xee)).toEqual({ ret: 0, done: 8 });
      expect((env.app.load(A, 1) as Uint8Array)[0]).toBe(0xee);
      // munmap leaves the pinned page allocated; the device still writes into it.
      expect(env.app.munmap(A, 2 * PAGE_SIZE)).toBe(0);
      expect(page_is_free(now)).toBe(false);
      expect(dev(env, mr!, 0, 1, 0x99)).toEqual({ ret: 0, done: 1 });
      expect(phys_read(now * PAGE_SIZE, 1)[0]).toBe(0x99);
      expect(env.app.ioctl(env.fd, PFNRDMA_DEREG_MR, mr!.lkey)).toBe(0);
      expect(env.app.task.mm!.pinned_vm).toBe(0);
      expect(page_is_free(now)).toBe(true);
    });
  }

  it('R-GUP-2 (6.18, 5.10): reg_mr of a VM_IO|VM_PFNMAP mapping fails with -EFAULT and leaves pinned_vm at 0', () => {
    for (const v of ['5.10', '6.18']) {
      const env = boot(v);
      const frame = alloc_page(GFP_KERNEL)!;
      const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
      const f: file = alloc_file('/dev/exporter', O_RDWR, inode, {
        name: 'exporter_fops',
        *mmap(_f, vma) {
          vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
          return yield* remap_pfn_range(vma, vma.vm_start, frame, PAGE_SIZE, vma.vm_page_prot);
        },
      });
      const fd = env.app.run(
        (function* (): Op<number> {
          const n = yield* get_unused_fd_flags(O_RDWR);
          yield* fd_install(n, f);
          return n;
        })(),
      );
      const u = env.app.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      expect(regMr(env, u, PAGE_SIZE, RW).ret).toBe(-14);
      expect(env.app.task.mm!.pinned_vm).toBe(0);
    }
  });

  it('RLIMIT_MEMLOCK (6.18): over the limit without CAP_IPC_LOCK is -ENOMEM; a zero limit is -EPERM (can_do_mlock)', () => {
    const env = boot('6.18', { rlimit: PAGE_SIZE, root: false });
    anon(env, 2);
    expect(regMr(env, A, 2 * PAGE_SIZE, RW).ret).toBe(-12);
    expect(env.app.task.mm!.pinned_vm).toBe(0);
    const one = regMr(env, A, PAGE_SIZE, RW);
    expect(one.ret).toBe(0);
    expect(env.app.task.mm!.pinned_vm).toBe(1);
    const env0 = boot('6.18', { rlimit: 0, root: false });
    anon(env0, 1);
    expect(regMr(env0, A, PAGE_SIZE, RW).ret).toBe(-1);
  });

  it('IB_ACCESS_ON_DEMAND without CONFIG_INFINIBAND_ON_DEMAND_PAGING is -EOPNOTSUPP', () => {
    const env = boot('6.18', { odp: false });
    anon(env, 1);
    expect(regMr(env, A, PAGE_SIZE, RW | IB_ACCESS_ON_DEMAND).ret).toBe(-95);
  });
});

/** Steps thread t until pred() holds (or t ends / blocks). */
function stepUntil(r: Runner, t: SchedThread, pred: () => boolean): void {
  for (let i = 0; i < 100000 && !t.done && !pred(); i++) {
    if (!r.step(t.id)) return;
  }
}
function runToEnd(r: Runner, t: SchedThread): void {
  for (let i = 0; i < 100000 && !t.done; i++) if (!r.step(t.id)) return;
}

describe('ODP: ib_umem_odp_map_dma_and_lock and the invalidate callback', () => {
  for (const v of ['5.10', '6.18']) {
    it(`R-MMUN-3 (${v}): no pins at reg_mr; a device write faults the page in; munmap invalidates it (1 callback, 1 page) and the next access faults with -EFAULT without touching the freed frame`, () => {
      const env = boot(v);
      anon(env, 2, 0x11);
      const { ret, mr } = regMr(env, A, 2 * PAGE_SIZE, RW | IB_ACCESS_ON_DEMAND);
      expect(ret).toBe(0);
      const p0 = pfnAt(env.app, A)!;
      const refs = page_ref_count(p0 as page);
      expect(env.app.task.mm!.pinned_vm).toBe(0);
      expect(mr!.mtt).toEqual([0, 0]);
      expect(dev(env, mr!, 0, 4, 0xab)).toEqual({ ret: 0, done: 4 });
      expect(mr!.page_faults).toBe(1);
      expect(page_ref_count(p0 as page)).toBe(refs); // no pin, no reference
      expect((env.app.load(A, 1) as Uint8Array)[0]).toBe(0xab);
      expect(mr!.mtt[0]).not.toBe(0);
      expect(env.app.munmap(A, 2 * PAGE_SIZE)).toBe(0);
      expect(mr!.invalidate_calls).toBe(1);
      expect(mr!.invalidations).toBe(1); // one mapped page zapped
      expect(mr!.mtt).toEqual([0, 0]);
      expect((mr!.umem as ib_umem_odp).npages).toBe(0);
      expect(page_is_free(p0)).toBe(true);
      const before = phys_read(p0 * PAGE_SIZE, 4);
      expect(dev(env, mr!, 0, 4, 0xcd)).toEqual({ ret: -14, done: 0 });
      expect(phys_read(p0 * PAGE_SIZE, 4)).toEqual(before);
    });

    it(`R-MMUN-3 (${v}): MADV_DONTNEED between the fault's hmm_range_fault and its umem_mutex: read_retry sends it back, the device writes the new page, never the freed one`, () => {
      const env = boot(v);
      anon(env, 1, 0x11);
      const { mr } = regMr(env, A, PAGE_SIZE, RW | IB_ACCESS_ON_DEMAND);
      const odp = mr!.umem as ib_umem_odp;
      const p0 = pfnAt(env.app, A)!;
      const r = env.k.runner();
      const D = r.spawn('D', pfnrdma_dma(mr!, 0, 4, 'write', new Uint8Array(4).fill(0xab)));
      const M = r.spawn('M', env.app.op.madvise(A, PAGE_SIZE, MADV_DONTNEED), env.app.task);
      // D: MTT miss, fault, hmm_range_fault found p0; stop before mutex_lock(umem_mutex).
      stepUntil(r, D, () => D.pending?.obj === odp.umem_mutex.name);
      expect(D.pending?.kind).toBe('acquire');
      expect(odp.pfn_list[0]! >> 4).toBe(p0);
      runToEnd(r, M); // the zap: invalidate (nothing mapped yet), p0 freed
      expect(M.done).toBe(true);
      expect(mr!.invalidate_calls).toBe(1);
      expect(mr!.invalidations).toBe(0);
      expect(page_is_free(p0)).toBe(true);
      runToEnd(r, D);
      expect(D.result).toEqual({ ret: 0, done: 4 });
      expect(pfnrdma_fault_retries(mr!)).toBe(1);
      const p1 = pfnAt(env.app, A)!;
      expect(odp.pfn_list[0]! >> 4).toBe(p1);
      expect((env.app.load(A, 4) as Uint8Array)[0]).toBe(0xab);
      if (p1 !== p0) expect(phys_read(p0 * PAGE_SIZE, 1)[0]).not.toBe(0xab);
    });

    it(`R-MMUN-3 (${v}): munmap while the device is mid-access: the invalidation waits for it (xlt_lock), the write lands before the frame is freed, 1 page invalidated`, () => {
      const env = boot(v);
      anon(env, 1, 0x11);
      const { mr } = regMr(env, A, PAGE_SIZE, RW | IB_ACCESS_ON_DEMAND);
      expect(dev(env, mr!, 0, 1, 0x01)).toEqual({ ret: 0, done: 1 }); // fault it in
      const p0 = pfnAt(env.app, A)!;
      const r = env.k.runner();
      const D = r.spawn('D', pfnrdma_dma(mr!, 8, 4, 'write', new Uint8Array(4).fill(0xab)));
      const M = r.spawn('M', env.app.op.munmap(A, PAGE_SIZE), env.app.task);
      stepUntil(r, D, () => D.pending?.obj === frame_obj(p0));
      expect(mr!.xlt_lock.owner).toBe(D);
      runToEnd(r, M); // blocks in the invalidate callback on xlt_lock
      expect(M.done).toBe(false);
      expect(M.pending?.obj).toBe(mr!.xlt_lock.name);
      expect(page_is_free(p0)).toBe(false);
      runToEnd(r, D);
      expect(D.result).toEqual({ ret: 0, done: 4 });
      expect(phys_read(p0 * PAGE_SIZE + 8, 4)).toEqual(new Uint8Array(4).fill(0xab));
      runToEnd(r, M);
      expect(M.done).toBe(true);
      expect(mr!.invalidate_calls).toBe(1);
      expect(mr!.invalidations).toBe(1);
      expect(mr!.mtt).toEqual([0]);
      expect(page_is_free(p0)).toBe(true);
    });
  }
});
