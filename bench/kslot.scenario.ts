/**
 * The K-slot lease model (issue 5, benchmark) as a pfnsim scenario on the modelled kernel.
 * bench/kslot.pml is the same model in Promela; bench/kslot.ts runs both.
 *
 * Slot k: a driver's buffer frame is mapped by remap_pfn_range into process k (one process
 * per slot, so slots share no page table, TLB or mmap_lock), and device k has its own IOMMU
 * domain. Per slot, three threads:
 * - mapper: mmap_read_lock, follow_pfnmap_start, reads the pfn, follow_pfnmap_end,
 *   mmap_read_unlock, then iommu_map of the pfn under the slot's DMA lock (BUG). FIXED: the
 *   pfn is mapped before follow_pfnmap_end (inside the PTE lock's window), under the DMA
 *   lock;
 * - zapper: zap_vma_ptes of the slot's page (mmap_read_lock held): the PTE is cleared under
 *   its lock and the TLB flushed; in FIXED the driver's MMU notifier
 *   (->arch_invalidate_secondary_tlbs, which x86 calls after the TLB flush, v6.6+) removes
 *   the IOMMU entry under the DMA lock. Then the frame is freed and the next allocation
 *   (LIFO: the same frame) gives it to another owner;
 * - dma: the device makes 3 reads through its IOMMU domain. It takes no CPU lock (it is
 *   hardware): iommu_unmap's IOTLB sync waits for a request already translated, and
 *   pfnsan checks each access against the generation the IOMMU entry was made for.
 *
 * Verdicts: BUG is `stale-pfn`, reported when iommu_map receives the pfn after
 * follow_pfnmap_end; FIXED is SAFE.
 */
import { defineScenario, type Op, type Scenario } from '../src/index.js';
import { deviceByBdf } from '../src/scenario/machine.js';
import type { Process } from '../src/scenario/process.js';
import type { file, vm_area_struct } from '../src/kernel/include/linux/mm_types.js';
import { alloc_file, new_inode, O_RDWR } from '../src/kernel/fs/inode.js';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_PFNMAP } from '../src/kernel/include/linux/mm.js';
import {
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  remap_pfn_range,
  vm_flags_set,
} from '../src/kernel/mm/memory.pfnmap.js';
import { zap_vma_ptes } from '../src/kernel/mm/memory.zap.js';
import {
  MAP_FIXED,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from '../src/kernel/mm/mmap.js';
import { vma_lookup } from '../src/kernel/mm/vma.js';
import { mmap_read_lock, mmap_read_unlock } from '../src/kernel/include/linux/mmap_lock.js';
import { spinlock_t, spin_lock, spin_unlock } from '../src/kernel/include/linux/spinlock.js';
import { alloc_page, __free_pages, GFP_KERNEL, GFP_NOWAIT } from '../src/kernel/mm/page_alloc.js';
import type { page } from '../src/kernel/include/linux/mm_types.js';
import { pfnsan_set_owner } from '../src/kernel/mm/pfnsan/pfnsan.js';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  iommu_attach_group,
  iommu_map,
  iommu_paging_domain_alloc,
  iommu_unmap,
  type iommu_domain,
} from '../src/kernel/drivers/iommu/iommu.js';
import {
  pci_enable_device_mem,
  pci_set_master,
  type pci_dev,
} from '../src/kernel/drivers/pci/pci.js';
import { dma_engine_access } from '../src/kernel/drivers/dma/engine.js';
import { mmu_notifier_register, type mmu_notifier } from '../src/kernel/mm/mmu_notifier.js';

/** Slot k's user address: its own PMD, so its own PTE table and lock. */
const SLOT_ADDR = (k: number): number => 0x40000000 + k * 0x200000;
/** The IOVA every device uses for its slot's frame. */
const IOVA = 0x100000;
const bdf = (k: number): string => `0000:0${k + 1}:00.0`;

interface Slot {
  readonly p: Process;
  readonly frame: page;
  readonly pfn: number;
  readonly addr: number;
  readonly dev: pci_dev;
  readonly domain: iommu_domain;
  readonly dmaLock: spinlock_t;
  mapped: boolean;
}

interface State {
  readonly slots: Slot[];
}

/** The driver's ->mmap: one buffer frame per page offset, VM_IO|VM_PFNMAP. */
function bufferFile(frames: () => readonly number[]): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/kslot', O_RDWR, inode, {
    name: 'kslot_fops',
    *mmap(_f: file, vma: vm_area_struct): Op<number> {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      const pfn = frames()[vma.vm_pgoff]!;
      return yield* remap_pfn_range(vma, vma.vm_start, pfn, 4096, vma.vm_page_prot);
    },
  });
}

/** iommu_map of the slot's IOVA to pfn, under the slot's DMA lock. */
function* mapSlot(slot: Slot, pfn: number): Op<void> {
  yield* spin_lock(slot.dmaLock);
  yield* iommu_map(slot.domain, IOVA, pfn * 4096, 4096, IOMMU_READ | IOMMU_WRITE, GFP_NOWAIT);
  slot.mapped = true;
  yield* spin_unlock(slot.dmaLock);
}

/** The K-slot scenario with K slots; variants `bug` and `fixed`. */
export function kslotScenario(K: number): Scenario<State> {
  const threads: Record<
    string,
    { kind: 'kthread' | 'driver' | 'dma'; run: (ctx: never, s: State) => Op<void> }
  > = {};
  for (let k = 0; k < K; k++) {
    threads[`mapper${k}`] = {
      kind: 'kthread',
      *run(ctx: { variant: string | undefined }, s: State): Op<void> {
        const slot = s.slots[k]!;
        const fixed = ctx.variant === 'fixed';
        const mm = slot.p.task.mm!;
        yield* mmap_read_lock(mm);
        const args = follow_pfnmap_args_init(vma_lookup(mm, slot.addr)!, slot.addr);
        let late: number | null = null;
        if ((yield* follow_pfnmap_start(args)) === 0) {
          if (fixed) yield* mapSlot(slot, args.pfn);
          else late = args.pfn;
          yield* follow_pfnmap_end(args);
        }
        yield* mmap_read_unlock(mm);
        if (late !== null) yield* mapSlot(slot, late);
      },
    } as never;
    threads[`zapper${k}`] = {
      kind: 'driver',
      *run(_ctx: unknown, s: State): Op<void> {
        const slot = s.slots[k]!;
        const mm = slot.p.task.mm!;
        yield* mmap_read_lock(mm);
        yield* zap_vma_ptes(vma_lookup(mm, slot.addr)!, slot.addr, 4096);
        yield* mmap_read_unlock(mm);
        __free_pages(slot.frame, 0);
        const again = alloc_page(GFP_KERNEL)!;
        pfnsan_set_owner(again as unknown as number, 1, {
          kind: 'driver',
          desc: `another owner ${k}`,
        });
      },
    } as never;
    threads[`dma${k}`] = {
      kind: 'dma',
      *run(_ctx: unknown, s: State): Op<void> {
        const slot = s.slots[k]!;
        for (let i = 0; i < 3; i++) {
          yield* dma_engine_access(slot.dev, IOVA, 8, 'read');
        }
      },
    } as never;
  }
  return defineScenario<State>({
    name: `kslot-${K}`,
    story: 'kslot',
    description: `the K-slot lease model with K=${K}: mapper, zapper and DMA engine per slot`,
    machine: {
      ram: 2 ** 28,
      devices: Array.from({ length: K }, (_, k) => ({ bdf: bdf(k), bars: [{ size: 4096 }] })),
    },
    setup(ctx) {
      const fixed = ctx.variant === 'fixed';
      const frames: number[] = [];
      const drv = bufferFile(() => frames);
      const slots: Slot[] = [];
      for (let k = 0; k < K; k++) {
        const p = ctx.spawnProcess(`app${k}`);
        const frame = alloc_page(GFP_KERNEL)!;
        const pfn = frame as unknown as number;
        frames.push(pfn);
        pfnsan_set_owner(pfn, 1, { kind: 'driver', desc: `kslot buffer ${k}` });
        const addr = p.run(
          vm_mmap_pgoff(
            p.task.mm!,
            drv,
            SLOT_ADDR(k),
            4096,
            PROT_READ | PROT_WRITE,
            MAP_SHARED | MAP_FIXED,
            k,
          ),
        );
        if (addr !== SLOT_ADDR(k)) throw new Error(`kslot: mmap of slot ${k} failed: ${addr}`);
        const dev = deviceByBdf(ctx.k, bdf(k));
        const domain = iommu_paging_domain_alloc(dev);
        if (typeof domain === 'number') throw new Error(`kslot: no IOMMU domain: ${domain}`);
        const dmaLock = new spinlock_t(`kslot${k}.dma_lock`);
        const slot: Slot = { p, frame, pfn, addr, dev, domain, dmaLock, mapped: false };
        ctx.run(
          (function* (): Op<void> {
            yield* pci_enable_device_mem(dev);
            yield* pci_set_master(dev);
            const r = yield* iommu_attach_group(domain, dev.iommu_group!);
            if (r) throw new Error(`kslot: attach failed: ${r}`);
          })(),
        );
        if (fixed) {
          // The driver's secondary-TLB notifier: drop the IOMMU entry once the CPU's
          // translations are gone (called after the TLB flush; must not sleep).
          const sub: mmu_notifier = {
            name: `kslot${k}`,
            mm: null,
            ops: {
              *arch_invalidate_secondary_tlbs(): Op<void> {
                yield* spin_lock(dmaLock);
                if (slot.mapped) {
                  yield* iommu_unmap(domain, IOVA, 4096);
                  slot.mapped = false;
                }
                yield* spin_unlock(dmaLock);
              },
            },
          };
          ctx.run(mmu_notifier_register(sub, p.task.mm!));
        }
        slots.push(slot);
      }
      return { slots };
    },
    threads: threads as never,
    variants: {
      bug: {
        description: 'the pfn is mapped into the IOMMU after follow_pfnmap_end',
        expect: { default: 'stale-pfn' },
      },
      fixed: {
        description:
          "mapped before follow_pfnmap_end under the DMA lock; the driver's MMU notifier unmaps it after the TLB flush",
        expect: { default: 'SAFE' },
      },
    },
  });
}

export default [kslotScenario(2)];
