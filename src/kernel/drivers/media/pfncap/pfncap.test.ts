/**
 * V4L2 USERPTR capture through videobuf2 (dma-contig and dma-sg) on the model device
 * pfncap, per frame-vector era (R-FV-1): anonymous memory is pinned (without
 * FOLL_LONGTERM before v5.12, so a page in a CMA area blocks cma_alloc for the whole
 * stream; with FOLL_LONGTERM from v5.12, so it is migrated out first — R-GUP-8, R-REV-5);
 * a VM_IO|VM_PFNMAP mapping goes through the follow_pfn path before v6.1 (no reference:
 * after the owning driver zaps and frees its frame and the frame is reused, the device
 * still writes into it — R-REV-5, R-MMUN-4) and is refused from v6.1.
 *
 * Machine: 1 GiB RAM, CMA area 'reserved' 4 MiB at 0x20000000 (frames 0x20000-0x203ff);
 * 0000:01:00.0 pfncap (1b36:0f1c) with an IOMMU DMA domain; 0000:02:00.0 with a 16 KiB
 * BAR0 at 0x40000000 (pfns 0x40000-0x40003, no struct page). Process 'app' captures into
 * its buffers; process 'victim' reuses freed frames. sizeimage = 4096.
 */
import { describe, expect, it } from 'vitest';
import type { Op } from '../../../../sched/index.js';
import type { Kernel } from '../../../kernel/kernel.js';
import { pci_boot_machine, pci_dev_by_bdf } from '../../pci/probe.js';
import { pci_enable_device_mem } from '../../pci/pci.js';
import { mmio_or_phys_read } from '../../pci/access.js';
import { SchedThread } from '../../../../sched/index.js';
import { create_user_task } from '../../../kernel/fork.js';
import type { task_struct } from '../../../include/linux/sched.js';
import { do_syscall } from '../../../arch/x86/entry/common.js';
import { sys_madvise, sys_mmap, sys_munmap } from '../../../arch/x86/entry/syscall_64.js';
import { sys_ioctl } from '../../../fs/ioctl.js';
import { cpu_user_read, cpu_user_write } from '../../../arch/x86/mm/fault.js';
import type { file, page, vm_area_struct } from '../../../include/linux/mm_types.js';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_PFNMAP } from '../../../include/linux/mm.js';
import { PAGE_SIZE, pte_pfn } from '../../../arch/x86/include/asm/pgtable_types.js';
import { ptep_get, walkToLeaf } from '../../../include/linux/pgtable.js';
import { fd_install, get_unused_fd_flags } from '../../../include/linux/fdtable.js';
import { alloc_file, new_inode, O_RDWR } from '../../../fs/inode.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../../../mm/mmap.js';
import { remap_pfn_range, vm_flags_set } from '../../../mm/memory.pfnmap.js';
import { zap_vma_ptes } from '../../../mm/memory.zap.js';
import { alloc_page, GFP_KERNEL, is_migrate_cma_page } from '../../../mm/page_alloc.js';
import { phys_read } from '../../../mm/sparse.js';
import { cma_alloc, cma_find, cma_release } from '../../../mm/cma.js';
import { page_ref_count } from '../../../include/linux/page_ref.js';
import { dmesg } from '../../../kernel/printk.js';
import {
  V4L2_BUF_TYPE_VIDEO_CAPTURE,
  V4L2_MEMORY_USERPTR,
  VIDIOC_DQBUF,
  VIDIOC_QBUF,
  VIDIOC_REQBUFS,
  VIDIOC_STREAMOFF,
  VIDIOC_STREAMON,
  pfncap_capture_frame,
  pfncap_init,
  pfncap_of,
  pfncap_open,
  set_dma_sg,
  type pfncap_dev,
  type v4l2_buffer,
} from './pfncap.js';

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
const V = 0x50000000;

interface Env {
  k: Kernel;
  app: Process;
  victim: Process;
  cap: pfncap_dev;
  fd: number;
  barBase: number;
}

function boot(version: string, o: { sg?: boolean } = {}): Env {
  const k = pci_boot_machine({
    version,
    ram: 1024 * MiB,
    cma: [{ name: 'reserved', base: CMA_BASE * PAGE_SIZE, size: 4 * MiB }],
    devices: [
      { bdf: '0000:01:00.0', vendor: 0x1b36, device: 0x0f1c, bars: [{ size: 0x1000 }] },
      { bdf: '0000:02:00.0', bars: [{ size: 0x4000 }] },
    ],
  });
  set_dma_sg(o.sg ?? false);
  expect(k.run(pfncap_init())).toBe(0);
  const pdev = pci_dev_by_bdf(k, '0000:01:00.0');
  const peer = pci_dev_by_bdf(k, '0000:02:00.0');
  k.run(pci_enable_device_mem(peer));
  const cap = pfncap_of(pdev)!;
  const app = spawnProcess(k, 'app');
  const victim = spawnProcess(k, 'victim');
  const fd = app.run(pfncap_open(pdev));
  expect(fd).toBeGreaterThanOrEqual(0);
  return { k, app, victim, cap, fd, barBase: peer.resource[0]!.start };
}

function pfnAt(p: Process, addr: number): number | null {
  const l = walkToLeaf(p.task.mm!, addr);
  if (!l) return null;
  const v = ptep_get(l.ptr);
  return v === 0 ? null : pte_pfn(v);
}

function qbuf(env: Env, addr: number, length = PAGE_SIZE, index = 0): number {
  const b: v4l2_buffer = {
    index,
    type: V4L2_BUF_TYPE_VIDEO_CAPTURE,
    memory: V4L2_MEMORY_USERPTR,
    m: { userptr: addr },
    length,
  };
  return env.app.ioctl(env.fd, VIDIOC_QBUF, b);
}

function reqbufs(env: Env, count: number): number {
  return env.app.ioctl(env.fd, VIDIOC_REQBUFS, {
    count,
    type: V4L2_BUF_TYPE_VIDEO_CAPTURE,
    memory: V4L2_MEMORY_USERPTR,
  });
}

function capture(env: Env, pattern: number): number {
  return env.k.run(pfncap_capture_frame(env.cap, pattern), 'pfncap-dma');
}

function dqbuf(env: Env): v4l2_buffer & { ret: number } {
  const b: v4l2_buffer = {
    index: -1,
    type: V4L2_BUF_TYPE_VIDEO_CAPTURE,
    memory: V4L2_MEMORY_USERPTR,
    m: { userptr: 0 },
    length: 0,
  };
  const ret = env.app.ioctl(env.fd, VIDIOC_DQBUF, b);
  return { ...b, ret };
}

/** One anonymous page at A backed by a CMA frame (cma_alloc + cma_release, then fault). */
function anonInCma(env: Env): number {
  expect(
    env.app.mmap(A, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED),
  ).toBe(A);
  expect(env.app.store(A + PAGE_SIZE, [1])).toBe(0); // page tables first
  const c = cma_find('reserved')!;
  const p = env.k.run(cma_alloc(c, 1, 0, true))!;
  expect(env.k.run(cma_release(c, p, 1))).toBe(true);
  expect(env.app.store(A, [0x5a])).toBe(0);
  const pfn = pfnAt(env.app, A)!;
  expect(is_migrate_cma_page(pfn)).toBe(true);
  return pfn;
}

function installFile(p: Process, f: file): number {
  return p.run(
    (function* (): Op<number> {
      const fd = yield* get_unused_fd_flags(O_RDWR);
      yield* fd_install(fd, f);
      return fd;
    })(),
  );
}

/** A driver exposing `pfns` through remap_pfn_range (VM_IO|VM_PFNMAP), one per page. */
function pfnDriver(pfns: number[]): { file: file; vma: vm_area_struct | null } {
  const d: { file: file; vma: vm_area_struct | null } = {
    file: null as unknown as file,
    vma: null,
  };
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  d.file = alloc_file('/dev/exporter', O_RDWR, inode, {
    name: 'exporter_fops',
    *mmap(_f, vma) {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      d.vma = vma;
      for (let i = 0; i < pfns.length; i++) {
        const r = yield* remap_pfn_range(
          vma,
          vma.vm_start + i * PAGE_SIZE,
          pfns[i]!,
          PAGE_SIZE,
          vma.vm_page_prot,
        );
        if (r) return r;
      }
      return 0;
    },
  });
  return d;
}

function cmaFree(env: Env): boolean {
  const c = cma_find('reserved')!;
  const p = env.k.run(cma_alloc(c, 1024, 0, true));
  if (p === null) return false;
  expect(env.k.run(cma_release(c, p, 1024))).toBe(true);
  return true;
}

describe('vb2_dc_get_userptr / vb2_create_framevec (anonymous memory)', () => {
  for (const v of ['5.7', '5.10', '5.11']) {
    it(`R-FV-1, R-GUP-8 (${v}): the USERPTR page stays pinned in the CMA area (no FOLL_LONGTERM); cma_alloc fails until REQBUFS 0`, () => {
      const env = boot(v);
      const pfn = anonInCma(env);
      expect(reqbufs(env, 1)).toBe(0);
      expect(qbuf(env, A)).toBe(0);
      expect(pfnAt(env.app, A)).toBe(pfn); // not migrated
      expect(page_ref_count(pfn as page)).toBeGreaterThan(1);
      expect(env.app.ioctl(env.fd, VIDIOC_STREAMON, V4L2_BUF_TYPE_VIDEO_CAPTURE)).toBe(0);
      expect(capture(env, 0xab)).toBe(0);
      const d = dqbuf(env);
      expect(d).toMatchObject({ ret: 0, index: 0, bytesused: PAGE_SIZE });
      expect([...(env.app.load(A, 2) as Uint8Array)]).toEqual([0xab, 0xab]);
      expect(cmaFree(env)).toBe(false); // the pin holds frame 0x2xxxx in the area
      expect(reqbufs(env, 0)).toBe(-16); // -EBUSY while streaming
      expect(env.app.ioctl(env.fd, VIDIOC_STREAMOFF, V4L2_BUF_TYPE_VIDEO_CAPTURE)).toBe(0);
      expect(cmaFree(env)).toBe(false); // STREAMOFF keeps the user memory acquired
      expect(reqbufs(env, 0)).toBe(0); // put_userptr: unpin
      expect(cmaFree(env)).toBe(true);
    });
  }

  for (const v of ['5.12', '5.15', '6.1', '6.18']) {
    it(`R-FV-1, R-GUP-8 (${v}): FOLL_LONGTERM migrates the page out of the CMA area before pinning; cma_alloc succeeds while streaming`, () => {
      const env = boot(v);
      const pfn = anonInCma(env);
      expect(reqbufs(env, 1)).toBe(0);
      expect(qbuf(env, A)).toBe(0);
      const now = pfnAt(env.app, A)!;
      expect(now).not.toBe(pfn);
      expect(is_migrate_cma_page(now)).toBe(false);
      expect((env.app.load(A, 1) as Uint8Array)[0]).toBe(0x5a); // contents migrated
      expect(cmaFree(env)).toBe(true);
      expect(env.app.ioctl(env.fd, VIDIOC_STREAMON, V4L2_BUF_TYPE_VIDEO_CAPTURE)).toBe(0);
      expect(capture(env, 0xab)).toBe(0);
      expect(dqbuf(env)).toMatchObject({ ret: 0, index: 0, bytesused: PAGE_SIZE });
      expect((env.app.load(A, 1) as Uint8Array)[0]).toBe(0xab);
      const refs = page_ref_count(now as page);
      expect(env.app.ioctl(env.fd, VIDIOC_STREAMOFF, V4L2_BUF_TYPE_VIDEO_CAPTURE)).toBe(0);
      expect(reqbufs(env, 0)).toBe(0);
      expect(page_ref_count(now as page)).toBe(refs - 1024); // GUP_PIN_COUNTING_BIAS
    });
  }

  it('R-FV-1 (6.18, dma-sg): a 3-page anonymous buffer is written segment by segment; QBUF of the same address again keeps the pin (no re-acquire)', () => {
    const env = boot('6.18', { sg: true });
    env.cap.sizeimage = 3 * PAGE_SIZE;
    expect(
      env.app.mmap(
        A,
        3 * PAGE_SIZE,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      ),
    ).toBe(A);
    expect(env.app.store(A, new Uint8Array(3 * PAGE_SIZE).fill(1))).toBe(0);
    expect(reqbufs(env, 1)).toBe(0);
    expect(qbuf(env, A, 3 * PAGE_SIZE)).toBe(0);
    const pfns = [0, 1, 2].map((i) => pfnAt(env.app, A + i * PAGE_SIZE)!);
    const refs = pfns.map((p) => page_ref_count(p as page));
    expect(env.app.ioctl(env.fd, VIDIOC_STREAMON, V4L2_BUF_TYPE_VIDEO_CAPTURE)).toBe(0);
    expect(capture(env, 0x77)).toBe(0);
    expect(dqbuf(env)).toMatchObject({ ret: 0, bytesused: 3 * PAGE_SIZE });
    for (let i = 0; i < 3; i++)
      expect((env.app.load(A + i * PAGE_SIZE + 7, 1) as Uint8Array)[0]).toBe(0x77);
    expect(qbuf(env, A, 3 * PAGE_SIZE)).toBe(0);
    expect(pfns.map((p) => page_ref_count(p as page))).toEqual(refs);
  });
});

describe('vb2_dc_get_userptr (VM_IO|VM_PFNMAP mappings)', () => {
  for (const v of ['5.7', '5.10', '5.12', '5.15']) {
    it(`R-FV-1, R-REV-5 (${v}): follow_pfn frames are not held; after the exporter zaps and frees its frame and 'victim' reuses it, the device overwrites victim's page`, () => {
      const env = boot(v);
      // The exporter's DMA buffer comes from the CMA area (R-REV-5).
      const c = cma_find('reserved')!;
      const frame = env.k.run(cma_alloc(c, 1, 0, false))!;
      const drv = pfnDriver([frame]);
      const fd = installFile(env.app, drv.file);
      const u = env.app.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      expect(u).toBeGreaterThan(0);
      const refs = page_ref_count(frame as page);
      // victim's page tables exist before the frame is freed (so the fault below takes it)
      expect(
        env.victim.mmap(
          V,
          2 * PAGE_SIZE,
          PROT_READ | PROT_WRITE,
          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        ),
      ).toBe(V);
      expect(env.victim.store(V + PAGE_SIZE, [1])).toBe(0);
      expect(reqbufs(env, 1)).toBe(0);
      expect(qbuf(env, u)).toBe(0);
      expect(page_ref_count(frame as page)).toBe(refs); // no reference, no pin
      expect(env.app.ioctl(env.fd, VIDIOC_STREAMON, V4L2_BUF_TYPE_VIDEO_CAPTURE)).toBe(0);
      // The exporter revokes its buffer: zap the user mapping, free the frame.
      env.app.run(zap_vma_ptes(drv.vma!, drv.vma!.vm_start, PAGE_SIZE));
      expect(env.k.run(cma_release(c, frame, 1))).toBe(true);
      // 'victim' faults in an anonymous page: the allocator hands out the freed frame.
      expect(env.victim.store(V, new Uint8Array(PAGE_SIZE).fill(0x11))).toBe(0);
      expect(pfnAt(env.victim, V)).toBe(frame);
      // The device captures into the USERPTR buffer queued before the revoke.
      expect(capture(env, 0xcd)).toBe(0);
      expect(dqbuf(env)).toMatchObject({ ret: 0, bytesused: PAGE_SIZE });
      expect([...(env.victim.load(V, 4) as Uint8Array)]).toEqual([0xcd, 0xcd, 0xcd, 0xcd]);
      expect(phys_read(frame * PAGE_SIZE + 100, 1)[0]).toBe(0xcd);
    });
  }

  for (const v of ['6.1', '6.6', '6.18']) {
    it(`R-FV-1 (${v}): QBUF of a VM_IO|VM_PFNMAP mapping fails with -EFAULT (dma-contig) and -ENOMEM (dma-sg)`, () => {
      for (const sg of [false, true]) {
        const env = boot(v, { sg });
        const frame = alloc_page(GFP_KERNEL)!;
        const drv = pfnDriver([frame]);
        const fd = installFile(env.app, drv.file);
        const u = env.app.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        expect(reqbufs(env, 1)).toBe(0);
        expect(qbuf(env, u)).toBe(sg ? -12 : -14);
        const warned = dmesg().includes('get_vaddr_frames() cannot follow VM_IO mapping');
        expect(warned).toBe(v === '6.1');
      }
    });
  }

  for (const v of ['5.10', '5.15']) {
    it(`R-FV-1 (${v}): MMIO pfns (no struct page) take dma_map_resource when consecutive; the device writes the peer's BAR; out-of-order pfns are -EINVAL`, () => {
      const env = boot(v);
      const bar = env.barBase / PAGE_SIZE;
      const drv = pfnDriver([bar, bar + 1]);
      const fd = installFile(env.app, drv.file);
      const u = env.app.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      expect(reqbufs(env, 1)).toBe(0);
      expect(qbuf(env, u, 2 * PAGE_SIZE)).toBe(0);
      expect(env.app.ioctl(env.fd, VIDIOC_STREAMON, V4L2_BUF_TYPE_VIDEO_CAPTURE)).toBe(0);
      expect(capture(env, 0x3c)).toBe(0);
      expect([...mmio_or_phys_read(env.barBase + 8, 2)]).toEqual([0x3c, 0x3c]);
      // dma-sg cannot take pfns without struct page.
      const env2 = boot(v, { sg: true });
      const fd2 = installFile(env2.app, pfnDriver([bar, bar + 1]).file);
      const u2 = env2.app.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
      expect(reqbufs(env2, 1)).toBe(0);
      expect(qbuf(env2, u2, 2 * PAGE_SIZE)).toBe(-12);
      // Reversed pfns are not contiguous.
      const env3 = boot(v);
      const fd3 = installFile(env3.app, pfnDriver([bar + 1, bar]).file);
      const u3 = env3.app.mmap(0, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd3, 0);
      expect(reqbufs(env3, 1)).toBe(0);
      expect(qbuf(env3, u3, 2 * PAGE_SIZE)).toBe(-22);
    });
  }
});
