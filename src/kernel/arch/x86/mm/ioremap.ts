/**
 * ioremap on x86: kernel mappings of physical ranges (MMIO, firmware-reserved memory)
 * with a cache mode reserved through PAT, and the I/O accessors that read and write
 * through them.
 *
 * A `void __iomem *` is a number: a model kernel virtual address in the ioremap area
 * (IOREMAP_START, without the 0xffff sign extension so it stays exact). Each mapping is
 * a vm_struct-like area { addr, size, phys_addr }, one guard page apart. memcpy_fromio /
 * memcpy_toio translate an address inside a live area to its physical address and use
 * the machine's bytes (phys_read / phys_write); an address in no live area oopses, as a
 * kernel access after iounmap() would.
 *
 * Left out: mmiotrace, iomem_map_sanity_check ("mapping multiple BARs"), encrypted
 * mappings (SME/TDX), the identity-map cache-attribute sync, vmap page tables (the area
 * is bookkeeping only), and huge ioremap mappings.
 *
 * @kernel arch/x86/mm/ioremap.c (all versions), include/asm-generic/io.h:memcpy_fromio,
 *   memcpy_toio
 */
import { currentKernel } from '../../../kernel/kernel.js';
import { dump_stack, page_fault_oops, WARN_ON_ONCE, WARN_ONCE } from '../../../kernel/panic.js';
import { printk, KERN_ERR, KERN_WARNING } from '../../../kernel/printk.js';
import { PageReserved } from '../../../include/linux/page-flags.js';
import type { page } from '../../../include/linux/mm_types.js';
import { PAGE_SIZE, type pgprot_t } from '../include/asm/pgtable_types.js';
import { phys_read, phys_write, pfn_valid } from '../../../mm/sparse.js';
import {
  pfnsan_access,
  pfnsan_enabled,
  pfnsan_gen,
  pfnsan_use,
} from '../../../mm/pfnsan/pfnsan.js';
import {
  e820_walk_system_ram_range,
  is_new_memtype_allowed,
  memtype_free,
  memtype_reserve,
  pgprot2cachemode,
  X86_CACHE_BITS,
  type page_cache_mode,
} from './pat/memtype.js';

/** Start of the model's ioremap (vmalloc) area: 0xffffc90000000000 without 0xffff. */
export const IOREMAP_START = 0xc90000000000;

/** struct vm_struct of an ioremap area. */
export interface ioremap_area {
  readonly addr: number;
  readonly size: number;
  readonly phys_addr: number;
  readonly pcm: page_cache_mode;
}

interface ioremap_state {
  next: number;
  readonly areas: Map<number, ioremap_area>;
}

function state(): ioremap_state {
  const k = currentKernel();
  let st = k.sub.ioremap as ioremap_state | undefined;
  if (!st) {
    st = { next: IOREMAP_START, areas: new Map() };
    k.sub.ioremap = st;
  }
  return st;
}

/** The live ioremap areas (for tests and the sanitizer). */
export function ioremap_areas(): readonly ioremap_area[] {
  return [...state().areas.values()];
}

/**
 * The IORES_MAP_SYSTEM_RAM check of __ioremap_check_mem: a System RAM range with a
 * page that has a struct page and is not PageReserved may not be ioremapped.
 * @kernel arch/x86/mm/ioremap.c:__ioremap_check_ram (all versions)
 */
function ioremap_hits_system_ram(phys_addr: number, size: number): boolean {
  let hit = false;
  const first = Math.floor(phys_addr / PAGE_SIZE);
  const last = Math.floor((phys_addr + size - 1) / PAGE_SIZE);
  e820_walk_system_ram_range(first, last - first + 1, (pfn, nr) => {
    for (let p = pfn; p < pfn + nr; p++) {
      if (pfn_valid(p) && !PageReserved(p as page)) {
        hit = true;
        return 1;
      }
    }
    return 0;
  });
  return hit;
}

/**
 * __ioremap_caller(phys_addr, size, pcm): maps [phys_addr, phys_addr + size) with cache
 * mode pcm: refuses a zero or wrapping size, an address beyond the CPU's physical
 * address bits ("ioremap: invalid physical address", WARN_ON_ONCE) and usable System
 * RAM (WARN_ONCE "ioremap on RAM at ..."); reserves the memtype ("ioremap
 * memtype_reserve failed", or "ioremap error for ..." when the type it got is not
 * allowed).
 * @kernel arch/x86/mm/ioremap.c:__ioremap_caller (all versions)
 * Locking: none held; memtype_lock inside (atomic in the model).
 * Return: the __iomem address (phys_addr's offset in its page preserved), or null.
 */
function __ioremap_caller(phys_addr: number, size: number, pcm: page_cache_mode): number | null {
  const last_addr = phys_addr + size - 1;
  if (!size || last_addr < phys_addr) return null;
  if (phys_addr >= 2 ** X86_CACHE_BITS) {
    printk(KERN_WARNING, `ioremap: invalid physical address ${phys_addr.toString(16)}`);
    WARN_ON_ONCE(true, 'arch/x86/mm/ioremap.c:__ioremap_caller');
    return null;
  }
  /* Don't allow anybody to remap normal RAM that we're using.. */
  if (ioremap_hits_system_ram(phys_addr, size)) {
    WARN_ONCE(
      true,
      `ioremap on RAM at 0x${phys_addr.toString(16).padStart(16, '0')} - 0x${last_addr.toString(16).padStart(16, '0')}`,
      'arch/x86/mm/ioremap.c:__ioremap_caller:ram',
    );
    return null;
  }
  /* Mappings have to be page-aligned */
  const offset = phys_addr % PAGE_SIZE;
  const aligned = phys_addr - offset;
  const aligned_size = Math.ceil((last_addr + 1) / PAGE_SIZE) * PAGE_SIZE - aligned;

  const new_pcm = { pcm };
  const retval = memtype_reserve(aligned, aligned + aligned_size, pcm, new_pcm);
  if (retval) {
    printk(KERN_ERR, `ioremap memtype_reserve failed ${retval}`);
    return null;
  }
  if (pcm !== new_pcm.pcm) {
    if (!is_new_memtype_allowed(aligned, aligned_size, pcm, new_pcm.pcm)) {
      printk(
        KERN_ERR,
        `ioremap error for 0x${aligned.toString(16)}-0x${(aligned + aligned_size).toString(16)}, requested 0x${pcm.toString(16)}, got 0x${new_pcm.pcm.toString(16)}`,
      );
      memtype_free(aligned, aligned + aligned_size);
      return null;
    }
    pcm = new_pcm.pcm;
  }
  const st = state();
  const area: ioremap_area = { addr: st.next, size: aligned_size, phys_addr: aligned, pcm };
  st.next += aligned_size + PAGE_SIZE; /* guard page */
  st.areas.set(area.addr, area);
  pfnsan_record_area(area);
  return area.addr + offset;
}

/**
 * ioremap_prot(phys_addr, size, prot): maps with the cache mode of a PTE protection
 * (generic_access_phys passes the user PTE's protection).
 * @kernel arch/x86/mm/ioremap.c:ioremap_prot (all versions; pgprot_t argument v6.15+,
 *   unsigned long before, same value)
 * Locking: none held.
 * Return: the __iomem address, or null.
 */
export function ioremap_prot(phys_addr: number, size: number, prot: pgprot_t): number | null {
  if (size > 0)
    pfnsan_use(Math.floor(phys_addr / PAGE_SIZE), area_pages(phys_addr, size), 'ioremap_prot');
  return __ioremap_caller(phys_addr, size, pgprot2cachemode(prot));
}

/** Frames covered by [phys_addr, phys_addr + size). */
function area_pages(phys_addr: number, size: number): number {
  return Math.ceil(((phys_addr % PAGE_SIZE) + size) / PAGE_SIZE);
}

/**
 * pfnsan (model only): the generation of each frame an ioremap area maps, recorded when
 * the area is made (frames at generation 0 are left out), so an access through the area
 * after the frame changed owner is reported.
 */
const areaGens = new WeakMap<ioremap_area, Map<number, number>>();

function pfnsan_record_area(area: ioremap_area): void {
  if (!pfnsan_enabled()) return;
  const gens = new Map<number, number>();
  const first = area.phys_addr / PAGE_SIZE;
  for (let p = first; p < first + area.size / PAGE_SIZE; p++) {
    const g = pfnsan_gen(p);
    if (g) gens.set(p, g);
  }
  areaGens.set(area, gens);
}

function pfnsan_check_iomem(addr: number, pa: number, len: number, how: 'read' | 'write'): void {
  const a = find_vm_area(addr);
  const gens = a && areaGens.get(a);
  if (!gens) return;
  const first = Math.floor(pa / PAGE_SIZE);
  const last = Math.floor((pa + len - 1) / PAGE_SIZE);
  for (let p = first; p <= last; p++) {
    pfnsan_access(p, gens.get(p) ?? 0, how, `ioremap area 0x${a.addr.toString(16)}`);
  }
}

/** The live area containing addr, if any. */
function find_vm_area(addr: number): ioremap_area | undefined {
  for (const a of state().areas.values()) if (addr >= a.addr && addr < a.addr + a.size) return a;
  return undefined;
}

/**
 * iounmap(addr): removes the area addr belongs to and frees its memtype reservation.
 * An address that is no live area prints "iounmap: bad address" and a stack.
 * @kernel arch/x86/mm/ioremap.c:iounmap (all versions)
 * Locking: none held.
 */
export function iounmap(addr: number): void {
  const p = find_vm_area(addr - (addr % PAGE_SIZE));
  if (!p) {
    printk(KERN_ERR, `iounmap: bad address ${addr.toString(16)}`);
    dump_stack();
    return;
  }
  memtype_free(p.phys_addr, p.phys_addr + p.size);
  state().areas.delete(p.addr);
}

/** The physical address behind [addr, addr + len) of one live area, or an oops. */
function iomem_phys(addr: number, len: number, write: boolean): number {
  const a = find_vm_area(addr);
  if (!a || addr + len > a.addr + a.size) {
    page_fault_oops(
      `ffff${addr.toString(16).padStart(12, '0')}`,
      write,
      `__iomem access to ${addr.toString(16)} outside any live ioremap area`,
    );
  }
  return a.phys_addr + (addr - a.addr);
}

/**
 * memcpy_fromio(dst, src, count): reads device (or reserved) memory through an ioremap.
 * @kernel include/asm-generic/io.h:memcpy_fromio (all versions; x86 __memcpy_fromio)
 * Locking: none.
 */
export function memcpy_fromio(dst: Uint8Array, src: number, count: number, dst_off = 0): void {
  const pa = iomem_phys(src, count, false);
  pfnsan_check_iomem(src, pa, count, 'read');
  dst.set(phys_read(pa, count), dst_off);
}

/**
 * memcpy_toio(dst, src, count): writes through an ioremap.
 * @kernel include/asm-generic/io.h:memcpy_toio (all versions; x86 __memcpy_toio)
 * Locking: none.
 */
export function memcpy_toio(dst: number, src: Uint8Array, count: number, src_off = 0): void {
  const pa = iomem_phys(dst, count, true);
  pfnsan_check_iomem(dst, pa, count, 'write');
  phys_write(pa, src.subarray(src_off, src_off + count));
}
