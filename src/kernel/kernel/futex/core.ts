/**
 * Futex keys and the two operations the model needs, FUTEX_WAKE and FUTEX_WAIT with a
 * zero timeout.
 *
 * get_futex_key: a private futex is keyed by (mm, address) with no page lookup. A shared
 * futex looks the page up with get_user_pages_fast(FOLL_WRITE) — for FUTEX_READ users
 * (WAIT, WAKE) retrying read-only on -EFAULT — and keys on what the page belongs to:
 * - a folio with no mapping (the zero page, a driver's page in a VM_MIXEDMAP ring, a
 *   special mapping) ⇒ -EFAULT;
 * - an anonymous folio ⇒ (mm, address), but -EFAULT when only read-only access was got
 *   ("a RO anonymous page will never change");
 * - a page-cache folio ⇒ (inode, page offset).
 * This is stricter than GUP (kernel-spec O-7).
 *
 * Left out: PI futexes, requeue, FUTEX2 and the NUMA/MPOL flags of v6.16+ (no NUMA), the
 * hash buckets beyond counting waiters (the model's futex_wait never sleeps: it returns
 * -EAGAIN or -ETIMEDOUT), the shmem swap-cache race (folio->mapping is never switched),
 * should_fail_futex.
 *
 * @kernel kernel/futex/core.c:get_futex_key (v5.x+; kernel/futex.c before v5.16),
 *   kernel/futex/waitwake.c:futex_wake, futex_wait_setup, kernel/futex/syscalls.c:do_futex
 */
import type { Op } from '../../../sched/index.js';
import type { address_space, folio, mm_struct, page } from '../../include/linux/mm_types.js';
import { get_current } from '../../include/linux/sched.js';
import { FOLL_WRITE } from '../../include/linux/mm.js';
import { EAGAIN, EFAULT, EINVAL, ENOSYS } from '../../include/linux/errno.js';
import { PAGE_SIZE, TASK_SIZE_MAX } from '../../arch/x86/include/asm/pgtable_types.js';
import {
  folio_index,
  folio_raw_mapping,
  folio_test_anon,
  page_folio,
} from '../../include/linux/page-flags.js';
import { folio_put } from '../../include/linux/page_ref.js';
import { get_user_pages_fast } from '../../mm/gup.js';
import { __copy_from_user_inatomic, copy_from_user } from '../../arch/x86/mm/fault.js';

/** FUTEX_* ops (include/uapi/linux/futex.h). */
export const FUTEX_WAIT = 0;
export const FUTEX_WAKE = 1;
export const FUTEX_PRIVATE_FLAG = 128;
export const FUTEX_CLOCK_REALTIME = 256;
export const FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
export const FUTEX_BITSET_MATCH_ANY = 0xffffffff;

/** FLAGS_* (kernel/futex/futex.h). */
export const FLAGS_SIZE_32 = 0x02;
export const FLAGS_SHARED = 0x10;

/** enum futex_access */
export const FUTEX_READ = 0;
export const FUTEX_WRITE = 1;

/** ETIMEDOUT (include/uapi/asm-generic/errno.h). */
export const ETIMEDOUT = 110;

/** FUT_OFF_INODE / FUT_OFF_MMSHARED: the low bits of key.both.offset. */
export const FUT_OFF_INODE = 1;
export const FUT_OFF_MMSHARED = 2;

/** union futex_key */
export type futex_key =
  | {
      readonly kind: 'private';
      readonly mm: mm_struct | null;
      readonly address: number;
      readonly offset: number;
    }
  | {
      readonly kind: 'mmshared';
      readonly mm: mm_struct;
      readonly address: number;
      readonly offset: number;
    }
  | {
      readonly kind: 'inode';
      readonly i_ino: number;
      readonly pgoff: number;
      readonly offset: number;
    };

/**
 * get_futex_key(uaddr, flags, key, rw): see the file comment. A misaligned address is
 * -EINVAL, one outside user space -EFAULT; GUP's error is returned as is.
 * @kernel kernel/futex/core.c:get_futex_key (all versions; FUTEX_READ retry v5.x+)
 * Locking: no locks held; GUP-fast (falling back to the slow path) takes mmap_lock.
 * Return: the key, or -errno.
 */
export function* get_futex_key(uaddr: number, flags: number, rw: number): Op<futex_key | number> {
  let address = uaddr;
  const mm = get_current().mm;
  const fshared = (flags & FLAGS_SHARED) !== 0;
  const size = 4;
  let ro = false;
  // The futex address must be "naturally" aligned.
  const offset = address % PAGE_SIZE;
  if (address % size !== 0) return -EINVAL;
  address -= offset;
  if (uaddr + size > TASK_SIZE_MAX) return -EFAULT; // !access_ok
  // PROCESS_PRIVATE futexes are fast: the virtual address is the key.
  if (!fshared) return { kind: 'private', mm, address, offset };
  for (;;) {
    // again:
    const pages: page[] = [];
    let err = yield* get_user_pages_fast(address, 1, FOLL_WRITE, pages);
    // If write access is not required (eg. FUTEX_WAIT), try and get read-only access.
    if (err === -EFAULT && rw === FUTEX_READ) {
      err = yield* get_user_pages_fast(address, 1, 0, pages);
      ro = true;
    }
    if (err < 0) return err;
    const p = pages[0]!;
    const f: folio = page_folio(p);
    yield { obj: `folio${f}.mapping`, kind: 'read', what: 'get_futex_key' };
    const mapping = folio_raw_mapping(f);
    // If folio->mapping is NULL, then it cannot be an anonymous page; but it might be the
    // ZERO_PAGE or in the gate area or in a special mapping (all cases which we are happy
    // to fail). (The shmem swizzle recheck under the folio lock is left out: the model's
    // shmem never moves a folio to the swap cache.)
    if (!mapping) {
      folio_put(f);
      return -EFAULT;
    }
    let key: futex_key | number;
    if (folio_test_anon(f)) {
      // A RO anonymous page will never change and thus doesn't make sense for futex
      // operations.
      key = ro
        ? -EFAULT
        : { kind: 'mmshared', mm: mm!, address, offset: offset | FUT_OFF_MMSHARED };
    } else {
      const m = mapping as address_space;
      key = {
        kind: 'inode',
        i_ino: m.host.i_ino,
        pgoff: folio_index(f) + (p - f),
        offset: offset | FUT_OFF_INODE,
      };
    }
    folio_put(f);
    return key;
  }
}

/**
 * futex_wake(uaddr, flags, nr_wake, bitset): wakes up to nr_wake waiters on the key. A
 * zero bitset is -EINVAL.
 * @kernel kernel/futex/waitwake.c:futex_wake (v5.16+; kernel/futex.c before)
 * Return: the number woken (the model's tasks never wait: 0) or -errno.
 */
export function* futex_wake(
  uaddr: number,
  flags: number,
  _nr_wake: number,
  bitset: number,
): Op<number> {
  if (!bitset) return -EINVAL;
  const key = yield* get_futex_key(uaddr, flags, FUTEX_READ);
  if (typeof key === 'number') return key;
  // futex_hash(&key) and the wake loop: no task ever waits in the model, so none of the
  // nr_wake waiters is found.
  return 0;
}

/**
 * futex_wait(uaddr, flags, val, abs_time, bitset) with a zero timeout: the key, then
 * the futex word (read with page faults disabled, then faulted in and retried): a value
 * other than val ⇒ -EAGAIN (-EWOULDBLOCK), else the wait times out at once ⇒ -ETIMEDOUT.
 * @kernel kernel/futex/waitwake.c:futex_wait, futex_wait_setup (v5.16+)
 * Return: -EAGAIN, -ETIMEDOUT, or -errno.
 */
export function* futex_wait_timeout0(
  uaddr: number,
  flags: number,
  val: number,
  bitset: number,
): Op<number> {
  if (!bitset) return -EINVAL;
  for (;;) {
    const key = yield* get_futex_key(uaddr, flags, FUTEX_READ);
    if (typeof key === 'number') return key;
    const buf = new Uint8Array(4);
    // futex_get_value_locked(): pagefault_disable()d.
    const left = yield* __copy_from_user_inatomic(get_current().mm, buf, uaddr, 4);
    if (left) {
      // get_user(uval, uaddr) with faults allowed, then retry.
      if (yield* copy_from_user(buf, uaddr, 4)) return -EFAULT;
      continue;
    }
    const uval = new DataView(buf.buffer).getUint32(0, true);
    if (uval !== val >>> 0) return -EAGAIN;
    return -ETIMEDOUT;
  }
}

/**
 * do_futex(uaddr, op, val, timeout, uaddr2, val2, val3) for FUTEX_WAKE and FUTEX_WAIT
 * (with a zero timeout); FUTEX_PRIVATE_FLAG selects private keys.
 * @kernel kernel/futex/syscalls.c:do_futex (v5.16+; kernel/futex.c before)
 * Return: as the operation; other operations are -ENOSYS.
 */
export function* do_futex(uaddr: number, op: number, val: number): Op<number> {
  const cmd = op & FUTEX_CMD_MASK;
  let flags = FLAGS_SIZE_32;
  if (!(op & FUTEX_PRIVATE_FLAG)) flags |= FLAGS_SHARED;
  switch (cmd) {
    case FUTEX_WAIT:
      return yield* futex_wait_timeout0(uaddr, flags, val, FUTEX_BITSET_MATCH_ANY);
    case FUTEX_WAKE:
      return yield* futex_wake(uaddr, flags, val, FUTEX_BITSET_MATCH_ANY);
    default:
      return -ENOSYS;
  }
}
