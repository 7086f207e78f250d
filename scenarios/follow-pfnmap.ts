/**
 * follow-pfnmap: a driver maps a RAM frame it allocated into a process with
 * remap_pfn_range() (VM_IO|VM_PFNMAP, one special PTE). A second driver (the "user", an
 * accelerator acting for the same process) looks the pfn up behind the user address and
 * maps it into its device's IOMMU domain, then the device writes through it. Meanwhile
 * the first driver tears its buffer down: unmap_mapping_range() zaps the PTE, the frame
 * is freed, and another process's page fault gets it back at once (the allocator is
 * LIFO).
 *
 * Lookup per era (R-FPM-2/3, R-LEG-1/2): follow_pfnmap_start/_end on 6.12+ (6da8e9634bb7);
 * follow_pte + pte_unmap_unlock on 6.10-6.11 (follow_pfn removed by cb10c28ac82c); up
 * to 6.9 follow_pfn (which drops the PTE lock before returning) for the unsafe form and
 * follow_pte for the locked window (static in mm/memory.c before v5.11, so on 5.7-5.10
 * that is how in-tree mm code would write it).
 *
 * - unsafe: the pfn is mapped into the IOMMU after the lookup's window ended (after
 *   follow_pfnmap_end / pte_unmap_unlock / follow_pfn's return). Nothing orders that
 *   with the zap and the free: the device can end up writing into the other process's
 *   page. pfnsan reports the use at iommu_map (stale-pfn), whether or not the frame was
 *   reused in that interleaving.
 * - fixed-window: the whole use (map, device write, unmap) happens inside the window,
 *   under the PTE lock; the zap waits for it.
 * - fixed-notifier: the user keeps its IOMMU entry in step with an MMU interval notifier
 *   (R-MMUN-3): mmu_interval_read_begin, lookup, then under the user's lock
 *   mmu_interval_read_retry (redo if an invalidation started) and only then iommu_map;
 *   the ->invalidate callback takes the same lock, bumps the sequence and removes the
 *   IOMMU entry before the zap clears the PTE. The trace notes how many invalidations
 *   and retries it took.
 */
import { defineScenario, type Op, type ScenarioContext } from '../src/index.js';
import type { mm_struct } from '../src/kernel/include/linux/mm_types.js';
import {
  follow_pfn,
  follow_pfnmap_args_init,
  follow_pfnmap_end,
  follow_pfnmap_start,
  follow_pte,
} from '../src/kernel/mm/memory.pfnmap.js';
import { vma_lookup } from '../src/kernel/mm/vma.js';
import { mmap_read_lock, mmap_read_unlock } from '../src/kernel/include/linux/mmap_lock.js';
import { ptep_get, pte_unmap_unlock } from '../src/kernel/include/linux/pgtable.js';
import { pte_pfn } from '../src/kernel/arch/x86/include/asm/pgtable_types.js';
import { spin_lock, spin_unlock } from '../src/kernel/include/linux/spinlock.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import {
  mmu_interval_notifier_insert,
  mmu_interval_read_begin,
  mmu_interval_read_retry,
  mmu_interval_set_seq,
  new_interval_notifier,
  type mmu_interval_notifier,
} from '../src/kernel/mm/mmu_notifier.js';
import {
  pfnsan_lease_get,
  pfnsan_lease_guard,
  pfnsan_lease_of,
} from '../src/kernel/mm/pfnsan/pfnsan.js';
import {
  IOVA,
  USER_DEV,
  deviceWrite,
  hex,
  iommu_unmap,
  mapPfn,
  pfnRaceCheck,
  pfnRaceSetup,
  victimThread,
  zapperThread,
  type PfnRace,
} from './mm-common.js';

interface State extends PfnRace {
  readonly sub: mmu_interval_notifier | null;
  retries: number;
}

/** The lookup of one era, run under mmap_lock; `use` runs inside the window. */
function* lookup(
  ctx: ScenarioContext,
  mm: mm_struct,
  addr: number,
  inWindow: (pfn: number, guard: (sub: mmu_interval_notifier) => void) => Op<void>,
  lockedWindow: boolean,
): Op<number | null> {
  const vma = vma_lookup(mm, addr);
  if (!vma) return null;
  if (ctx.since(6, 12)) {
    const args = follow_pfnmap_args_init(vma, addr);
    const ret = yield* follow_pfnmap_start(args);
    if (ret) {
      ctx.note(`follow_pfnmap_start: ${errname(ret)} (the PTE is gone)`);
      return null;
    }
    ctx.note(`follow_pfnmap_start: pfn ${hex(args.pfn)}, PTE lock held until _end`);
    yield* inWindow(args.pfn, (sub) => {
      const l = pfnsan_lease_of(args);
      if (l) pfnsan_lease_guard(l, { kind: 'notifier', sub, mm, start: addr, end: addr + 4096 });
    });
    yield* follow_pfnmap_end(args);
    return args.pfn;
  }
  if (!lockedWindow && !ctx.since(6, 10)) {
    const r = yield* follow_pfn(vma, addr);
    if (r.ret) {
      ctx.note(`follow_pfn: ${errname(r.ret)} (the PTE is gone)`);
      return null;
    }
    ctx.note(`follow_pfn: pfn ${hex(r.pfn)} (the PTE lock was dropped before it returned)`);
    return r.pfn;
  }
  const r = yield* follow_pte(ctx.since(6, 10) ? vma : mm, addr);
  if (r.ret) {
    ctx.note(`follow_pte: ${errname(r.ret)} (the PTE is gone)`);
    return null;
  }
  const pfn = pte_pfn(ptep_get(r.ptep!));
  ctx.note(`follow_pte: pfn ${hex(pfn)}, PTE lock held until pte_unmap_unlock`);
  yield* inWindow(pfn, (sub) => {
    // Model glue: follow_pte's lease ends with the PTE lock; the caller's own guarantee
    // from here on is its notifier subscription.
    pfnsan_lease_get(pfn, 1, 'follow_pte', {
      kind: 'notifier',
      sub,
      mm,
      start: addr,
      end: addr + 4096,
    });
  });
  yield* pte_unmap_unlock(r.ptep!, r.ptl!);
  return pfn;
}

function* userUnsafe(ctx: ScenarioContext, s: State): Op<void> {
  const mm = s.app.task.mm!;
  yield* mmap_read_lock(mm);
  const pfn = yield* lookup(ctx, mm, s.uaddr, function* () {}, false);
  yield* mmap_read_unlock(mm);
  if (pfn === null) return;
  if ((yield* mapPfn(ctx, s, pfn)) === 0) yield* deviceWrite(ctx, s);
}

function* userWindow(ctx: ScenarioContext, s: State): Op<void> {
  const mm = s.app.task.mm!;
  yield* mmap_read_lock(mm);
  yield* lookup(
    ctx,
    mm,
    s.uaddr,
    function* (pfn) {
      if ((yield* mapPfn(ctx, s, pfn)) !== 0) return;
      yield* deviceWrite(ctx, s);
      yield* iommu_unmap(s.domain, IOVA, 4096);
      ctx.note(`iommu_unmap: iova ${hex(IOVA)}, still inside the window`);
    },
    true,
  );
  yield* mmap_read_unlock(mm);
}

function* userNotifier(ctx: ScenarioContext, s: State): Op<void> {
  const mm = s.app.task.mm!;
  const sub = s.sub!;
  for (;;) {
    const seq = yield* mmu_interval_read_begin(sub);
    yield* mmap_read_lock(mm);
    const pfn = yield* lookup(
      ctx,
      mm,
      s.uaddr,
      function* (_pfn, guard) {
        guard(sub);
      },
      true,
    );
    yield* mmap_read_unlock(mm);
    if (pfn === null) break;
    yield* spin_lock(s.lock);
    if (mmu_interval_read_retry(sub, seq)) {
      yield* spin_unlock(s.lock);
      s.retries++;
      ctx.note('mmu_interval_read_retry: an invalidation started since read_begin; redo');
      continue;
    }
    if ((yield* mapPfn(ctx, s, pfn)) === 0) s.mapped = true;
    yield* spin_unlock(s.lock);
    break;
  }
  ctx.note(`lookup done after ${s.retries} retr${s.retries === 1 ? 'y' : 'ies'}`);
  yield* deviceWrite(ctx, s);
}

export const followPfnmap = defineScenario<State>({
  name: 'follow-pfnmap',
  story: 'follow-pfnmap',
  description:
    "a pfn looked up behind a driver's remap_pfn_range() of its RAM buffer is mapped into another device's IOMMU while the driver zaps and frees the buffer and the frame is reused",
  machine: { ram: 2 ** 30, devices: [USER_DEV] },
  setup(ctx) {
    const s: State = { ...pfnRaceSetup(ctx, 'remap'), sub: null, retries: 0 };
    if (ctx.variant === 'fixed-notifier') {
      const sub = new_interval_notifier('accel', {
        *invalidate(isub, _range, curSeq): Op<boolean> {
          yield* spin_lock(s.lock);
          mmu_interval_set_seq(isub, curSeq);
          if (s.mapped) {
            yield* iommu_unmap(s.domain, IOVA, 4096);
            s.mapped = false;
            ctx.note(`accel: invalidate: iommu_unmap iova ${hex(IOVA)}`);
          }
          yield* spin_unlock(s.lock);
          return true;
        },
      });
      const r = ctx.run(
        mmu_interval_notifier_insert(sub, s.app.task.mm!, s.uaddr, 4096, sub.ops),
        'setup',
      );
      if (r) throw new Error(`mmu_interval_notifier_insert failed: ${errname(r)}`);
      (s as { sub: mmu_interval_notifier | null }).sub = sub;
    }
    return s;
  },
  threads: {
    user: {
      kind: 'driver',
      run(ctx, s) {
        if (ctx.variant === 'fixed-window') return userWindow(ctx, s);
        if (ctx.variant === 'fixed-notifier') return userNotifier(ctx, s);
        return userUnsafe(ctx, s);
      },
    },
    zapper: zapperThread<State>(),
    victim: victimThread<State>(),
  },
  check(ctx, s) {
    if (s.sub) ctx.note(`accel: ${s.sub.invalidations} invalidation(s), ${s.retries} retries`);
    return pfnRaceCheck(s);
  },
  variants: {
    unsafe: {
      description: 'the pfn is mapped into the IOMMU after the lookup window ended',
      expect: { default: 'stale-pfn' },
    },
    'fixed-window': {
      description: 'map, device write and unmap all happen inside the lookup window',
      expect: { default: 'SAFE' },
    },
    'fixed-notifier': {
      description:
        'the IOMMU entry is kept in step with an MMU interval notifier (read_begin/retry under the user lock; invalidate unmaps)',
      expect: { default: 'SAFE' },
    },
  },
});

export default followPfnmap;
