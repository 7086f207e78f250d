/**
 * The core memory-management structures: struct page/folio handles, mm_struct,
 * vm_area_struct, vm_operations_struct, vm_fault, address_space, inode, file, anon_vma.
 *
 * struct page is not an object here: per-frame state lives in the memmap's typed arrays
 * (mm/sparse.ts) and a `page` is a handle equal to its pfn, as `pfn_to_page` would give a
 * pointer into mem_map. A `folio` is the handle of its head page.
 *
 * @kernel include/linux/mm_types.h (all versions)
 */
import type { Op } from '../../../sched/index.js';
import type { pgprot_t, pteval_t } from '../../arch/x86/include/asm/pgtable_types.js';
import type { ptdesc } from './pgtable.js';
import type { rw_semaphore, spinlock_t, seqcount_t } from './spinlock.js';
import type { task_struct } from './sched.js';

/** struct page *: the pfn of the page, branded. */
export type page = number & { readonly __struct: 'page' };
/** struct folio *: the pfn of the head page, branded. */
export type folio = number & { readonly __struct: 'folio' };
/** vm_fault_t: a VM_FAULT_* bit mask. */
export type vm_fault_t = number;

/** A pointer to a page-table entry: the table and the slot index. */
export interface entry_ptr {
  readonly t: ptdesc;
  readonly i: number;
}
export type pte_t_ptr = entry_ptr;
export type pmd_t_ptr = entry_ptr;
export type pud_t_ptr = entry_ptr;

/**
 * struct vm_operations_struct. Hooks that can sleep or take locks are operations
 * (generators); pure lookups are plain functions.
 */
export interface vm_operations_struct {
  /** Symbol name for reports ("vm_ops:<name>"). */
  readonly name: string;
  open?(vma: vm_area_struct): void;
  close?(vma: vm_area_struct): void;
  /** May split the VMA at addr? (may_split) Return 0 or -errno. */
  may_split?(vma: vm_area_struct, addr: number): number;
  mremap?(vma: vm_area_struct): number;
  fault?(vmf: vm_fault): Op<vm_fault_t>;
  huge_fault?(vmf: vm_fault, order: number): Op<vm_fault_t>;
  page_mkwrite?(vmf: vm_fault): Op<vm_fault_t>;
  pfn_mkwrite?(vmf: vm_fault): Op<vm_fault_t>;
  /** vm_ops->access: copy `len` bytes to/from buf for __access_remote_vm. */
  access?(
    vma: vm_area_struct,
    addr: number,
    buf: Uint8Array,
    len: number,
    write: number,
  ): Op<number>;
  /** find_special_page (<= v6.17) / find_normal_page (v6.18): see vm_normal_page. */
  find_special_page?(vma: vm_area_struct, addr: number): page | null;
}

/** struct anon_vma: the set of VMAs that may map an anonymous folio (rmap). */
export interface anon_vma {
  readonly id: number;
  root: anon_vma;
  /** VMAs linked through the anon_vma_chain (the parent's and its forked children's). */
  readonly vmas: Set<vm_area_struct>;
  refcount: number;
}

export interface vm_area_struct {
  readonly id: number;
  vm_start: number;
  /** Exclusive end. */
  vm_end: number;
  vm_pgoff: number;
  /** VM_* flags: 64-bit, held as a bigint (`vma.vm_flags & VM_PFNMAP`). */
  vm_flags: bigint;
  vm_page_prot: pgprot_t;
  vm_mm: mm_struct;
  vm_file: file | null;
  vm_ops: vm_operations_struct | null;
  vm_private_data: unknown;
  anon_vma: anon_vma | null;
  /** x86 PAT: the memtype reservation of a whole-VMA remap (v6.16+ pfnmap_track_ctx). */
  pfnmap_track_ctx: pfnmap_track_ctx | null;
}

/** struct pfnmap_track_ctx (mm/memory.c, 2025 rework): a shared memtype reservation. */
export interface pfnmap_track_ctx {
  readonly pfn: number;
  readonly size: number;
  kref: number;
}

/** mm->flags bits (MMF_*). */
export const MMF_HAS_PINNED = 27;
export const MMF_HAS_MDWE = 28;

/** rss counters (enum MM_*). */
export const MM_FILEPAGES = 0;
export const MM_ANONPAGES = 1;
export const MM_SWAPENTS = 2;
export const MM_SHMEMPAGES = 3;

export interface mm_struct {
  readonly id: number;
  pgd: ptdesc;
  readonly mmap_lock: rw_semaphore;
  /** Protects page-table allocation and PUD-level leaves. */
  readonly page_table_lock: spinlock_t;
  /** Bumped by fork around copy_page_range; read by GUP-fast (write_protect_seq). */
  readonly write_protect_seq: seqcount_t;
  /** VMAs sorted by vm_start (the maple tree's order). */
  readonly mmap: vm_area_struct[];
  owner: task_struct | null;
  mm_users: number;
  mm_count: number;
  /** MMF_* bits. */
  flags: number;
  def_flags: bigint;
  readonly rss_stat: number[];
  total_vm: number;
  locked_vm: number;
  pinned_vm: number;
  /** struct mmu_notifier_subscriptions *, created on first registration. */
  notifier_subscriptions: unknown;
  /** Lowest address handed out by get_unmapped_area (top-down below mmap_base). */
  mmap_base: number;
  task_size: number;
  /** The page-table pages allocated for this mm, for teardown accounting. */
  pgtables_bytes: number;
}

/** FAULT_FLAG_* (include/linux/mm_types.h enum fault_flag). */
export const FAULT_FLAG_WRITE = 1 << 0;
export const FAULT_FLAG_MKWRITE = 1 << 1;
export const FAULT_FLAG_ALLOW_RETRY = 1 << 2;
export const FAULT_FLAG_RETRY_NOWAIT = 1 << 3;
export const FAULT_FLAG_KILLABLE = 1 << 4;
export const FAULT_FLAG_TRIED = 1 << 5;
export const FAULT_FLAG_USER = 1 << 6;
export const FAULT_FLAG_REMOTE = 1 << 7;
export const FAULT_FLAG_INSTRUCTION = 1 << 8;
export const FAULT_FLAG_INTERRUPTIBLE = 1 << 9;
export const FAULT_FLAG_UNSHARE = 1 << 10;
export const FAULT_FLAG_ORIG_PTE_VALID = 1 << 11;
export const FAULT_FLAG_VMA_LOCK = 1 << 12;

/** struct vm_fault. */
export interface vm_fault {
  readonly vma: vm_area_struct;
  gfp_mask: number;
  /** Logical page offset of the fault in the VMA's file (linear_page_index). */
  pgoff: number;
  /** Faulting address, page aligned. */
  address: number;
  real_address: number;
  flags: number;
  pmd: pmd_t_ptr | null;
  pud: pud_t_ptr | null;
  orig_pte: pteval_t;
  orig_pmd: pteval_t;
  cow_page: page | null;
  page: page | null;
  pte: pte_t_ptr | null;
  ptl: spinlock_t | null;
}

/** struct address_space_operations, reduced. */
export interface address_space_operations {
  readonly name: string;
  /**
   * ->read_folio: fill a locked, !uptodate page-cache folio from the backing store, mark it
   * uptodate and unlock it. Returns 0 or -errno.
   */
  read_folio?(file: file | null, f: folio): Op<number>;
  /** Writeback of one dirty folio; returns 0 or -errno. */
  writepage?(mapping: address_space, f: folio): Op<number>;
  /** folio_mark_dirty hook (dirty_folio). */
  dirty_folio?(mapping: address_space, f: folio): boolean;
  /** Migration of a page-cache folio (migrate_folio). */
  migrate_folio?: boolean;
}

/** AS_* flags of address_space->flags. */
export const AS_UNEVICTABLE = 3;

export interface address_space {
  readonly id: number;
  host: inode;
  /** VMAs mapping this file (the i_mmap interval tree). */
  readonly i_mmap: Set<vm_area_struct>;
  readonly i_mmap_rwsem: rw_semaphore;
  /** The page cache: index -> folio. */
  readonly i_pages: Map<number, folio>;
  a_ops: address_space_operations;
  nrpages: number;
  flags: number;
  /** Memory for /dev/mem-style mappings shared by several opens (iomem_get_mapping). */
  private_data: unknown;
}

/** A file system type, for reports and for rules keyed on it (shmem, ext4, hugetlbfs). */
export interface super_block {
  readonly s_type: string;
  /** The FS keeps dirty page-cache pages in memory only (shmem, ramfs). */
  readonly s_nowriteback: boolean;
  readonly s_op?: super_operations;
}

/** struct super_operations, reduced. */
export interface super_operations {
  /** ->evict_inode: the last reference to an unlinked inode is gone. */
  evict_inode?(inode: inode): Op<void>;
}

export interface inode {
  readonly i_ino: number;
  i_size: number;
  readonly i_mapping: address_space;
  readonly i_sb: super_block;
  /** S_IFREG, S_IFCHR ... as a name. */
  readonly i_kind: 'reg' | 'chr' | 'anon';
  i_private: unknown;
  /** References (open files and holders); the inode is evicted at 0 when unlinked. */
  i_count: number;
  /** Links from the namespace; 0 for unlinked files (shmem_file_setup, memfd). */
  i_nlink: number;
}

export interface file_operations {
  readonly name: string;
  /** ->mmap: set flags and vm_ops on the new VMA; 0 or -errno. */
  mmap?(file: file, vma: vm_area_struct): Op<number>;
  /** ->release: may return an Op when the driver's release takes locks (vfio). */
  release?(inode: inode, file: file): void | Op<void>;
  /**
   * ->unlocked_ioctl(file, cmd, arg): 0/-errno or a value. `arg` is the argument structure
   * as a value (the model leaves out copy_from_user/copy_to_user; output fields are written
   * into it).
   */
  unlocked_ioctl?(file: file, cmd: number, arg: unknown): Op<number>;
}

/** f_mode bits. */
export const FMODE_READ = 0x1;
export const FMODE_WRITE = 0x2;

export interface file {
  readonly id: number;
  readonly f_path: string;
  f_mode: number;
  f_flags: number;
  readonly f_inode: inode;
  f_mapping: address_space;
  readonly f_op: file_operations;
  private_data: unknown;
  f_count: number;
}
