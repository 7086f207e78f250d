/**
 * cma-pagecache: a driver's DMA buffer comes from CMA (cma_alloc, as the CMA dma-heap
 * and dma_alloc_contiguous do) and is mapped to user space with remap_pfn_range (as
 * dma_mmap_coherent does). Another driver (the "user") caches the pfn it looked up
 * behind the user address past the lookup's window, and later maps it into its device's
 * IOMMU and lets the device write. The buffer's driver tears the buffer down
 * (unmap_mapping_range, cma_release), and a process reading a file gets a new page-cache
 * folio: cma_release puts the order-0 frame on the MOVABLE free list and the page-cache
 * allocation (GFP_HIGHUSER_MOVABLE) takes it back at once (R-REV-5). The device then
 * writes into the file's page cache.
 *
 * Lookup per era as in follow-pfnmap: follow_pfnmap_start/_end (6.12+), follow_pte +
 * pte_unmap_unlock (6.10-6.11), follow_pfn (up to 6.9; follow_pte under the PTE lock
 * where the fixed variant needs a window).
 *
 * - unsafe: the cached pfn is mapped and written after the window: stale-pfn at
 *   iommu_map (the report names the page cache as the frame's new owner when the read
 *   ran first).
 * - fixed-pin: the user takes a reference on the page inside the window (the frame has a
 *   struct page) and drops it only after removing its IOMMU entry; cma_release then
 *   cannot free the frame ("1 pages are still in use!" WARN when it runs in between), so
 *   the page cache cannot get it while the device may write.
 * - fixed-revoke: the buffer's driver revokes its importers before freeing (under the
 *   user's lock: the IOMMU entry is removed and the user marked revoked), and the user
 *   maps the pfn only under that lock and only while not revoked: the pfn is valid
 *   while the driver owns the frame.
 */
import { defineScenario, type Op, type ScenarioContext } from '../src/index.js';
import type { folio, page } from '../src/kernel/include/linux/mm_types.js';
import {
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  follow_pte,
} from '../src/kernel/mm/memory.pfnmap.js';
import { unmap_mapping_range } from '../src/kernel/mm/memory.zap.js';
import { cma_alloc, cma_find, cma_release } from '../src/kernel/mm/cma.js';
import { vma_lookup } from '../src/kernel/mm/vma.js';
import { mmap_read_lock, mmap_read_unlock } from '../src/kernel/include/linux/mmap_lock.js';
import { ptep_get, pte_unmap_unlock } from '../src/kernel/include/linux/pgtable.js';
import { pte_pfn } from '../src/kernel/arch/x86/include/asm/pgtable_types.js';
import { spin_lock, spin_unlock, spinlock_t } from '../src/kernel/include/linux/spinlock.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import { O_CREAT } from '../src/kernel/include/linux/fs.js';
import { O_RDWR } from '../src/kernel/fs/inode.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE, vm_mmap_pgoff } from '../src/kernel/mm/mmap.js';
import { get_page, put_page } from '../src/kernel/include/linux/page_ref.js';
import { folio_raw_mapping, pfn_to_page } from '../src/kernel/include/linux/page-flags.js';
import { phys_read } from '../src/kernel/mm/sparse.js';
import { iommu_iova_to_phys, type iommu_domain } from '../src/kernel/drivers/iommu/iommu.js';
import type { pci_dev } from '../src/kernel/drivers/pci/pci.js';
import {
  pfnsan_lease_get,
  pfnsan_lease_guard,
  pfnsan_lease_of,
  type pfnsan_guarantee,
} from '../src/kernel/mm/pfnsan/pfnsan.js';
import type { Process } from '../src/scenario/process.js';
import {
  DEV_BYTE,
  IOVA,
  USER_DEV,
  deviceWrite,
  driverBufferFile,
  hex,
  iommu_unmap,
  mapPfn,
  ownFrames,
  userDevice,
  type DriverBuffer,
} from './mm-common.js';

/** The CMA area: 4 MiB at 768 MiB (pfn 0x30000..0x303ff), two pageblocks. */
const CMA_BASE = 0x30000000;
const CMA_SIZE = 0x400000;

interface State {
  readonly app: Process;
  readonly reader: Process;
  readonly fd: number;
  readonly rbuf: number;
  readonly buf: DriverBuffer;
  readonly frame: number;
  readonly uaddr: number;
  readonly dev: pci_dev;
  readonly domain: iommu_domain;
  readonly lock: spinlock_t;
  /** The buffer's driver has revoked its importers (fixed-revoke; under lock). */
  revoked: boolean;
  freed: boolean;
  /** The user holds a page reference (fixed-pin). */
  pinned: boolean;
}

/**
 * The lookup of the era under mmap_lock. `inWindow(pfn, guard)` runs under the PTE
 * lock in the locked forms (guard(g) records the guarantee the caller adds). Returns the
 * pfn, or null when the PTE is gone.
 */
function* lookup(
  ctx: ScenarioContext,
  s: State,
  locked: boolean,
  inWindow: (pfn: number, guard: (g: pfnsan_guarantee) => void) => Op<void>,
): Op<number | null> {
  const mm = s.app.task.mm!;
  const vma = vma_lookup(mm, s.uaddr)!;
  if (ctx.since(6, 12)) {
    const args = follow_pfnmap_args_init(vma, s.uaddr);
    const ret = yield* follow_pfnmap_start(args);
    if (ret) {
      ctx.note(`follow_pfnmap_start: ${errname(ret)} (the PTE is gone)`);
      return null;
    }
    ctx.note(`follow_pfnmap_start: pfn ${hex(args.pfn)}`);
    yield* inWindow(args.pfn, (g) => {
      const l = pfnsan_lease_of(args);
      if (l) pfnsan_lease_guard(l, g);
    });
    yield* follow_pfnmap_end(args);
    return args.pfn;
  }
  if (!locked && !ctx.since(6, 10)) {
    const r = yield* follow_pfn(vma, s.uaddr);
    if (r.ret) {
      ctx.note(`follow_pfn: ${errname(r.ret)} (the PTE is gone)`);
      return null;
    }
    ctx.note(`follow_pfn: pfn ${hex(r.pfn)} (PTE lock already dropped)`);
    return r.pfn;
  }
  const r = yield* follow_pte(ctx.since(6, 10) ? vma : mm, s.uaddr);
  if (r.ret) {
    ctx.note(`follow_pte: ${errname(r.ret)} (the PTE is gone)`);
    return null;
  }
  const pfn = pte_pfn(ptep_get(r.ptep!));
  ctx.note(`follow_pte: pfn ${hex(pfn)}, PTE lock held`);
  // Model glue: follow_pte's own lease ends with the PTE lock; the caller's guarantee
  // from here on is the one it adds.
  yield* inWindow(pfn, (g) => void pfnsan_lease_get(pfn, 1, 'follow_pte', g));
  yield* pte_unmap_unlock(r.ptep!, r.ptl!);
  return pfn;
}

function* userUnsafe(ctx: ScenarioContext, s: State): Op<void> {
  const mm = s.app.task.mm!;
  yield* mmap_read_lock(mm);
  const pfn = yield* lookup(ctx, s, false, function* () {});
  yield* mmap_read_unlock(mm);
  if (pfn === null) return;
  ctx.note(`accel: caches pfn ${hex(pfn)} for later`);
  if ((yield* mapPfn(ctx, s, pfn)) === 0) yield* deviceWrite(ctx, s);
}

function* userPin(ctx: ScenarioContext, s: State): Op<void> {
  const mm = s.app.task.mm!;
  yield* mmap_read_lock(mm);
  const pfn = yield* lookup(ctx, s, true, function* (p, guard) {
    get_page(pfn_to_page(p));
    s.pinned = true;
    guard({ kind: 'pin' });
    ctx.note(`accel: get_page(pfn ${hex(p)}) inside the window`);
  });
  yield* mmap_read_unlock(mm);
  if (pfn === null) return;
  if ((yield* mapPfn(ctx, s, pfn)) === 0) {
    yield* deviceWrite(ctx, s);
    yield* iommu_unmap(s.domain, IOVA, 4096);
  }
  put_page(pfn_to_page(pfn));
  s.pinned = false;
  ctx.note(`accel: iommu_unmap, then put_page(pfn ${hex(pfn)})`);
}

function* userRevoke(ctx: ScenarioContext, s: State): Op<void> {
  const mm = s.app.task.mm!;
  yield* mmap_read_lock(mm);
  const pfn = yield* lookup(ctx, s, true, function* (_p, guard) {
    guard({ kind: 'driver', driver: 'cma_buf' });
  });
  yield* mmap_read_unlock(mm);
  if (pfn === null) return;
  yield* spin_lock(s.lock);
  if (s.revoked) {
    ctx.note('accel: the buffer was revoked; the pfn is not used');
    yield* spin_unlock(s.lock);
    return;
  }
  yield* mapPfn(ctx, s, pfn);
  yield* spin_unlock(s.lock);
  yield* deviceWrite(ctx, s);
}

export const cmaPagecache = defineScenario<State>({
  name: 'cma-pagecache',
  story: 'cma-pagecache',
  description:
    "a pfn cached from a driver's CMA buffer mapping is written by another device after the driver freed the buffer (cma_release) and the frame was reused by the page cache",
  machine: {
    ram: 2 ** 30,
    cma: [{ name: 'reserved', base: CMA_BASE, size: CMA_SIZE }],
    devices: [USER_DEV],
  },
  setup(ctx) {
    const c = cma_find('reserved')!;
    const pg = ctx.run(cma_alloc(c, 1, 0, false));
    if (pg === null) throw new Error('cma_alloc of the buffer failed');
    const frame = pg as number;
    ownFrames([frame], 'CMA buffer of cma_buf');
    const buf = driverBufferFile('cma_buf', [frame], 'remap');
    const app = ctx.spawnProcess('app');
    const uaddr = app.run(
      vm_mmap_pgoff(app.task.mm!, buf.filp, 0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 0),
    );
    if (uaddr < 0) throw new Error(`mmap of /dev/cma_buf failed: ${errname(uaddr)}`);
    const reader = ctx.spawnProcess('reader');
    const fd = reader.open('/data', O_RDWR | O_CREAT);
    if (fd < 0 || reader.ftruncate(fd, 4096) !== 0)
      throw new Error('creating /data (one page, not cached) failed');
    const rbuf = reader.buffer(4096);
    const { dev, domain } = userDevice(ctx);
    ctx.note(
      `cma_buf: CMA pfn ${hex(frame)} mapped at ${hex(uaddr)} in app; reader has /data (4 KiB, not in the page cache)`,
    );
    return {
      app,
      reader,
      fd,
      rbuf,
      buf,
      frame,
      uaddr,
      dev,
      domain,
      lock: new spinlock_t('accel.lock'),
      revoked: false,
      freed: false,
      pinned: false,
    };
  },
  threads: {
    user: {
      kind: 'driver',
      run(ctx, s) {
        if (ctx.variant === 'fixed-pin') return userPin(ctx, s);
        if (ctx.variant === 'fixed-revoke') return userRevoke(ctx, s);
        return userUnsafe(ctx, s);
      },
    },
    driver: {
      kind: 'driver',
      *run(ctx, s): Op<void> {
        yield* unmap_mapping_range(s.buf.filp.f_mapping, 0, 0, 1);
        if (ctx.variant === 'fixed-revoke') {
          yield* spin_lock(s.lock);
          s.revoked = true;
          if (iommu_iova_to_phys(s.domain, IOVA) !== 0) {
            yield* iommu_unmap(s.domain, IOVA, 4096);
            ctx.note('cma_buf: revoke: the importer removed its IOMMU entry');
          }
          yield* spin_unlock(s.lock);
        }
        const c = cma_find('reserved')!;
        yield* cma_release(c, s.frame as page, 1);
        s.freed = true;
        ctx.note(`cma_buf: cma_release(pfn ${hex(s.frame)})`);
      },
    },
    reader: {
      kind: 'cpu',
      as: (_ctx, s) => s.reader,
      *run(ctx, s): Op<void> {
        const n = yield* s.reader.op.pread(s.fd, s.rbuf, 4096, 0);
        ctx.note(`reader: pread(/data) = ${n}`);
      },
    },
  },
  check(_ctx, s) {
    // The harm: the frame now caches /data and the device wrote into it.
    if (s.freed && folio_raw_mapping(s.frame as folio) !== null) {
      const bytes = phys_read(s.frame * 4096, 8);
      if (bytes.some((b) => b === DEV_BYTE))
        return `the device wrote into the page cache of /data (pfn ${hex(s.frame)}, the driver's freed CMA frame)`;
    }
    const pa = iommu_iova_to_phys(s.domain, IOVA);
    if (s.freed && pa !== 0 && Math.floor(pa / 4096) === s.frame)
      return `the device's IOMMU still maps iova ${hex(IOVA)} to pfn ${hex(s.frame)}, which the driver freed`;
    return null;
  },
  variants: {
    unsafe: {
      description: 'the cached pfn is mapped and written after the lookup window ended',
      expect: { default: 'stale-pfn' },
    },
    'fixed-pin': {
      description: 'the user holds a page reference from inside the window until it unmapped',
      expect: { default: 'SAFE' },
    },
    'fixed-revoke': {
      description: 'the driver revokes the importer under its lock before cma_release',
      expect: { default: 'SAFE' },
    },
  },
});

export default cmaPagecache;
