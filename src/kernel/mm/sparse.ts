/**
 * The memmap (SPARSEMEM): per-frame struct page state in typed arrays, allocated lazily
 * per subsection (2 MiB of frames, as SPARSEMEM_VMEMMAP populates the vmemmap), so a
 * machine with a terabyte of physical address space costs memory only for the
 * subsections whose frames are touched.
 *
 * A section covers 2^15 frames (SECTION_SIZE_BITS = 27, x86-64) and is split into 64
 * subsections of 2 MiB; `pfn_valid` is true for frames in a present subsection, as with
 * SPARSEMEM_VMEMMAP's subsection map (v5.3+). Frames in holes inside a present
 * subsection have a memmap and are PageReserved, as memmap_init marks them.
 *
 * @kernel mm/sparse.c, include/linux/mmzone.h:pfn_valid (all versions)
 */
import { currentKernel, type Kernel } from '../kernel/kernel.js';
import { page_fault_oops, vmemmap_addr } from '../kernel/panic.js';

export const SECTION_SIZE_BITS = 27;
export const PFN_SECTION_SHIFT = SECTION_SIZE_BITS - 12;
export const PAGES_PER_SECTION = 1 << PFN_SECTION_SHIFT;
export const SUBSECTION_SHIFT = 21;
export const PAGES_PER_SUBSECTION = 1 << (SUBSECTION_SHIFT - 12);
export const pageblock_order = 9;
export const pageblock_nr_pages = 1 << pageblock_order;

/** A range of the physical address map, as firmware (e820) and drivers describe it. */
export interface PhysRange {
  /** First byte. */
  readonly start: number;
  /** One past the last byte. */
  readonly end: number;
  /**
   * ram: usable memory with a memmap; reserved: firmware/kernel memory with a memmap,
   * PageReserved; mmio: device memory without struct page (BARs, /dev/mem windows).
   */
  readonly kind: 'ram' | 'reserved' | 'mmio';
  readonly name: string;
}

/** Bits of the per-frame flags word (PG_* and page types the model keeps). */
export const PG_locked = 1 << 0;
export const PG_referenced = 1 << 1;
export const PG_uptodate = 1 << 2;
export const PG_dirty = 1 << 3;
export const PG_lru = 1 << 4;
export const PG_head = 1 << 5;
export const PG_reserved = 1 << 6;
export const PG_writeback = 1 << 7;
export const PG_swapbacked = 1 << 8;
export const PG_mlocked = 1 << 9;
export const PG_anon_exclusive = 1 << 10;
/** PAGE_MAPPING_ANON: folio->mapping points to an anon_vma. */
export const PG_anon = 1 << 11;
/** PageBuddy page type: free in the allocator. */
export const PG_buddy = 1 << 12;
/** A tail page of a large folio (compound_head bit 0). */
export const PG_tail = 1 << 13;
/** PGTY_table: a page-table page. */
export const PG_table = 1 << 14;
/** A page owned by a kernel allocation that is not a folio (slab, kernel data). */
export const PG_kernel = 1 << 15;
/** The page has been migrated away and must not be used (model aid for reports). */
export const PG_isolated = 1 << 16;

/** enum migratetype */
export const MIGRATE_UNMOVABLE = 0;
export const MIGRATE_MOVABLE = 1;
export const MIGRATE_RECLAIMABLE = 2;
export const MIGRATE_CMA = 4;
export const MIGRATE_ISOLATE = 5;

/** Frames per memmap chunk: one subsection (also one pageblock). */
export const MEMMAP_CHUNK_PAGES = PAGES_PER_SUBSECTION;

/** A frame's index in its memmap chunk's arrays. */
export function memmap_slot(pfn: number): number {
  return pfn & (MEMMAP_CHUNK_PAGES - 1);
}

/** Per-frame arrays of one subsection (index them with {@link memmap_slot}). */
export class SubsectionArrays {
  readonly flags = new Uint32Array(MEMMAP_CHUNK_PAGES);
  readonly refcount = new Int32Array(MEMMAP_CHUNK_PAGES);
  /** Logical mapcount (the kernel stores _mapcount = mapcount - 1). */
  readonly mapcount = new Int32Array(MEMMAP_CHUNK_PAGES);
  /** Registry id of folio->mapping (address_space or anon_vma); 0 = NULL. */
  readonly mapping = new Int32Array(MEMMAP_CHUNK_PAGES);
  readonly index = new Float64Array(MEMMAP_CHUNK_PAGES);
  /** Order of the folio the frame belongs to (head and tails alike). */
  readonly order = new Uint8Array(MEMMAP_CHUNK_PAGES);
  /** The pageblock's migratetype (one pageblock per subsection). */
  readonly migratetype = new Uint8Array(Math.max(1, MEMMAP_CHUNK_PAGES >> pageblock_order));
}

export class mem_section {
  /** 64 subsections, 1 = has a memmap. */
  readonly subsection_map = new Uint8Array(64);
  /** The arrays of each subsection touched so far. */
  readonly arrays: (SubsectionArrays | undefined)[] = [];
  constructor(readonly nr: number) {}
}

/** State kept only for large folios (order > 0), keyed by head pfn. */
export interface LargeFolioInfo {
  _pincount: number;
  _entire_mapcount: number;
}

/** The memmap of one kernel instance. */
export class Memmap {
  readonly sections: (mem_section | undefined)[] = [];
  /** Ranges with a memmap (ram and reserved), sorted. */
  readonly memmapRanges: PhysRange[];
  readonly map: readonly PhysRange[];
  /** highest_memmap_pfn: the last pfn with a struct page (mm/memory.c, set by memmap_init). */
  readonly highest_memmap_pfn: number;
  readonly large = new Map<number, LargeFolioInfo>();
  /** Registry behind page->mapping: id -> address_space or anon_vma. */
  readonly mappings = new Map<number, unknown>();
  /**
   * Frame contents, for RAM and device memory alike: pfn -> 4096 bytes, allocated on the
   * first non-zero write; absent frames read as zeroes.
   */
  readonly contents = new Map<number, Uint8Array>();
  materialized = 0;
  /**
   * memblock.reserved inside RAM (the kernel image): these frames have a memmap but are
   * PageReserved with refcount 1 and never reach the allocator (reserve_bootmem_region).
   */
  readonly memblockReserved: readonly { start: number; end: number; name: string }[];

  constructor(
    map: readonly PhysRange[],
    memblockReserved: readonly { start: number; end: number; name: string }[] = [],
  ) {
    this.memblockReserved = memblockReserved;
    const sorted = [...map].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]!.start < sorted[i - 1]!.end) {
        throw new Error(
          `physical map: '${sorted[i]!.name}' overlaps '${sorted[i - 1]!.name}' at 0x${sorted[i]!.start.toString(16)}`,
        );
      }
    }
    for (const r of sorted) {
      if (r.start % 4096 !== 0 || r.end % 4096 !== 0 || r.end <= r.start) {
        throw new Error(`physical map: '${r.name}' must be page aligned and non-empty`);
      }
    }
    this.map = sorted;
    this.memmapRanges = sorted.filter((r) => r.kind !== 'mmio');
    let highest = -1;
    for (const r of this.memmapRanges) {
      const first = r.start / 4096;
      const last = r.end / 4096 - 1;
      highest = Math.max(highest, last);
      for (let s = first; s <= last; s += PAGES_PER_SUBSECTION - (s % PAGES_PER_SUBSECTION)) {
        const sec = this.section(Math.floor(s / PAGES_PER_SECTION), true)!;
        sec.subsection_map[Math.floor((s % PAGES_PER_SECTION) / PAGES_PER_SUBSECTION)] = 1;
      }
    }
    this.highest_memmap_pfn = highest;
  }

  section(nr: number, create = false): mem_section | undefined {
    let s = this.sections[nr];
    if (!s && create) {
      s = new mem_section(nr);
      this.sections[nr] = s;
    }
    return s;
  }

  /** The range of the map containing pfn, if any. */
  rangeOf(pfn: number): PhysRange | undefined {
    const a = pfn * 4096;
    let lo = 0;
    let hi = this.map.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.map[mid]!;
      if (a < r.start) hi = mid - 1;
      else if (a >= r.end) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  pfn_valid(pfn: number): boolean {
    if (pfn < 0 || !Number.isInteger(pfn)) return false;
    const s = this.sections[Math.floor(pfn / PAGES_PER_SECTION)];
    if (!s) return false;
    return s.subsection_map[Math.floor((pfn % PAGES_PER_SECTION) / PAGES_PER_SUBSECTION)] === 1;
  }

  /** The arrays for pfn's subsection, created and initialised on first write. */
  arraysFor(pfn: number): SubsectionArrays {
    const nr = Math.floor(pfn / PAGES_PER_SECTION);
    const s = this.sections[nr];
    if (!s || !this.pfn_valid(pfn)) {
      page_fault_oops(
        vmemmap_addr(pfn),
        true,
        `struct page of pfn 0x${pfn.toString(16)}, which has none`,
      );
    }
    const sub = Math.floor((pfn % PAGES_PER_SECTION) / MEMMAP_CHUNK_PAGES);
    const have = s.arrays[sub];
    if (have) return have;
    const a = new SubsectionArrays();
    const base = pfn - memmap_slot(pfn);
    // Everything is reserved (refcount 1) but the RAM ranges, which start free.
    a.flags.fill(PG_reserved);
    a.refcount.fill(1);
    for (const r of this.memmapRanges) {
      if (r.kind !== 'ram') continue;
      const lo = Math.max(r.start / 4096, base) - base;
      const hi = Math.min(r.end / 4096, base + MEMMAP_CHUNK_PAGES) - base;
      if (hi <= lo) continue;
      a.flags.fill(0, lo, hi);
      a.refcount.fill(0, lo, hi);
    }
    for (const r of this.memblockReserved) {
      const lo = Math.max(r.start / 4096, base) - base;
      const hi = Math.min(r.end / 4096, base + MEMMAP_CHUNK_PAGES) - base;
      if (hi <= lo) continue;
      a.flags.fill(PG_reserved, lo, hi);
      a.refcount.fill(1, lo, hi);
    }
    a.migratetype.fill(MIGRATE_MOVABLE);
    if (!s.arrays.some((x) => x)) this.materialized++;
    s.arrays[sub] = a;
    return a;
  }

  /**
   * Read-only view: the arrays if the subsection was touched, else null (pristine).
   * Reading the struct page of a pfn without one oopses, as the unpopulated vmemmap would.
   */
  peek(pfn: number): SubsectionArrays | null {
    if (!this.pfn_valid(pfn)) {
      page_fault_oops(
        vmemmap_addr(pfn),
        false,
        `struct page of pfn 0x${pfn.toString(16)}, which has none`,
      );
    }
    const s = this.sections[Math.floor(pfn / PAGES_PER_SECTION)]!;
    return s.arrays[Math.floor((pfn % PAGES_PER_SECTION) / MEMMAP_CHUNK_PAGES)] ?? null;
  }

  /** Pristine value of a frame's flags (before its section was touched). */
  pristineFlags(pfn: number): number {
    const r = this.rangeOf(pfn);
    if (!r || r.kind !== 'ram') return PG_reserved;
    const a = pfn * 4096;
    return this.memblockReserved.some((m) => a >= m.start && a < m.end) ? PG_reserved : 0;
  }
}

let cacheK: Kernel | null = null;
let cacheM: Memmap | null = null;

/** The memmap of the current kernel instance. */
export function memmap(): Memmap {
  const k = currentKernel();
  if (k === cacheK && cacheM) return cacheM;
  const m = k.sub.memmap as Memmap | undefined;
  if (!m) throw new Error('the kernel has no memory: boot it with a machine description');
  cacheK = k;
  cacheM = m;
  return m;
}

/**
 * pfn_valid(pfn): the frame has a struct page.
 * @kernel include/linux/mmzone.h:pfn_valid (SPARSEMEM, subsections v5.3+)
 * Locking: none (the model has no memory hotplug).
 * Return: true or false.
 */
export function pfn_valid(pfn: number): boolean {
  return memmap().pfn_valid(pfn);
}

/** highest_memmap_pfn (mm/internal.h), set at boot by memmap_init. */
export function highest_memmap_pfn(): number {
  return memmap().highest_memmap_pfn;
}

/**
 * Physical memory contents (what memcpy through any mapping of the frame sees). These
 * are the machine's bytes, not a kernel API: kernel code reaches them through the
 * modelled mappings (user PTEs, kmap, ioremap).
 */
export function phys_read(pa: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  const c = memmapContents();
  let done = 0;
  while (done < len) {
    const pfn = Math.floor((pa + done) / 4096);
    const off = (pa + done) % 4096;
    const n = Math.min(4096 - off, len - done);
    const frame = c.get(pfn);
    if (frame) out.set(frame.subarray(off, off + n), done);
    done += n;
  }
  return out;
}

export function phys_write(pa: number, data: Uint8Array): void {
  const c = memmapContents();
  let done = 0;
  while (done < data.length) {
    const pfn = Math.floor((pa + done) / 4096);
    const off = (pa + done) % 4096;
    const n = Math.min(4096 - off, data.length - done);
    let frame = c.get(pfn);
    const chunk = data.subarray(done, done + n);
    if (!frame) {
      if (chunk.every((b) => b === 0)) {
        done += n;
        continue;
      }
      frame = new Uint8Array(4096);
      c.set(pfn, frame);
    }
    frame.set(chunk, off);
    done += n;
  }
}

/** copy_page(dst, src) at the frame level (copy_highpage). */
export function phys_copy_frame(dst: number, src: number): void {
  const c = memmapContents();
  const s = c.get(src);
  if (s) c.set(dst, s.slice());
  else c.delete(dst);
}

/** clear_page(pfn) (clear_highpage). */
export function phys_clear_frame(pfn: number): void {
  memmapContents().delete(pfn);
}

/** Reads a little-endian 64-bit word as a number (exact below 2^53). */
export function phys_read_u64(pa: number): number {
  const b = phys_read(pa, 8);
  let v = 0;
  for (let i = 7; i >= 0; i--) v = v * 256 + b[i]!;
  return v;
}

export function phys_write_u64(pa: number, v: number): void {
  const b = new Uint8Array(8);
  let x = v;
  for (let i = 0; i < 8; i++) {
    b[i] = x % 256;
    x = Math.floor(x / 256);
  }
  phys_write(pa, b);
}

function memmapContents(): Map<number, Uint8Array> {
  return memmap().contents;
}
