/**
 * The /dev/mem hooks of x86 PAT (arch/x86/mm/pat/memtype.c, split from memtype.ts):
 * phys_mem_access_prot_allowed() checks an mmap of /dev/mem and picks its cache mode,
 * phys_mem_access_prot() adjusts the protection for memory encryption.
 *
 * Left out: SME/SEV (phys_mem_access_encrypted is always true in the model, so
 * phys_mem_access_prot returns the protection unchanged).
 *
 * @kernel arch/x86/mm/pat/memtype.c:phys_mem_access_prot_allowed, phys_mem_access_prot,
 *   range_is_allowed (before v6.16); include/linux/io.h:range_is_allowed (v6.16+)
 */
import type { file } from '../../../../include/linux/mm_types.js';
import { O_DSYNC } from '../../../../include/linux/fs.js';
import { currentKernel } from '../../../../kernel/kernel.js';
import { since } from '../../../../version.js';
import type { pgprot_t } from '../../include/asm/pgtable_types.js';
import { PAGE_SIZE } from '../../include/asm/pgtable_types.js';
import { devmem_is_allowed } from '../init.js';
import {
  _PAGE_CACHE_MODE_UC_MINUS,
  _PAGE_CACHE_MODE_WB,
  pat_enabled,
  pgprot_set_cachemode,
  type pgprot_ptr,
} from './memtype.js';

/** The devmem_is_allowed() loop over [pfn, pfn + size) shared by both eras. */
function devmem_range_allowed(pfn: number, size: number): boolean {
  const to = pfn * PAGE_SIZE + size;
  for (let cursor = pfn * PAGE_SIZE; cursor < to; cursor += PAGE_SIZE, pfn++) {
    if (!devmem_is_allowed(pfn)) return false;
  }
  return true;
}

/**
 * range_is_allowed(pfn, size) as phys_mem_access_prot_allowed sees it.
 * Before v6.16 (memtype.c's own copy): with CONFIG_STRICT_DEVMEM the check is left to
 * drivers/char/mem.c (1); without it, "needed to avoid cache aliasing when PAT is
 * enabled": with PAT every page must pass devmem_is_allowed(). From v6.16
 * (1b3f2bd04d90 "x86/devmem: Remove duplicate range_is_allowed() definition") the one
 * copy in include/linux/io.h is used: the devmem_is_allowed() loop under
 * CONFIG_STRICT_DEVMEM, 1 without it (so RAM is no longer refused for aliasing when
 * STRICT_DEVMEM is off).
 * @kernel arch/x86/mm/pat/memtype.c:range_is_allowed (v5.7-v6.15);
 *   include/linux/io.h:range_is_allowed (v6.16+)
 * Return: 1 or 0.
 */
function range_is_allowed(pfn: number, size: number): number {
  const strict = currentKernel().config.CONFIG_STRICT_DEVMEM === true;
  if (!since(6, 16)) {
    if (strict) return 1;
    if (!pat_enabled()) return 1;
    return devmem_range_allowed(pfn, size) ? 1 : 0;
  }
  if (!strict) return 1;
  return devmem_range_allowed(pfn, size) ? 1 : 0;
}

/**
 * phys_mem_access_prot_allowed(file, pfn, size, vma_prot): whether an mmap of /dev/mem
 * over [pfn, pfn + size) may go ahead, setting the cache mode of *vma_prot: WB, or UC-
 * when the file was opened O_DSYNC (O_SYNC).
 * @kernel arch/x86/mm/pat/memtype.c:phys_mem_access_prot_allowed (v5.7+; the
 *   `!pat_enabled()` early return and the include/linux/io.h range_is_allowed are v6.16+,
 *   1b3f2bd04d90)
 * Locking: mmap_lock held for write (called from ->mmap).
 * Return: 1 (allowed, *vma_prot updated) or 0 (mmap_mem returns -EINVAL).
 */
export function phys_mem_access_prot_allowed(
  f: file,
  pfn: number,
  size: number,
  vma_prot: pgprot_ptr,
): number {
  let pcm = _PAGE_CACHE_MODE_WB;
  if (since(6, 16) && !pat_enabled()) return 1;
  if (!range_is_allowed(pfn, size)) return 0;
  if (f.f_flags & O_DSYNC) pcm = _PAGE_CACHE_MODE_UC_MINUS;
  pgprot_set_cachemode(vma_prot, pcm);
  return 1;
}

/**
 * phys_mem_access_prot(file, pfn, size, vma_prot): the protection of a /dev/mem mapping:
 * decrypted unless the range is encrypted memory (SME); the model has no memory
 * encryption, so the protection is returned unchanged.
 * @kernel arch/x86/mm/pat/memtype.c:phys_mem_access_prot (all versions)
 * Return: the protection.
 */
export function phys_mem_access_prot(
  _f: file,
  _pfn: number,
  _size: number,
  vma_prot: pgprot_t,
): pgprot_t {
  return vma_prot;
}
