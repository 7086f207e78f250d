/**
 * pfngpu: a model-only GPU driver on TTM, in the shape of amdgpu/radeon (not a kernel
 * file). A PCI driver binds a function whose BAR 0 is its VRAM: BOs live in VRAM (pfns
 * inside the BAR, no struct page) or in system memory (a ttm_tt of pages from the TTM pool:
 * the page allocator, or the device's CMA area with use_dma_alloc). User space opens the
 * device (drm_open_fd), creates BOs, asks for their fake mmap offset and mmaps the DRM fd
 * there (drm_gem_mmap -> drm_gem_ttm_mmap -> ttm_bo_mmap_obj); faults go through
 * ttm_bo_vm_fault. Moves (GEM_MOVE) and evictions (EVICT_VRAM) run ttm_bo_validate /
 * ttm_bo_evict under the BO's reservation: ttm_bo_unmap_virtual, dma_buf_move_notify,
 * CPU copy, old placement freed at once. PRIME_HANDLE_TO_FD exports a dma-buf
 * (pfngpu_dma_buf.ts).
 *
 * Owners (pfnsan): the BAR frames belong to the bound driver; a VRAM range allocated to a
 * BO becomes {kind:'driver', desc:'pfngpu BO <n> (VRAM)'} and goes back to the BAR owner
 * when freed; system pages of a BO become 'pfngpu BO <n> (system)' when populated and go
 * back to the allocator (or the pool) when the tt is unpopulated.
 *
 * The VRAM manager (as amdgpu_vram_mgr / ttm_range_manager over drm_mm): the lowest free
 * range that fits, so a freed range is what the next VRAM BO gets.
 *
 * Model differences from amdgpu: no GTT domain (system placements are what importers and
 * the CPU map), so dma_buf_move_notify is sent on every move of an exported BO (amdgpu
 * skips moves out of TTM_PL_SYSTEM, which it never maps for importers); no copy engine.
 *
 * @kernel (model driver) after drivers/gpu/drm/amd/amdgpu/amdgpu_ttm.c:amdgpu_bo_move,
 *   amdgpu_evict_flags, amdgpu_ttm_io_mem_reserve, amdgpu_object.c:amdgpu_bo_pin,
 *   amdgpu_bo_move_notify, amdgpu_gem.c (all versions)
 */
import type { Op } from '../../../../../sched/index.js';
import type { file, file_operations, vm_area_struct } from '../../../../include/linux/mm_types.js';
import { EINVAL, ENOENT, ENOSPC, ENOTTY, IS_ERR } from '../../../../include/linux/errno.js';
import { WARN_ON_ONCE } from '../../../../kernel/panic.js';
import { pr_info } from '../../../../kernel/printk.js';
import { currentKernel } from '../../../../kernel/kernel.js';
import { since } from '../../../../version.js';
import { pfnsan_set_owner } from '../../../../mm/pfnsan/pfnsan.js';
import { O_RDWR } from '../../../../fs/inode.js';
import { pci_enable_device_mem, pci_set_master, type pci_dev } from '../../../pci/pci.js';
import {
  pci_bar_owner_desc,
  pci_register_driver,
  type pci_device_id,
  type pci_driver,
} from '../../../pci/pci-driver.js';
import { dma_buf_fd, dma_buf_move_notify, get_dma_buf } from '../../../dma-buf/dma-buf.js';
import {
  drm_device,
  drm_gem_handle_create,
  drm_gem_handle_delete,
  drm_gem_mmap,
  drm_gem_object_lookup,
  drm_gem_object_put,
  drm_gem_private_object_init,
  type drm_gem_object,
  type drm_gem_object_funcs,
} from '../drm_gem.js';
import { drm_file, drm_open_fd, drm_release } from '../drm_file.js';
import { drm_vma_node_offset_addr } from '../drm_vma_manager.js';
import { drm_gem_ttm_mmap, drm_gem_ttm_set_container } from '../drm_gem_ttm_helper.js';
import {
  ttm_bo_init_validate,
  ttm_bo_pin,
  ttm_bo_put,
  ttm_bo_release,
  ttm_bo_reserve,
  ttm_bo_unpin,
  ttm_bo_unreserve,
  ttm_bo_validate,
  ttm_buffer_object,
  ttm_bo_type_device,
  ttm_ctx,
  ttm_resource_manager_evict_all,
  type ttm_operation_ctx,
} from '../ttm/ttm_bo.js';
import { ttm_bo_vm_ops } from '../ttm/ttm_bo_vm.js';
import { ttm_bo_move_memcpy, ttm_bo_move_null } from '../ttm/ttm_bo_util.js';
import { ttm_device, ttm_device_init, ttm_set_driver_manager } from '../ttm/ttm_device.js';
import { ttm_pool_alloc, ttm_pool_free } from '../ttm/ttm_pool.js';
import {
  TTM_PL_SYSTEM,
  TTM_PL_VRAM,
  ttm_resource_fini,
  ttm_resource_init,
  ttm_resource_manager,
  ttm_resource_manager_set_used,
  type ttm_place,
  type ttm_placement,
  type ttm_resource,
} from '../ttm/ttm_resource.js';
import { ttm_cached, ttm_tt_init, type ttm_tt } from '../ttm/ttm_tt.js';
import { pfngpu_gem_prime_export } from './pfngpu_dma_buf.js';

/* ---- uapi (model) ------------------------------------------------------------------ */

/** GEM domains (as AMDGPU_GEM_DOMAIN_CPU / _VRAM). */
export const PFNGPU_GEM_DOMAIN_SYSTEM = 0x1;
export const PFNGPU_GEM_DOMAIN_VRAM = 0x4;

/** ioctl numbers of the model uapi. */
export const PFNGPU_IOCTL_GEM_CREATE = 0x6440;
export const PFNGPU_IOCTL_GEM_MMAP = 0x6441;
export const PFNGPU_IOCTL_GEM_MOVE = 0x6442;
export const PFNGPU_IOCTL_EVICT_VRAM = 0x6443;
export const PFNGPU_IOCTL_GEM_CLOSE = 0x6444;
export const PFNGPU_IOCTL_PRIME_HANDLE_TO_FD = 0x6445;

/** GEM_CREATE: in size (bytes) and domain; out handle. */
export interface pfngpu_gem_create {
  size: number;
  domain: number;
  handle?: number;
}
/** GEM_MMAP: in handle; out offset (the mmap offset). */
export interface pfngpu_gem_mmap {
  handle: number;
  offset?: number;
}
/** GEM_MOVE: in handle and target domain. */
export interface pfngpu_gem_move {
  handle: number;
  domain: number;
}
/** GEM_CLOSE: in handle. */
export interface pfngpu_gem_close {
  handle: number;
}
/** PRIME_HANDLE_TO_FD: in handle, flags; out fd. */
export interface pfngpu_prime_handle {
  handle: number;
  flags: number;
  fd?: number;
}

export const PFNGPU_VENDOR = 0x1234;
export const PFNGPU_DEVICE = 0x1111;

/* ---- device ------------------------------------------------------------------------ */

/** The driver's per-device state (pdev->driver_data). */
export class pfngpu_device {
  readonly ddev: drm_device;
  readonly bdev: ttm_device;
  /** Physical address of BAR 0 (the VRAM aperture, gmc.aper_base). */
  readonly aper_base: number;
  readonly vram_pages: number;
  constructor(
    readonly pdev: pci_dev,
    use_dma_alloc: boolean,
  ) {
    const bar = pdev.resource[0]!;
    this.aper_base = bar.start;
    this.vram_pages = (bar.end + 1 - bar.start) / 4096;
    this.ddev = new drm_device({ name: 'pfngpu' }, pdev);
    this.bdev = ttm_device_init(
      'pfngpu',
      pfngpu_bo_driver,
      pdev,
      this.ddev.anon_inode.i_mapping,
      this.ddev.vma_offset_manager,
      use_dma_alloc,
    );
    this.bdev.priv = this;
  }
}

/** The pfngpu BO wrapper of a TTM BO (struct amdgpu_bo). */
export interface pfngpu_bo {
  readonly id: number;
  readonly tbo: ttm_buffer_object;
  /** Preferred domains at creation. */
  readonly preferred_domains: number;
}

export function pfngpu_bo_of(bo: ttm_buffer_object): pfngpu_bo {
  return bo.priv as pfngpu_bo;
}

function adev_of(bo: ttm_buffer_object): pfngpu_device {
  return bo.bdev.priv as pfngpu_device;
}

/* ---- VRAM manager ------------------------------------------------------------------ */

/** The lowest free range of `pages` in the manager, or -ENOSPC. */
function vram_mgr_alloc(
  man: ttm_resource_manager,
  bo: ttm_buffer_object,
  place: ttm_place,
): ttm_resource | number {
  const pages = Math.ceil(bo.base.size / 4096);
  const used = vram_ranges.get(man)!;
  let cur = 0;
  for (const [s, n] of used) {
    if (s - cur >= pages) break;
    cur = s + n;
  }
  if (cur + pages > man.size) return -ENOSPC;
  used.push([cur, pages]);
  used.sort((a, b) => a[0] - b[0]);
  const res = ttm_resource_init(bo, place, cur);
  const adev = adev_of(bo);
  pfnsan_set_owner(adev.aper_base / 4096 + cur, pages, {
    kind: 'driver',
    desc: `pfngpu BO ${pfngpu_bo_of(bo).id} (VRAM)`,
  });
  return res;
}

function vram_mgr_free(man: ttm_resource_manager, res: ttm_resource): void {
  const used = vram_ranges.get(man)!;
  const i = used.findIndex(([s]) => s === res.start);
  if (i >= 0) used.splice(i, 1);
  const bo = res.bo!;
  const adev = adev_of(bo);
  pfnsan_set_owner(adev.aper_base / 4096 + res.start, Math.ceil(res.size / 4096), {
    kind: 'bar',
    desc: pci_bar_owner_desc(adev.pdev, 0),
  });
  ttm_resource_fini(man, res);
}

const vram_ranges = new WeakMap<ttm_resource_manager, [number, number][]>();

/** pfngpu_vram_mgr_init(adev): the TTM_PL_VRAM manager over the whole BAR. */
function pfngpu_vram_mgr_init(adev: pfngpu_device): void {
  const man = new ttm_resource_manager('vram', false, adev.vram_pages, {
    alloc: vram_mgr_alloc,
    free: vram_mgr_free,
  });
  vram_ranges.set(man, []);
  ttm_resource_manager_set_used(man, true);
  ttm_set_driver_manager(adev.bdev, TTM_PL_VRAM, man);
}

/** Model inspection: the VRAM ranges in use ([start page, pages]). */
export function pfngpu_vram_ranges(adev: pfngpu_device): readonly (readonly [number, number])[] {
  return vram_ranges.get(adev.bdev.man_drv[TTM_PL_VRAM]!)!;
}

/* ---- TTM driver callbacks ---------------------------------------------------------- */

/** pfngpu_bo_placement_from_domain: VRAM before system, as amdgpu orders them. */
export function pfngpu_bo_placement_from_domain(domain: number): ttm_placement {
  const placement: ttm_place[] = [];
  if (domain & PFNGPU_GEM_DOMAIN_VRAM)
    placement.push({ fpfn: 0, lpfn: 0, mem_type: TTM_PL_VRAM, flags: 0 });
  if (domain & PFNGPU_GEM_DOMAIN_SYSTEM)
    placement.push({ fpfn: 0, lpfn: 0, mem_type: TTM_PL_SYSTEM, flags: 0 });
  return { num_placement: placement.length, placement };
}

/**
 * pfngpu_bo_move_notify(bo, evict, new_mem): an exported BO tells its dynamic importers
 * (under the reservation) before the backing store moves.
 */
function* pfngpu_bo_move_notify(bo: ttm_buffer_object): Op<void> {
  if (bo.base.dma_buf && !bo.base.import_attach && bo.resource)
    yield* dma_buf_move_notify(bo.base.dma_buf);
}

/**
 * pfngpu_bo_move (amdgpu_bo_move): before v6.3 a pinned BO is refused here
 * (WARN_ON_ONCE, -EINVAL; TTM checks it itself from v6.3); a BO without backing store is
 * just assigned; else move_notify and the CPU copy (ttm_bo_move_memcpy).
 */
function* pfngpu_bo_move(
  bo: ttm_buffer_object,
  evict: boolean,
  ctx: ttm_operation_ctx,
  new_mem: ttm_resource,
): Op<number> {
  void evict;
  /* Can't move a pinned BO */
  if (!since(6, 3) && WARN_ON_ONCE(bo.pin_count > 0, 'amdgpu_bo_move: pinned')) return -EINVAL;
  const old_mem = bo.resource;
  if (!old_mem || (old_mem.mem_type === TTM_PL_SYSTEM && bo.ttm === null)) {
    yield* pfngpu_bo_move_notify(bo);
    ttm_bo_move_null(bo, new_mem);
    return 0;
  }
  if (old_mem.mem_type === TTM_PL_SYSTEM && new_mem.mem_type === TTM_PL_SYSTEM) {
    ttm_bo_move_null(bo, new_mem);
    return 0;
  }
  yield* pfngpu_bo_move_notify(bo);
  return yield* ttm_bo_move_memcpy(bo, ctx, new_mem);
}

function* pfngpu_ttm_tt_populate(
  bdev: ttm_device,
  ttm: ttm_tt,
  ctx: ttm_operation_ctx,
): Op<number> {
  const ret = yield* ttm_pool_alloc(bdev.pool, ttm, ctx);
  if (ret) return ret;
  const id = tt_owner.get(ttm);
  for (const p of ttm.pages) {
    if (p !== null) pfnsan_set_owner(p, 1, { kind: 'driver', desc: `pfngpu BO ${id} (system)` });
  }
  return 0;
}

const tt_owner = new WeakMap<ttm_tt, number>();

/** struct ttm_device_funcs of pfngpu (amdgpu_bo_driver). */
export const pfngpu_bo_driver = {
  ttm_tt_create(bo: ttm_buffer_object, page_flags: number): ttm_tt {
    const tt = ttm_tt_init(bo, page_flags, ttm_cached);
    tt_owner.set(tt, pfngpu_bo_of(bo).id);
    return tt;
  },
  ttm_tt_populate: pfngpu_ttm_tt_populate,
  ttm_tt_unpopulate(bdev: ttm_device, ttm: ttm_tt): void {
    ttm_pool_free(bdev.pool, ttm);
  },
  eviction_valuable(): boolean {
    return true;
  },
  /** amdgpu_evict_flags: VRAM BOs go to system memory (GTT in amdgpu). */
  evict_flags(_bo: ttm_buffer_object, placement: ttm_placement): void {
    const p = pfngpu_bo_placement_from_domain(PFNGPU_GEM_DOMAIN_SYSTEM);
    placement.num_placement = p.num_placement;
    placement.placement = p.placement;
  },
  move: pfngpu_bo_move,
  /** amdgpu_ttm_io_mem_reserve: VRAM is the BAR at aper_base + start pages. */
  io_mem_reserve(bdev: ttm_device, mem: ttm_resource): number {
    if (mem.mem_type === TTM_PL_SYSTEM) return 0;
    if (mem.mem_type !== TTM_PL_VRAM) return -EINVAL;
    mem.bus.offset = (bdev.priv as pfngpu_device).aper_base + mem.start * 4096;
    mem.bus.is_iomem = true;
    return 0;
  },
};

/* ---- GEM objects ------------------------------------------------------------------- */

const pfngpu_gem_funcs: drm_gem_object_funcs = {
  free(obj: drm_gem_object): void {
    ttm_bo_release(bo_of_gem.get(obj)!);
  },
  mmap: drm_gem_ttm_mmap,
  export: (obj, flags) => pfngpu_gem_prime_export(obj, flags),
  vm_ops: ttm_bo_vm_ops,
};

const bo_of_gem = new WeakMap<drm_gem_object, ttm_buffer_object>();

/** The TTM BO of a GEM object of pfngpu. */
export function pfngpu_ttm_bo(obj: drm_gem_object): ttm_buffer_object {
  return bo_of_gem.get(obj)!;
}

/**
 * pfngpu_bo_create (amdgpu_bo_create): a GEM object with a TTM BO, validated into
 * `domain`. Return: the BO or -errno.
 */
export function* pfngpu_bo_create(
  adev: pfngpu_device,
  size: number,
  domain: number,
): Op<pfngpu_bo | number> {
  if (size <= 0 || !(domain & (PFNGPU_GEM_DOMAIN_SYSTEM | PFNGPU_GEM_DOMAIN_VRAM))) return -EINVAL;
  size = Math.ceil(size / 4096) * 4096;
  const id = nextBoId(adev);
  const gem = drm_gem_private_object_init(adev.ddev, size, `pfngpu BO ${id}`);
  gem.funcs = pfngpu_gem_funcs;
  const tbo = new ttm_buffer_object(gem, adev.bdev, ttm_bo_type_device);
  const bo: pfngpu_bo = { id, tbo, preferred_domains: domain };
  tbo.priv = bo;
  bo_of_gem.set(gem, tbo);
  drm_gem_ttm_set_container(gem, tbo);
  const ret = yield* ttm_bo_init_validate(tbo, pfngpu_bo_placement_from_domain(domain), true);
  if (ret) return ret;
  return bo;
}

const bo_ids = new WeakMap<pfngpu_device, number>();
function nextBoId(adev: pfngpu_device): number {
  const n = (bo_ids.get(adev) ?? 0) + 1;
  bo_ids.set(adev, n);
  return n;
}

/**
 * pfngpu_bo_pin (amdgpu_bo_pin): validate into `domain` unless already pinned, then
 * ttm_bo_pin. Locking: reservation held. Return: 0 or -errno.
 */
export function* pfngpu_bo_pin(bo: ttm_buffer_object, domain: number): Op<number> {
  if (!bo.pin_count) {
    const ret = yield* ttm_bo_validate(bo, pfngpu_bo_placement_from_domain(domain), ttm_ctx(false));
    if (ret) return ret;
  }
  ttm_bo_pin(bo);
  return 0;
}

/** pfngpu_bo_unpin (amdgpu_bo_unpin). Locking: reservation held. */
export function pfngpu_bo_unpin(bo: ttm_buffer_object): void {
  ttm_bo_unpin(bo);
}

/* ---- ioctls and fops --------------------------------------------------------------- */

function priv_of(f: file): drm_file {
  return f.private_data as drm_file;
}

/**
 * drm_gem_prime_handle_to_fd (drivers/gpu/drm/drm_prime.c): the object's dma-buf (exported
 * once, kept in obj->dma_buf) in a new descriptor. Return: 0 (args.fd set) or -errno.
 */
function* drm_gem_prime_handle_to_fd(fp: drm_file, args: pfngpu_prime_handle): Op<number> {
  const obj = drm_gem_object_lookup(fp, args.handle);
  if (!obj) return -ENOENT;
  let dmabuf = obj.dma_buf;
  if (dmabuf) {
    get_dma_buf(dmabuf);
  } else {
    const r = obj.funcs!.export!(obj, args.flags);
    if (IS_ERR(r)) {
      drm_gem_object_put(obj);
      return r;
    }
    dmabuf = r as Exclude<typeof r, number>;
    obj.dma_buf = dmabuf;
  }
  const fd = yield* dma_buf_fd(dmabuf, args.flags);
  drm_gem_object_put(obj);
  if (fd < 0) return fd;
  args.fd = fd;
  return 0;
}

/**
 * pfngpu_ioctl: GEM_CREATE (handle), GEM_MMAP (fake offset), GEM_MOVE (reserve, validate
 * into the domain, unreserve), EVICT_VRAM (ttm_resource_manager_evict_all), GEM_CLOSE,
 * PRIME_HANDLE_TO_FD. Return: 0 or -errno; -ENOTTY for an unknown command.
 */
export function* pfngpu_ioctl(f: file, cmd: number, arg: unknown): Op<number> {
  const fp = priv_of(f);
  const adev = (fp.minor_dev.dev as pci_dev).driver_data as pfngpu_device;
  switch (cmd) {
    case PFNGPU_IOCTL_GEM_CREATE: {
      const a = arg as pfngpu_gem_create;
      const bo = yield* pfngpu_bo_create(adev, a.size, a.domain);
      if (typeof bo === 'number') return bo;
      a.handle = drm_gem_handle_create(fp, bo.tbo.base);
      /* drop reference from allocate - handle holds it now */
      ttm_bo_put(bo.tbo);
      return 0;
    }
    case PFNGPU_IOCTL_GEM_MMAP: {
      const a = arg as pfngpu_gem_mmap;
      const obj = drm_gem_object_lookup(fp, a.handle);
      if (!obj) return -ENOENT;
      a.offset = drm_vma_node_offset_addr(obj.vma_node);
      drm_gem_object_put(obj);
      return 0;
    }
    case PFNGPU_IOCTL_GEM_MOVE: {
      const a = arg as pfngpu_gem_move;
      const obj = drm_gem_object_lookup(fp, a.handle);
      if (!obj) return -ENOENT;
      const bo = pfngpu_ttm_bo(obj);
      let ret = yield* ttm_bo_reserve(bo, true, false);
      if (!ret) {
        ret = yield* ttm_bo_validate(bo, pfngpu_bo_placement_from_domain(a.domain), ttm_ctx());
        yield* ttm_bo_unreserve(bo);
      }
      drm_gem_object_put(obj);
      return ret;
    }
    case PFNGPU_IOCTL_EVICT_VRAM:
      return yield* ttm_resource_manager_evict_all(adev.bdev, adev.bdev.man_drv[TTM_PL_VRAM]!);
    case PFNGPU_IOCTL_GEM_CLOSE:
      return drm_gem_handle_delete(fp, (arg as pfngpu_gem_close).handle);
    case PFNGPU_IOCTL_PRIME_HANDLE_TO_FD:
      return yield* drm_gem_prime_handle_to_fd(fp, arg as pfngpu_prime_handle);
    default:
      return -ENOTTY;
  }
}

/** pfngpu's file_operations (amdgpu_driver_kms_fops: drm_gem_mmap via amdgpu_mmap). */
export const pfngpu_fops: file_operations = {
  name: 'pfngpu_fops',
  mmap: (f: file, vma: vm_area_struct) => drm_gem_mmap(f, vma),
  unlocked_ioctl: pfngpu_ioctl,
  release: drm_release,
};

/* ---- PCI driver -------------------------------------------------------------------- */

/** Model options of the driver in this kernel (module parameters). */
function pfngpu_options(): { use_dma_alloc: boolean } {
  const k = currentKernel();
  return ((k.sub.pfngpu_options as { use_dma_alloc: boolean } | undefined) ??= {
    use_dma_alloc: false,
  });
}

/**
 * pfngpu_pci_probe: enables memory decoding and bus mastering, sets the device up (DRM,
 * TTM, VRAM manager over BAR 0). Return: 0 or -errno (-ENODEV without a BAR 0).
 */
function* pfngpu_pci_probe(pdev: pci_dev, _id: pci_device_id): Op<number> {
  if (!pdev.resource[0]) return -EINVAL;
  const ret = yield* pci_enable_device_mem(pdev);
  if (ret) return ret;
  yield* pci_set_master(pdev);
  const adev = new pfngpu_device(pdev, pfngpu_options().use_dma_alloc);
  pfngpu_vram_mgr_init(adev);
  pdev.driver_data = adev;
  pr_info(
    `pfngpu ${pdev.name}: ${adev.vram_pages * 4} KiB VRAM at 0x${adev.aper_base.toString(16)}`,
  );
  return 0;
}

export const pfngpu_pci_driver: pci_driver = {
  name: 'pfngpu',
  id_table: [{ vendor: PFNGPU_VENDOR, device: PFNGPU_DEVICE }],
  probe: pfngpu_pci_probe,
};

/** Registers the driver (binds matching functions). Return: 0 or -errno. */
export function pfngpu_init(opts: { use_dma_alloc?: boolean } = {}): Op<number> {
  pfngpu_options().use_dma_alloc = opts.use_dma_alloc ?? false;
  return pci_register_driver(pfngpu_pci_driver);
}

/** open("/dev/dri/card0", O_RDWR) of the device by current. Return: fd or -errno. */
export function pfngpu_open(adev: pfngpu_device, flags = O_RDWR): Op<number> {
  return drm_open_fd(adev.ddev, pfngpu_fops, flags);
}
