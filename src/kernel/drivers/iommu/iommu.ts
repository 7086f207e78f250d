/**
 * The IOMMU core (drivers/iommu/iommu.c) over one model IOMMU driver: groups, domains with
 * an IOVA -> PFN page table, iommu_map/iommu_unmap, an IOTLB, and the DMA-remapping fault
 * report of intel-iommu (drivers/iommu/intel/dmar.c).
 *
 * Page table: one entry per 4 KiB IOVA page, recording the frame, the IOMMU_* prot and the
 * frame's pfnsan generation at map time. IOTLB: a per-domain cache of entries the DMA
 * engines used; it is not updated by unmap, only by iommu_iotlb_sync()/
 * iommu_flush_iotlb_all(), so a DMA between the page-table clear and the flush can still
 * hit the old frame (the hardware's window; dma-iommu's lazy mode widens it to the flush
 * queue's timeout).
 *
 * Steps: each page-table update (one per iommu_map / __iommu_unmap call) and each IOTLB
 * invalidation is one 'write' of `iommu_domain<id>`; each DMA translation is one 'read' of
 * it (drivers/dma/engine.ts). Group attach/detach take group->mutex.
 *
 * The model driver follows the generic io-pgtable convention: unmapping an IOVA page with
 * no entry stops the unmap (iommu_unmap returns the bytes unmapped so far; intel-iommu's
 * own unmap returns the requested size regardless). Mapping over a present entry keeps
 * the old entry with intel-iommu's "DMA PTE ... already set" pr_crit and WARN_ON(1), and
 * returns 0 (__domain_mapping's cmpxchg).
 *
 * Left out: PASIDs, SVA, nested/user domains, iommufd, reserved regions and MSI windows,
 * device-level attach (iommu_attach_device), default-domain type changes through sysfs,
 * superpages (entries are per 4 KiB; pgsize_bitmap advertises 4K|2M|1G as intel does),
 * dirty tracking, interrupt remapping.
 *
 * @kernel drivers/iommu/iommu.c, drivers/iommu/intel/iommu.c, drivers/iommu/intel/dmar.c,
 *   include/linux/iommu.h (all versions)
 */
import type { Op } from '../../../sched/index.js';
import { currentKernel } from '../../kernel/kernel.js';
import { since } from '../../version.js';
import { WARN_ON, WARN_ON_ONCE } from '../../kernel/panic.js';
import { pr_crit, pr_err, pr_info, ratelimit_state, ___ratelimit } from '../../kernel/printk.js';
import { EBUSY, EFAULT, EINVAL, ENODEV, EPERM } from '../../include/linux/errno.js';
import type { ErrOr } from '../../include/linux/errno.js';
import { mutex, mutex_lock, mutex_unlock } from '../../include/linux/spinlock.js';
import { __GFP_COMP, __GFP_DMA32 } from '../../mm/page_alloc.js';
import { pfnsan_gen, pfnsan_use } from '../../mm/pfnsan/pfnsan.js';
import type { bus_type, device } from '../base/core.js';
import { iommu_get_dma_cookie, type iommu_dma_cookie } from './dma-iommu.js';

/* include/linux/iommu.h: prot flags. */
export const IOMMU_READ = 1 << 0;
export const IOMMU_WRITE = 1 << 1;
export const IOMMU_CACHE = 1 << 2;
export const IOMMU_NOEXEC = 1 << 3;
export const IOMMU_MMIO = 1 << 4;
export const IOMMU_PRIV = 1 << 5;

/* include/linux/iommu.h: domain type bits and types. */
export const __IOMMU_DOMAIN_PAGING = 1 << 0;
export const __IOMMU_DOMAIN_DMA_API = 1 << 1;
export const __IOMMU_DOMAIN_PT = 1 << 2;
export const __IOMMU_DOMAIN_DMA_FQ = 1 << 3;
export const IOMMU_DOMAIN_BLOCKED = 0;
export const IOMMU_DOMAIN_IDENTITY = __IOMMU_DOMAIN_PT;
export const IOMMU_DOMAIN_UNMANAGED = __IOMMU_DOMAIN_PAGING;
export const IOMMU_DOMAIN_DMA = __IOMMU_DOMAIN_PAGING | __IOMMU_DOMAIN_DMA_API;
export const IOMMU_DOMAIN_DMA_FQ = IOMMU_DOMAIN_DMA | __IOMMU_DOMAIN_DMA_FQ;

export const SZ_4K = 0x1000;
export const SZ_2M = 0x200000;
export const SZ_1G = 0x40000000;
/** __GFP_HIGHMEM (not in page_alloc.ts; x86-64 has no highmem). */
const __GFP_HIGHMEM = 0x02;
const __GFP_DMA = 0x01;

/** intel-iommu's guest address width: 48 bits (4-level tables). */
export const DEFAULT_DOMAIN_ADDRESS_WIDTH = 48;

/** One IOVA page's entry: the frame, IOMMU_* prot, and the frame's generation at map time. */
export interface iommu_pte {
  readonly pfn: number;
  readonly prot: number;
  readonly gen: number;
}

/**
 * struct iommu_domain, with the model driver's page table and IOTLB.
 * @kernel include/linux/iommu.h:struct iommu_domain (all versions)
 */
export class iommu_domain {
  /** IOVA pfn -> entry. */
  readonly pt = new Map<number, iommu_pte>();
  /** Cached translations (IOVA pfn -> entry) the DMA engines filled. */
  readonly iotlb = new Map<number, iommu_pte>();
  readonly geometry = {
    aperture_start: 0,
    aperture_end: 2 ** DEFAULT_DOMAIN_ADDRESS_WIDTH - 1,
    force_aperture: true,
  };
  pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G;
  /** DMA requests translated through this domain whose memory access has not completed
   *  (model hardware state; see drivers/dma/engine.ts). */
  inflight = 0;
  /** iommu_dma_cookie of DMA-API domains (dma-iommu.ts). */
  iova_cookie: iommu_dma_cookie | null = null;
  freed = false;
  constructor(
    readonly id: number,
    public type: number,
  ) {}
  /** The Step object of this domain's page table and IOTLB. */
  get obj(): string {
    return `iommu_domain${this.id}`;
  }
}

/**
 * struct iommu_group.
 * @kernel drivers/iommu/iommu.c:struct iommu_group (all versions)
 */
export class iommu_group {
  readonly devices: device[] = [];
  default_domain: iommu_domain | null = null;
  blocking_domain: iommu_domain | null = null;
  domain: iommu_domain | null = null;
  /** DMA ownership (v5.19+): owner cookie and count. */
  owner: unknown = null;
  owner_cnt = 0;
  readonly mutex: mutex;
  constructor(readonly id: number) {
    this.mutex = new mutex(`iommu_group${id}.mutex`);
  }
}

/** struct iommu_iotlb_gather: the IOVA range an unmap touched, flushed by iommu_iotlb_sync. */
export interface iommu_iotlb_gather {
  start: number;
  end: number;
  pgsize: number;
  /** v5.15+: the range is queued for a lazy flush (dma-iommu). */
  queued: boolean;
}

/** iommu_iotlb_gather_init(gather). @kernel include/linux/iommu.h:iommu_iotlb_gather_init (all versions) */
export function iommu_iotlb_gather_init(): iommu_iotlb_gather {
  return { start: Number.MAX_SAFE_INTEGER, end: 0, pgsize: 0, queued: false };
}

interface iommu_state {
  /** iommu_dma_strict: CONFIG_IOMMU_DEFAULT_DMA_STRICT or iommu.strict=. */
  iommu_dma_strict: boolean;
  /** Whether the machine has an IOMMU (intel_iommu=on); false: every device uses dma-direct. */
  present: boolean;
  readonly groups: iommu_group[];
  /** Every domain allocated (model inspection: traces list their entries). */
  readonly domains: iommu_domain[];
  readonly fault_rs: ratelimit_state;
  /** Every DMAR fault reported, for tests and scenarios. */
  readonly faults: dmar_fault[];
}

/** One DMA remapping fault (model record of what dmar_fault_do_one printed). */
export interface dmar_fault {
  readonly source_id: number;
  readonly addr: number;
  readonly write: boolean;
  readonly fault_reason: number;
  readonly domain: number | null;
}

function st(): iommu_state {
  const k = currentKernel();
  let s = k.sub.iommu as iommu_state | undefined;
  if (!s) {
    const hz = k.config.CONFIG_HZ as number;
    s = {
      iommu_dma_strict: k.config.CONFIG_IOMMU_DEFAULT_DMA_STRICT === true,
      present: k.config.CONFIG_IOMMU_SUPPORT === true,
      groups: [],
      domains: [],
      fault_rs: new ratelimit_state(5 * hz, 10),
      faults: [],
    };
    k.sub.iommu = s;
  }
  return s;
}

/** Model: whether the machine has an IOMMU turned on (bootMachine's `iommu`). */
export function iommu_present_on_machine(): boolean {
  return st().present;
}

/** Model: turn the IOMMU off or on before devices are added (machine.ts). */
export function iommu_set_present(on: boolean): void {
  st().present = on;
}

/**
 * iommu.strict= (iommu_dma_setup): the DMA-API invalidation policy for default domains
 * created afterwards.
 * @kernel drivers/iommu/iommu.c:iommu_dma_setup, iommu_set_dma_strict (all versions)
 */
export function iommu_set_dma_strict(strict: boolean): void {
  st().iommu_dma_strict = strict;
}

/** Model: every DMAR fault so far. */
export function dmar_faults(): readonly dmar_fault[] {
  return st().faults;
}

/**
 * iommu_def_domain_type: DMA_FQ when not strict (lazy), else DMA.
 * @kernel drivers/iommu/iommu.c:iommu_subsys_init (IOMMU_DOMAIN_DMA_FQ v5.15+; before it a
 *   DMA domain whose cookie had a flush queue, which the model treats the same)
 */
function iommu_def_domain_type(): number {
  return st().iommu_dma_strict ? IOMMU_DOMAIN_DMA : IOMMU_DOMAIN_DMA_FQ;
}

function new_domain(type: number): iommu_domain {
  const d = new iommu_domain(currentKernel().nextId('iommu_domain'), type);
  st().domains.push(d);
  return d;
}

/** Model inspection: the domains not yet freed, in allocation order. */
export function iommu_live_domains(): readonly iommu_domain[] {
  return st().domains.filter((d) => !d.freed);
}

/**
 * iommu_group_alloc(): a new, empty group (ids from 0).
 * @kernel drivers/iommu/iommu.c:iommu_group_alloc (all versions)
 * Return: the group.
 */
export function iommu_group_alloc(): iommu_group {
  const g = new iommu_group(currentKernel().nextId('iommu_group') - 1);
  st().groups.push(g);
  return g;
}

/** Model lookup: the group with this id. */
export function iommu_group_find(id: number): iommu_group | null {
  return st().groups.find((g) => g.id === id) ?? null;
}

/** iommu_group_get(dev): the device's group. @kernel drivers/iommu/iommu.c:iommu_group_get (all versions) */
export function iommu_group_get(dev: device): iommu_group | null {
  return dev.iommu_group;
}

/** iommu_group_put(group): no refcounts in the model. @kernel drivers/iommu/iommu.c:iommu_group_put (all versions) */
export function iommu_group_put(group: iommu_group | null): void {
  void group;
}

/** iommu_group_id(group). @kernel drivers/iommu/iommu.c:iommu_group_id (all versions) */
export function iommu_group_id(group: iommu_group): number {
  return group.id;
}

/**
 * iommu_probe_device(dev) + iommu_group_add_device(): puts dev in `group` (a new group when
 * null), gives the group its default domain (DMA, or DMA_FQ when lazy) and attaches it.
 * @kernel drivers/iommu/iommu.c:iommu_probe_device, __iommu_probe_device,
 *   iommu_group_add_device, iommu_setup_default_domain (v6.5+; iommu_alloc_default_domain
 *   before) (all versions)
 * Locking: takes group->mutex.
 * Return: 0, or -ENODEV when the machine has no IOMMU.
 */
export function* iommu_probe_device(
  dev: device,
  source_id: number,
  group: iommu_group | null,
): Op<number> {
  if (!st().present) return -ENODEV;
  const g = group ?? iommu_group_alloc();
  yield* mutex_lock(g.mutex);
  dev.iommu = { source_id };
  dev.iommu_group = g;
  g.devices.push(dev);
  if (!g.default_domain) {
    const d = new_domain(iommu_def_domain_type());
    iommu_get_dma_cookie(d);
    g.default_domain = d;
  }
  if (!g.domain) g.domain = g.default_domain;
  yield* mutex_unlock(g.mutex);
  return 0;
}

/**
 * iommu_release_device(dev) / iommu_group_remove_device(): takes dev out of its group
 * (the BUS_NOTIFY_REMOVED_DEVICE path of hot-unplug).
 * @kernel drivers/iommu/iommu.c:iommu_release_device, iommu_group_remove_device (all versions)
 * Locking: takes group->mutex.
 */
export function* iommu_release_device(dev: device): Op<void> {
  const g = dev.iommu_group;
  if (!g) return;
  yield* mutex_lock(g.mutex);
  const i = g.devices.indexOf(dev);
  if (i >= 0) g.devices.splice(i, 1);
  dev.iommu_group = null;
  dev.iommu = null;
  yield* mutex_unlock(g.mutex);
}

/**
 * iommu_domain_alloc(bus): an unmanaged domain for the bus's IOMMU.
 * @kernel drivers/iommu/iommu.c:iommu_domain_alloc (until v6.12; removed in v6.13,
 *   "iommu: Remove iommu_domain_alloc()", callers moved to iommu_paging_domain_alloc)
 * Return: the domain, or null without an IOMMU.
 */
export function iommu_domain_alloc(bus: bus_type | null): iommu_domain | null {
  if (since(6, 13)) {
    throw new Error(
      'iommu_domain_alloc() does not exist in v6.13+; call iommu_paging_domain_alloc(dev)',
    );
  }
  void bus;
  if (!st().present) return null;
  return new_domain(IOMMU_DOMAIN_UNMANAGED);
}

/**
 * iommu_paging_domain_alloc(dev): an unmanaged paging domain for dev's IOMMU.
 * @kernel drivers/iommu/iommu.c:iommu_paging_domain_alloc (v6.11+, "iommu: Add
 *   iommu_paging_domain_alloc() interface"; iommu_paging_domain_alloc_flags v6.14+)
 * Return: the domain or ERR_PTR(-ENODEV) when dev has no IOMMU.
 */
export function iommu_paging_domain_alloc(dev: device): ErrOr<iommu_domain> {
  if (!since(6, 11)) {
    throw new Error(
      'iommu_paging_domain_alloc() does not exist before v6.11; call iommu_domain_alloc(bus)',
    );
  }
  if (!dev.iommu) return -ENODEV;
  return new_domain(IOMMU_DOMAIN_UNMANAGED);
}

/**
 * iommu_domain_free(domain): frees the domain and its page table.
 * @kernel drivers/iommu/iommu.c:iommu_domain_free (all versions)
 * Locking: the domain must not be attached.
 */
export function iommu_domain_free(domain: iommu_domain): void {
  domain.pt.clear();
  domain.iotlb.clear();
  domain.freed = true;
}

/**
 * iommu_attach_group(domain, group): switches every device of the group to domain.
 * @kernel drivers/iommu/iommu.c:iommu_attach_group, __iommu_attach_group (all versions; the
 *   blocking-domain exception v6.2+)
 * Locking: takes group->mutex.
 * Return: 0, or -EBUSY when the group is not on its default (or, v6.2+, blocking) domain.
 */
export function* iommu_attach_group(domain: iommu_domain, group: iommu_group): Op<number> {
  yield* mutex_lock(group.mutex);
  let ret = 0;
  const onCore =
    group.domain === group.default_domain ||
    (since(6, 2) && group.blocking_domain !== null && group.domain === group.blocking_domain);
  if (group.default_domain && !onCore) ret = -EBUSY;
  else group.domain = domain;
  yield* mutex_unlock(group.mutex);
  return ret;
}

/**
 * iommu_detach_group(domain, group): puts the group back on its default domain.
 * @kernel drivers/iommu/iommu.c:iommu_detach_group, __iommu_group_set_core_domain (all
 *   versions; v6.2+ to the blocking domain while the group is DMA-owned)
 * Locking: takes group->mutex.
 */
export function* iommu_detach_group(domain: iommu_domain, group: iommu_group): Op<void> {
  void domain;
  yield* mutex_lock(group.mutex);
  group.domain =
    group.owner !== null && group.blocking_domain ? group.blocking_domain : group.default_domain;
  yield* mutex_unlock(group.mutex);
}

/**
 * iommu_group_claim_dma_owner(group, owner): a user-space driver (vfio) takes the group's
 * DMA: the group must have no other owner and be on its default domain; it moves to a
 * blocking domain.
 * @kernel drivers/iommu/iommu.c:iommu_group_claim_dma_owner (v5.19+)
 * Locking: takes group->mutex.
 * Return: 0, -EPERM for a null owner, -EBUSY when owned.
 */
export function* iommu_group_claim_dma_owner(group: iommu_group, owner: unknown): Op<number> {
  if (!since(5, 19)) throw new Error('iommu_group_claim_dma_owner() does not exist before v5.19');
  if (WARN_ON(!owner)) return -EPERM;
  yield* mutex_lock(group.mutex);
  let ret = 0;
  if (group.owner_cnt) ret = -EBUSY;
  else {
    group.blocking_domain ??= new_domain(IOMMU_DOMAIN_BLOCKED);
    group.domain = group.blocking_domain;
    group.owner = owner;
    group.owner_cnt++;
  }
  yield* mutex_unlock(group.mutex);
  return ret;
}

/**
 * iommu_group_release_dma_owner(group): ends user ownership; back to the default domain.
 * @kernel drivers/iommu/iommu.c:iommu_group_release_dma_owner (v5.19+)
 * Locking: takes group->mutex.
 */
export function* iommu_group_release_dma_owner(group: iommu_group): Op<void> {
  yield* mutex_lock(group.mutex);
  if (!WARN_ON(!group.owner_cnt || !group.owner)) {
    group.owner_cnt = 0;
    group.owner = null;
    group.domain = group.default_domain;
  }
  yield* mutex_unlock(group.mutex);
}

/**
 * iommu_iova_to_phys(domain, iova): the physical address iova translates to in the page
 * table (not the IOTLB).
 * @kernel drivers/iommu/iommu.c:iommu_iova_to_phys (all versions)
 * Locking: none (a lockless walk).
 * Return: the physical address, iova for identity domains, 0 when not mapped or blocked.
 */
export function iommu_iova_to_phys(domain: iommu_domain, iova: number): number {
  if (domain.type === IOMMU_DOMAIN_IDENTITY) return iova;
  if (domain.type === IOMMU_DOMAIN_BLOCKED) return 0;
  const e = domain.pt.get(Math.floor(iova / SZ_4K));
  return e ? e.pfn * SZ_4K + (iova % SZ_4K) : 0;
}

function hex(n: number): string {
  return n.toString(16);
}

/**
 * __iommu_map(domain, iova, paddr, size, prot, gfp): checks the domain and alignment and
 * writes one entry per IOVA page (one Step for the whole update).
 * @kernel drivers/iommu/iommu.c:__iommu_map; drivers/iommu/intel/iommu.c:intel_iommu_map,
 *   __domain_mapping (all versions)
 * Return: 0, -ENODEV (no page sizes), -EINVAL (not a paging domain, unaligned, no
 *   read/write prot), -EFAULT (beyond the address width).
 */
export function* __iommu_map(
  domain: iommu_domain,
  iova: number,
  paddr: number,
  size: number,
  prot: number,
  gfp: number,
): Op<number> {
  void gfp;
  if (domain.pgsize_bitmap === 0) return -ENODEV;
  if (!(domain.type & __IOMMU_DOMAIN_PAGING)) return -EINVAL;
  const min_pagesz = SZ_4K;
  if (iova % min_pagesz || paddr % min_pagesz || size % min_pagesz) {
    pr_err(
      `iommu: unaligned: iova 0x${hex(iova)} pa 0x${paddr.toString(16).padStart(16, '0')} size 0x${hex(size)} min_pagesz 0x${hex(min_pagesz)}`,
    );
    return -EINVAL;
  }
  if (size === 0) return 0;
  // intel_iommu_map: the mapped address must fit the domain's address width.
  const max_addr = iova + size;
  if (max_addr - 1 > domain.geometry.aperture_end) {
    pr_err(
      `DMAR: intel_iommu_map: iommu width (${DEFAULT_DOMAIN_ADDRESS_WIDTH}) is not sufficient for the mapped address (${hex(max_addr)})`,
    );
    return -EFAULT;
  }
  // __domain_mapping: at least one of DMA_PTE_READ / DMA_PTE_WRITE.
  if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) return -EINVAL;
  const nr = size / SZ_4K;
  const pfn0 = paddr / SZ_4K;
  pfnsan_use(pfn0, nr, 'iommu_map');
  yield { obj: domain.obj, kind: 'write', what: 'iommu_map' };
  const pteprot = prot & (IOMMU_READ | IOMMU_WRITE);
  for (let i = 0; i < nr; i++) {
    const v = iova / SZ_4K + i;
    const old = domain.pt.get(v);
    if (old) {
      pr_crit(
        `DMAR: ERROR: DMA PTE for vPFN 0x${hex(v)} already set (to ${hex(old.pfn * SZ_4K + old.prot)} not ${hex((pfn0 + i) * SZ_4K + pteprot)})`,
      );
      WARN_ON(true);
      continue;
    }
    domain.pt.set(v, { pfn: pfn0 + i, prot, gen: pfnsan_gen(pfn0 + i) });
  }
  return 0;
}

/**
 * iommu_map(domain, iova, paddr, size, prot[, gfp]): maps [iova, iova+size) to
 * [paddr, paddr+size) with prot (IOMMU_READ|IOMMU_WRITE|...). The gfp argument exists from
 * v6.3 (1369459b2e21 "iommu: Add a gfp parameter to iommu_map()"): pass it exactly when
 * the version has it (the model refuses the other form, as the compiler would).
 * @kernel drivers/iommu/iommu.c:iommu_map (all versions; gfp v6.3+)
 * Locking: none required; the caller serialises overlapping ranges.
 * Return: 0 or -errno (as __iommu_map; -EINVAL for a gfp with __GFP_COMP/DMA/DMA32/HIGHMEM
 *   v6.3+). A failed map unmaps what it mapped.
 */
export function* iommu_map(
  domain: iommu_domain,
  iova: number,
  paddr: number,
  size: number,
  prot: number,
  gfp?: number,
): Op<number> {
  if (since(6, 3) && gfp === undefined) {
    throw new Error('iommu_map() takes a gfp argument in v6.3+ (1369459b2e21)');
  }
  if (!since(6, 3) && gfp !== undefined) {
    throw new Error('iommu_map() has no gfp argument before v6.3 (1369459b2e21)');
  }
  const g = gfp ?? 0x400 | 0x800 | 0x40 | 0x80; /* GFP_KERNEL before v6.3 */
  if (
    since(6, 3) &&
    WARN_ON_ONCE(
      (g & (__GFP_COMP | __GFP_DMA | __GFP_DMA32 | __GFP_HIGHMEM)) !== 0,
      'iommu_map-gfp',
    )
  )
    return -EINVAL;
  return yield* __iommu_map(domain, iova, paddr, size, prot, g);
}

/**
 * __iommu_unmap(domain, iova, size, gather): clears entries from iova on, stopping at the
 * first IOVA page without one, and records the range in gather. The IOTLB is untouched.
 * @kernel drivers/iommu/iommu.c:__iommu_unmap (all versions)
 * Return: bytes unmapped; 0 for a non-paging domain or an unaligned request (pr_err).
 */
export function* __iommu_unmap(
  domain: iommu_domain,
  iova: number,
  size: number,
  gather: iommu_iotlb_gather,
): Op<number> {
  if (domain.pgsize_bitmap === 0) return 0;
  if (!(domain.type & __IOMMU_DOMAIN_PAGING)) return 0;
  const min_pagesz = SZ_4K;
  if (iova % min_pagesz || size % min_pagesz) {
    pr_err(
      `iommu: unaligned: iova 0x${hex(iova)} size 0x${hex(size)} min_pagesz 0x${hex(min_pagesz)}`,
    );
    return 0;
  }
  yield { obj: domain.obj, kind: 'write', what: 'iommu_unmap' };
  let unmapped = 0;
  let v = iova / SZ_4K;
  while (unmapped < size) {
    if (!domain.pt.delete(v)) break;
    gather.start = Math.min(gather.start, v * SZ_4K);
    gather.end = Math.max(gather.end, v * SZ_4K + SZ_4K - 1);
    gather.pgsize = SZ_4K;
    unmapped += SZ_4K;
    v++;
  }
  return unmapped;
}

/**
 * iommu_unmap(domain, iova, size): unmaps and then syncs the IOTLB for the range (strict:
 * iommu_unmap itself is never lazy).
 * @kernel drivers/iommu/iommu.c:iommu_unmap (all versions)
 * Return: bytes unmapped.
 */
export function* iommu_unmap(domain: iommu_domain, iova: number, size: number): Op<number> {
  const gather = iommu_iotlb_gather_init();
  const ret = yield* __iommu_unmap(domain, iova, size, gather);
  yield* iommu_iotlb_sync(domain, gather);
  return ret;
}

/**
 * iommu_unmap_fast(domain, iova, size, gather): unmaps without syncing the IOTLB.
 * @kernel drivers/iommu/iommu.c:iommu_unmap_fast (all versions)
 * Return: bytes unmapped.
 */
export function iommu_unmap_fast(
  domain: iommu_domain,
  iova: number,
  size: number,
  gather: iommu_iotlb_gather,
): Op<number> {
  return __iommu_unmap(domain, iova, size, gather);
}

/**
 * iommu_iotlb_sync(domain, gather): invalidates the IOTLB for the gathered range.
 * @kernel include/linux/iommu.h:iommu_iotlb_sync (all versions; intel_iommu_tlb_sync v5.15+)
 * Locking: none.
 */
export function* iommu_iotlb_sync(domain: iommu_domain, gather: iommu_iotlb_gather): Op<void> {
  if (gather.end < gather.start) return;
  // The invalidation completes only once DMA requests already translated through the
  // domain have drained (VT-d: qi_flush_iotlb sets the read/write drain bits when the
  // hardware has them, and the invalidation wait descriptor waits for completion).
  yield {
    obj: domain.obj,
    kind: 'write',
    what: 'iommu_iotlb_sync',
    enabled: () => domain.inflight === 0,
  };
  const first = Math.floor(gather.start / SZ_4K);
  const last = Math.floor(gather.end / SZ_4K);
  if (last - first + 1 > domain.iotlb.size) {
    for (const k of [...domain.iotlb.keys()]) if (k >= first && k <= last) domain.iotlb.delete(k);
  } else {
    for (let v = first; v <= last; v++) domain.iotlb.delete(v);
  }
  Object.assign(gather, iommu_iotlb_gather_init());
}

/**
 * iommu_flush_iotlb_all(domain): invalidates the domain's whole IOTLB.
 * @kernel include/linux/iommu.h:iommu_flush_iotlb_all (all versions)
 */
export function* iommu_flush_iotlb_all(domain: iommu_domain): Op<void> {
  yield {
    obj: domain.obj,
    kind: 'write',
    what: 'iommu_flush_iotlb_all',
    enabled: () => domain.inflight === 0,
  };
  domain.iotlb.clear();
}

/** The domain DMA from dev goes through now (group->domain), or null when none (dma-direct). */
export function iommu_get_domain_for_dev(dev: device): iommu_domain | null {
  return dev.iommu_group?.domain ?? null;
}

/** dma_remap_fault_reasons[] of drivers/iommu/intel/dmar.c (the ones the model raises). */
export const DMAR_FAULT_REASONS: readonly string[] = [
  'Software',
  'Present bit in root entry is clear',
  'Present bit in context entry is clear',
  'Invalid context entry',
  'Access beyond MGAW',
  'PTE Write access is not set',
  'PTE Read access is not set',
  'Next page table ptr is invalid',
  'Root table address invalid',
  'Context table ptr is invalid',
  'non-zero reserved fields in RTP',
  'non-zero reserved fields in CTP',
  'non-zero reserved fields in PTE',
  'PCE for translation request specifies blocking',
];

const two = (n: number) => n.toString(16).padStart(2, '0');

/**
 * dmar_fault() + dmar_fault_do_one(): the primary fault log of a DMA remapping fault, rate
 * limited (DEFAULT_RATELIMIT_INTERVAL 5 s, burst 10). Text per version:
 * until v5.12 "[DMA Read] Request device [01:00.0] PASID ffffffff fault addr 100000 [fault
 * reason 06] ..."; 719a19335692 "iommu/vt-d: Tweak the description of a DMA fault" (v5.13)
 * "[DMA Read NO_PASID] Request device [0x01:0x00.0] fault addr 0x100000 [fault reason
 * 0x06] ..."; "iommu/vt-d: Drop "0x" prefix from PCI bus & device addresses" (v5.15)
 * "[DMA Read NO_PASID] Request device [01:00.0] fault addr 0x100000 [fault reason 0x06] ...".
 * @kernel drivers/iommu/intel/dmar.c:dmar_fault, dmar_fault_do_one (all versions)
 */
export function dmar_fault_report(
  source_id: number,
  addr: number,
  write: boolean,
  fault_reason: number,
  domain: number | null,
): void {
  const s = st();
  s.faults.push({ source_id, addr, write, fault_reason, domain });
  if (!___ratelimit(s.fault_rs, 'dmar_fault')) return;
  pr_err('DMAR: DRHD: handling fault status reg 2');
  const type = write ? 'DMA Write' : 'DMA Read';
  const bus = source_id >> 8;
  const slot = (source_id & 0xff) >> 3;
  const fn = source_id & 7;
  const reason = DMAR_FAULT_REASONS[fault_reason] ?? 'Unknown';
  if (!since(5, 13)) {
    pr_err(
      `DMAR: [${type}] Request device [${two(bus)}:${two(slot)}.${fn}] PASID ffffffff fault addr ${hex(addr)} [fault reason ${String(fault_reason).padStart(2, '0')}] ${reason}`,
    );
  } else {
    const dev = since(5, 15)
      ? `${two(bus)}:${two(slot)}.${fn}`
      : `0x${two(bus)}:0x${two(slot)}.${fn}`;
    pr_err(
      `DMAR: [${type} NO_PASID] Request device [${dev}] fault addr 0x${hex(addr)} [fault reason 0x${two(fault_reason)}] ${reason}`,
    );
  }
}

/**
 * The IOMMU's translation for one DMA access (model hardware): the IOTLB first, then the
 * page table, whose entry is then cached. No entry, or an entry without the needed
 * permission, is a fault.
 * Return: the entry, or the intel fault reason (5: write not allowed, 6: read not allowed).
 */
export function iommu_hw_translate(
  domain: iommu_domain,
  iova: number,
  write: boolean,
): { readonly pte: iommu_pte; readonly iotlb_hit: boolean } | { readonly fault_reason: number } {
  const reasonNo = write ? 5 : 6;
  if (domain.type === IOMMU_DOMAIN_BLOCKED) return { fault_reason: reasonNo };
  if (domain.type === IOMMU_DOMAIN_IDENTITY) {
    return {
      pte: { pfn: Math.floor(iova / SZ_4K), prot: IOMMU_READ | IOMMU_WRITE, gen: -1 },
      iotlb_hit: false,
    };
  }
  const v = Math.floor(iova / SZ_4K);
  let pte = domain.iotlb.get(v);
  const hit = pte !== undefined;
  if (!pte) {
    pte = domain.pt.get(v);
    if (!pte) return { fault_reason: reasonNo };
    domain.iotlb.set(v, pte);
  }
  if (!(pte.prot & (write ? IOMMU_WRITE : IOMMU_READ))) return { fault_reason: reasonNo };
  return { pte, iotlb_hit: hit };
}

/** iommu_subsys_init's messages, printed when the first device is added. */
export function iommu_subsys_init_log(): void {
  const strict = st().iommu_dma_strict;
  pr_info('iommu: Default domain type: Translated ');
  pr_info(`iommu: DMA domain TLB invalidation policy: ${strict ? 'strict' : 'lazy'} mode `);
}
