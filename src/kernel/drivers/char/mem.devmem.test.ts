/**
 * /dev/mem (drivers/char/mem.c) and its revocation (R-REV-3), generic_access_phys as its
 * vm_ops->access (R-CALL-1), and the x86 mmap policy (phys_mem_access_prot_allowed).
 *
 * The machine: 4 GiB (RAM 0x1000-0x9efff, 0x100000-0x7fffffff, 0x100000000-0x17fffffff)
 * and a device window 0000:00:02.0 at 0xe0000000-0xe00fffff (pfns 0xe0000-0xe00ff, no
 * struct page, not busy until a driver claims it).
 */
import { describe, expect, it } from 'vitest';
import { SchedThread, type Op } from '../../../sched/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../../init/main.js';
import { create_user_task } from '../../kernel/fork.js';
import type { task_struct } from '../../include/linux/sched.js';
import { do_syscall } from '../../arch/x86/entry/common.js';
import { sys_mmap } from '../../arch/x86/entry/syscall_64.js';
import { cpu_user_read, cpu_user_write } from '../../arch/x86/mm/fault.js';
import { do_sys_open } from '../../fs/open.js';
import { O_RDONLY, O_RDWR, O_SYNC } from '../../fs/inode.js';
import { ksys_pread64, ksys_pwrite64 } from '../../fs/read_write.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../mm/mmap.js';
import { vma_lookup } from '../../mm/vma.js';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_PFNMAP } from '../../include/linux/mm.js';
import { walkToLeaf, ptep_get } from '../../include/linux/pgtable.js';
import { pte_pfn, pte_present } from '../../arch/x86/include/asm/pgtable_types.js';
import { phys_read, phys_write } from '../../mm/sparse.js';
import { notifierLog } from '../../mm/mmu_notifier.js';
import {
  iomem_get_mapping,
  iomem_resource,
  type resource,
  release_mem_region,
  request_mem_region,
  request_mem_region_exclusive,
  strict_iomem,
} from '../../kernel/resource.js';
import {
  _PAGE_CACHE_MODE_UC_MINUS,
  _PAGE_CACHE_MODE_WB,
  pgprot2cachemode,
} from '../../arch/x86/mm/pat/memtype.js';
import { EFAULT, EINVAL, EIO, ENOENT, EPERM } from '../../include/linux/errno.js';
import type { vm_area_struct } from '../../include/linux/mm_types.js';
import { mmap_mem_ops, page_is_allowed, range_is_allowed } from './mem.js';
import { generic_access_phys } from '../../mm/memory.pfnmap.js';

const BAR = 0xe0000000;
const BAR_SIZE = 0x100000;
const RW = PROT_READ | PROT_WRITE;
const RAWIO = ['CAP_SYS_ADMIN', 'CAP_IPC_LOCK', 'CAP_SYS_PTRACE', 'CAP_SYS_RAWIO'];

interface Env {
  readonly k: Kernel;
  readonly task: task_struct;
  sys<T>(op: Op<T>): T;
  /** A driver claims [start, start+n) (request_mem_region in a kernel thread). */
  claim(start: number, n: number, exclusive?: boolean): void;
  load(addr: number, len?: number): Uint8Array | string;
  store(addr: number, bytes: number[]): string;
  buffer(len: number): number;
  pfnAt(addr: number): number | null;
  vma(addr: number): vm_area_struct;
}

function boot(version: string, config: Record<string, boolean> = {}, caps = RAWIO): Env {
  const k = new Kernel({ version, config: { CONFIG_IO_STRICT_DEVMEM: true, ...config } });
  const map = x86_64_e820(2 ** 32);
  map.push({ start: BAR, end: BAR + BAR_SIZE, kind: 'mmio', name: '0000:00:02.0' });
  start_kernel(k, { map });
  const task = create_user_task('devmem', { caps });
  const thread = new SchedThread(0, 'devmem', (function* () {})(), task);
  const env: Env = {
    k,
    task,
    sys: <T>(op: Op<T>): T => k.run(do_syscall(task, op), thread),
    claim(start, n, exclusive = false) {
      const r = k.run(
        (function* () {
          return exclusive
            ? yield* request_mem_region_exclusive(start, n, 'drv')
            : yield* request_mem_region(start, n, 'drv');
        })(),
        'driver',
      );
      expect(r).not.toBeNull();
    },
    load(addr, len = 1) {
      const r = env.sys(cpu_user_read(task, addr, len));
      return r.kind === 'ok' ? r.data : r.kind;
    },
    store(addr, bytes) {
      return env.sys(cpu_user_write(task, addr, Uint8Array.from(bytes))).kind;
    },
    buffer(len) {
      const a = env.sys(sys_mmap(0, len, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      expect(env.store(a, new Array<number>(len).fill(0xee))).toBe('ok');
      return a;
    },
    pfnAt(addr) {
      const l = walkToLeaf(task.mm!, addr);
      if (!l) return null;
      const v = ptep_get(l.ptr);
      return pte_present(v) ? pte_pfn(v) : null;
    },
    vma(addr) {
      return vma_lookup(task.mm!, addr)!;
    },
  };
  return env;
}

/** Opens /dev/mem and maps len bytes of physical memory at phys, shared read-write. */
function mapDevmem(env: Env, phys: number, len: number, flags = MAP_SHARED, oflags = O_RDWR) {
  const fd = env.sys(do_sys_open('/dev/mem', oflags, 0));
  expect(fd).toBeGreaterThanOrEqual(0);
  return { fd, addr: env.sys(sys_mmap(0, len, RW, flags, fd, phys)) };
}

describe('open_port', () => {
  it('R-REV-3: /dev/mem needs CAP_SYS_RAWIO (-EPERM without it)', () => {
    const env = boot('6.12', {}, ['CAP_SYS_ADMIN']);
    expect(env.sys(do_sys_open('/dev/mem', O_RDONLY, 0))).toBe(-EPERM);
  });

  it('R-REV-3: from 5.12 every open maps through iomem_get_mapping()', () => {
    const env = boot('6.12');
    const a = mapDevmem(env, BAR, 0x1000).addr;
    const b = mapDevmem(env, BAR + 0x1000, 0x1000).addr;
    const m = env.k.run(
      (function* () {
        return iomem_get_mapping();
      })(),
    );
    expect(env.vma(a).vm_file!.f_mapping).toBe(m);
    expect(env.vma(b).vm_file!.f_mapping).toBe(m);
    expect(m.i_mmap.size).toBe(2);
    expect(m.host.i_sb.s_type).toBe('iomem');
  });

  it('R-REV-3: 5.8-5.11 share devmem_inode; 5.7 keeps the device node mapping', () => {
    const v58 = boot('5.8');
    const a = mapDevmem(v58, BAR, 0x1000).addr;
    expect(v58.vma(a).vm_file!.f_mapping.host.i_sb.s_type).toBe('devmem');
    const v57 = boot('5.7');
    const b = mapDevmem(v57, BAR, 0x1000).addr;
    expect(v57.vma(b).vm_file!.f_mapping.host.i_sb.s_type).toBe('devtmpfs');
  });

  it('§11 (live 6.18 with CONFIG_DEVMEM=n): no /dev/mem node, open is -ENOENT', () => {
    const env = boot('6.18', { CONFIG_DEVMEM: false });
    expect(env.sys(do_sys_open('/dev/mem', O_RDONLY, 0))).toBe(-ENOENT);
  });
});

describe('mmap_mem', () => {
  it('R-REV-3: maps the device window with remap_pfn_range, vm_pgoff = pfn 0xe0000', () => {
    const env = boot('6.12');
    phys_write(BAR + 0x10, Uint8Array.from([0xde, 0xad]));
    const { addr } = mapDevmem(env, BAR, 0x2000);
    expect(addr).toBeGreaterThan(0);
    const vma = env.vma(addr);
    const want = VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
    expect(vma.vm_flags & want).toBe(want);
    expect(vma.vm_pgoff).toBe(0xe0000);
    expect(vma.vm_ops).toBe(mmap_mem_ops);
    expect(vma.vm_ops!.fault).toBeUndefined();
    expect(env.pfnAt(addr)).toBe(0xe0000);
    expect(env.pfnAt(addr + 0x1000)).toBe(0xe0001);
    expect([...(env.load(addr + 0x10, 2) as Uint8Array)]).toEqual([0xde, 0xad]);
    expect(pgprot2cachemode(vma.vm_page_prot)).toBe(_PAGE_CACHE_MODE_WB);
  });

  it('R-REV-3: O_SYNC opens map uncached-minus (phys_mem_access_prot_allowed)', () => {
    const env = boot('6.12');
    const { addr } = mapDevmem(env, BAR, 0x1000, MAP_SHARED, O_RDWR | O_SYNC);
    expect(pgprot2cachemode(env.vma(addr).vm_page_prot)).toBe(_PAGE_CACHE_MODE_UC_MINUS);
  });

  it('R-REV-3: STRICT_DEVMEM refuses RAM (0x200000: -EPERM), allows the first 1 MiB', () => {
    const env = boot('6.12');
    expect(mapDevmem(env, 0x200000, 0x1000).addr).toBe(-EPERM);
    // A range that only ends in RAM is refused too (range_is_allowed tests every page).
    expect(mapDevmem(env, 0x7ffff000, 0x2000).addr).toBe(-EPERM);
    // 0x0 Reserved (devmem_is_allowed 1) and 0x1000 low System RAM (2): both mappable.
    const low = mapDevmem(env, 0, 0x2000).addr;
    expect(low).toBeGreaterThan(0);
    expect(env.pfnAt(low + 0x1000)).toBe(1);
  });

  it('R-REV-3: without STRICT_DEVMEM, RAM is -EINVAL (PAT aliasing) before 6.16, mapped after', () => {
    const old = boot('6.15', { CONFIG_STRICT_DEVMEM: false, CONFIG_IO_STRICT_DEVMEM: false });
    expect(mapDevmem(old, 0x200000, 0x1000).addr).toBe(-EINVAL);
    const cur = boot('6.18', { CONFIG_STRICT_DEVMEM: false, CONFIG_IO_STRICT_DEVMEM: false });
    const a = mapDevmem(cur, 0x200000, 0x1000).addr;
    expect(a).toBeGreaterThan(0);
    expect(cur.pfnAt(a)).toBe(0x200);
  });

  it('R-REV-3: an IORESOURCE_EXCLUSIVE claim refuses new mappings even without IO_STRICT', () => {
    const env = boot('6.12', { CONFIG_IO_STRICT_DEVMEM: false });
    env.claim(BAR, 0x1000, true);
    expect(mapDevmem(env, BAR, 0x1000).addr).toBe(-EPERM);
    expect(mapDevmem(env, BAR + 0x1000, 0x1000).addr).toBeGreaterThan(0);
  });
});

describe('revoke_iomem', () => {
  it('R-REV-3: 6.12 IO_STRICT_DEVMEM: a claim zaps the /dev/mem PTEs (CLEAR), access SIGBUSes', () => {
    const env = boot('6.12');
    const { addr } = mapDevmem(env, BAR, 0x2000);
    expect(env.load(addr)).toBeInstanceOf(Uint8Array);
    notifierLog().length = 0;
    env.claim(BAR, 0x1000); // [mem 0xe0000000-0xe0000fff] "drv"
    expect(notifierLog()).toContainEqual({
      phase: 'start',
      mm: env.task.mm!.id,
      event: 'MMU_NOTIFY_CLEAR',
      start: addr,
      end: addr + 0x1000,
    });
    expect(env.pfnAt(addr)).toBeNull();
    expect(env.pfnAt(addr + 0x1000)).toBe(0xe0001); // outside the claim: kept
    expect(env.load(addr)).toBe('SIGBUS'); // no ->fault in mmap_mem_ops
    expect(env.store(addr, [1])).toBe('SIGBUS');
    expect(env.load(addr + 0x1000)).toBeInstanceOf(Uint8Array);
    // New mappings of the claimed page are refused while it is busy, allowed after release.
    expect(mapDevmem(env, BAR, 0x1000).addr).toBe(-EPERM);
    env.k.run(
      (function* () {
        release_mem_region(BAR, 0x1000);
      })(),
    );
    expect(mapDevmem(env, BAR, 0x1000).addr).toBeGreaterThan(0);
  });

  it('R-REV-3: 5.8 (revoke_devmem in drivers/char/mem.c) zaps the same way', () => {
    const env = boot('5.8');
    const { addr } = mapDevmem(env, BAR, 0x1000);
    env.claim(BAR, 0x1000);
    expect(env.pfnAt(addr)).toBeNull();
    expect(env.load(addr)).toBe('SIGBUS');
  });

  it('R-REV-3: 5.7 has no revoke: the mapping survives the claim', () => {
    const env = boot('5.7');
    const { addr } = mapDevmem(env, BAR, 0x1000);
    notifierLog().length = 0;
    env.claim(BAR, 0x1000);
    expect(notifierLog()).toEqual([]);
    expect(env.pfnAt(addr)).toBe(0xe0000);
    expect(env.load(addr)).toBeInstanceOf(Uint8Array);
  });

  it('R-REV-3: IO_STRICT_DEVMEM off: no revoke (the claim is not exclusive)', () => {
    const env = boot('6.12', { CONFIG_IO_STRICT_DEVMEM: false });
    const { addr } = mapDevmem(env, BAR, 0x1000);
    env.claim(BAR, 0x1000);
    expect(env.pfnAt(addr)).toBe(0xe0000);
    expect(env.load(addr)).toBeInstanceOf(Uint8Array);
  });

  it('R-REV-3: iomem=relaxed: devmem_is_allowed still allows the range, nothing is zapped', () => {
    for (const v of ['5.8', '6.12']) {
      const env = boot(v);
      env.k.run(
        (function* () {
          strict_iomem('relaxed');
        })(),
      );
      const { addr } = mapDevmem(env, BAR, 0x1000);
      env.claim(BAR, 0x1000);
      expect(env.pfnAt(addr)).toBe(0xe0000);
      // iomem=strict restores the checks for the next claim.
      env.k.run(
        (function* () {
          strict_iomem('strict');
        })(),
      );
      const b = mapDevmem(env, BAR + 0x1000, 0x1000).addr;
      env.claim(BAR + 0x1000, 0x1000);
      expect(env.pfnAt(b)).toBeNull();
    }
  });

  it('R-REV-1/R-REV-3: even_cows=1 also drops a COWed anon page of a private mapping', () => {
    const env = boot('6.12');
    const { addr } = mapDevmem(env, BAR, 0x1000, MAP_PRIVATE);
    expect(env.store(addr, [7])).toBe('ok'); // wp_page_copy: an anon page replaces the pfn
    const anon = env.pfnAt(addr)!;
    expect(anon).not.toBe(0xe0000);
    env.claim(BAR, 0x1000);
    expect(env.pfnAt(addr)).toBeNull();
    expect(env.load(addr)).toBe('SIGBUS');
  });
  it('R-REV-3: in a two-thread run the revoke is scheduled: a load between the claim and its zap still reaches the BAR, one after the zap gets SIGBUS', () => {
    /** Whether the tree under r holds the driver's busy region. */
    const claimed = (r: resource | null): boolean => {
      for (let c = r?.child ?? null; c; c = c.sibling)
        if (c.name === 'drv' || claimed(c)) return true;
      return false;
    };
    /** The driver runs `drvSteps` steps, then the load runs to its end, then the driver. */
    const outcome = (drvSteps: number): { load: string; busyFirst: boolean } => {
      const env = boot('6.12');
      const { addr } = mapDevmem(env, BAR, 0x2000);
      const r = env.k.runner();
      const load = r.spawn(
        'load',
        do_syscall(env.task, cpu_user_read(env.task, addr, 0x2000)),
        env.task,
      );
      const drv = r.spawn(
        'drv',
        (function* (): Op<unknown> {
          yield { obj: 'drv.probe', kind: 'read' };
          return yield* request_mem_region(BAR + 0x1000, 0x1000, 'drv');
        })(),
      );
      for (let i = 0; i < drvSteps && !drv.done; i++) expect(r.step(drv.id)).toBe(true);
      const busyFirst = claimed(iomem_resource());
      while (!load.done) expect(r.step(load.id)).toBe(true);
      while (!drv.done) expect(r.step(drv.id)).toBe(true);
      expect(drv.result).not.toBeNull();
      return { load: (load.result as { kind: string }).kind, busyFirst };
    };
    // The whole claim first: page 0xe0001 is zapped before the load reaches it.
    expect(outcome(Infinity)).toEqual({ load: 'SIGBUS', busyFirst: true });
    // The load first.
    expect(outcome(0)).toEqual({ load: 'ok', busyFirst: false });
    // The region is busy but revoke_iomem's zap has not run yet: the load still gets
    // through (the window between the claim and the revoke).
    expect(outcome(1)).toEqual({ load: 'ok', busyFirst: true });
  });
});

describe('generic_access_phys (mmap_mem_ops.access)', () => {
  it('R-CALL-1: /proc/self/mem reads a /dev/mem mapping through ->access; -EIO after the revoke', () => {
    const env = boot('6.12');
    phys_write(BAR + 0x20, Uint8Array.from([1, 2, 3, 4]));
    const { addr } = mapDevmem(env, BAR, 0x1000);
    expect(mmap_mem_ops.access).toBe(generic_access_phys);
    const buf = env.buffer(0x1000);
    const pm = env.sys(do_sys_open('/proc/self/mem', O_RDWR, 0));
    expect(env.sys(ksys_pread64(pm, buf, 4, addr + 0x20))).toBe(4);
    expect([...(env.load(buf, 4) as Uint8Array)]).toEqual([1, 2, 3, 4]);
    // A write goes to the device too (FOLL_WRITE, the PTE is writable).
    expect(env.store(buf, [9])).toBe('ok');
    expect(env.sys(ksys_pwrite64(pm, buf, 1, addr + 0x20))).toBe(1);
    expect(phys_read(BAR + 0x20, 1)[0]).toBe(9);
    env.claim(BAR, 0x1000);
    expect(env.sys(ksys_pread64(pm, buf, 4, addr + 0x20))).toBe(-EIO);
  });
});

describe('read_mem / write_mem', () => {
  it('R-REV-3: STRICT_DEVMEM reads: RAM -EPERM, low-1 MiB RAM zeros, BAR bytes', () => {
    const env = boot('6.12');
    phys_write(0x2000, Uint8Array.from([0x55])); // low System RAM page 2
    phys_write(0x200000, Uint8Array.from([0x66]));
    phys_write(BAR, Uint8Array.from([0x77]));
    const fd = env.sys(do_sys_open('/dev/mem', O_RDWR, 0));
    const buf = env.buffer(0x2000);
    expect(env.sys(ksys_pread64(fd, buf, 1, 0x200000))).toBe(-EPERM);
    expect(env.sys(ksys_pread64(fd, buf, 1, 0x2000))).toBe(1);
    expect((env.load(buf) as Uint8Array)[0]).toBe(0);
    expect(env.sys(ksys_pread64(fd, buf, 1, BAR))).toBe(1);
    expect((env.load(buf) as Uint8Array)[0]).toBe(0x77);
    // A read that crosses from allowed into refused pages fails as a whole.
    expect(env.sys(ksys_pread64(fd, buf, 0x2000, 0xfffff000))).toBe(-EPERM);
    // Past the top of RAM (0x180000000) read() is -EFAULT even for holes.
    expect(env.sys(ksys_pread64(fd, buf, 1, 0x180000000))).toBe(-EFAULT);
    expect(page_is_allowed(0x2)).toBe(2);
    expect(range_is_allowed(0x2, 0x1000)).toBe(1);
  });

  it('R-REV-3: without STRICT_DEVMEM RAM reads through; writes to low RAM are skipped under it', () => {
    const open = boot('6.12', { CONFIG_STRICT_DEVMEM: false, CONFIG_IO_STRICT_DEVMEM: false });
    phys_write(0x200000, Uint8Array.from([0x66]));
    const fd = open.sys(do_sys_open('/dev/mem', O_RDWR, 0));
    const buf = open.buffer(0x1000);
    expect(open.sys(ksys_pread64(fd, buf, 1, 0x200000))).toBe(1);
    expect((open.load(buf) as Uint8Array)[0]).toBe(0x66);

    const env = boot('6.12');
    phys_write(0x2000, Uint8Array.from([0x55]));
    const fd2 = env.sys(do_sys_open('/dev/mem', O_RDWR, 0));
    const b2 = env.buffer(0x1000);
    expect(env.sys(ksys_pwrite64(fd2, b2, 1, 0x2000))).toBe(1); // counted, not written
    expect(phys_read(0x2000, 1)[0]).toBe(0x55);
    expect(env.sys(ksys_pwrite64(fd2, b2, 1, 0x200000))).toBe(-EPERM);
    expect(env.sys(ksys_pwrite64(fd2, b2, 1, BAR))).toBe(1);
    expect(phys_read(BAR, 1)[0]).toBe(0xee);
  });
});
