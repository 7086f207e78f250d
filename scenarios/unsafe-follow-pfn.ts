/**
 * unsafe-follow-pfn (v5.13): 69bacee7f9ad "mm: Add unsafe_follow_pfn" renamed the
 * exported follow_pfn for callers that cannot synchronise with page-table changes, behind
 * CONFIG_STRICT_FOLLOW_PFN (R-LEG-3). The user here is such a caller: it looks the pfn up
 * behind a driver's remap_pfn_range() of a RAM frame and maps it into its device's
 * IOMMU, while the driver zaps and frees the frame and another process's fault reuses it.
 *
 * - strict (CONFIG_STRICT_FOLLOW_PFN=y): unsafe_follow_pfn prints "unsafe follow_pfn
 *   usage rejected, see CONFIG_STRICT_FOLLOW_PFN" and returns -EINVAL; nothing is mapped.
 * - nonstrict (=n): WARN_ONCE "unsafe follow_pfn usage", TAINT_USER, then follow_pfn,
 *   which drops the PTE lock before it returns: the pfn is used with nothing keeping it
 *   valid (stale-pfn at iommu_map).
 *
 * The function (and the option) exist only in v5.13 among the supported versions; every
 * other version is 'n/a' (follow_pfn itself is the follow-pfnmap story's unsafe lookup).
 */
import { defineScenario, type Op } from '../src/index.js';
import { unsafe_follow_pfn } from '../src/kernel/mm/memory.pfnmap.js';
import { vma_lookup } from '../src/kernel/mm/vma.js';
import { mmap_read_lock, mmap_read_unlock } from '../src/kernel/include/linux/mmap_lock.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import {
  USER_DEV,
  deviceWrite,
  hex,
  mapPfn,
  pfnRaceCheck,
  pfnRaceSetup,
  victimThread,
  zapperThread,
  type PfnRace,
} from './mm-common.js';

type State = PfnRace;

export const unsafeFollowPfn = defineScenario<State>({
  name: 'unsafe-follow-pfn',
  story: 'unsafe-follow-pfn',
  description:
    "v5.13 unsafe_follow_pfn() behind a driver's remap_pfn_range() of a RAM frame, mapped into another device's IOMMU while the driver zaps and frees the frame",
  machine: { ram: 2 ** 30, devices: [USER_DEV] },
  setup: (ctx) => pfnRaceSetup(ctx, 'remap'),
  threads: {
    user: {
      kind: 'driver',
      *run(ctx, s): Op<void> {
        const mm = s.app.task.mm!;
        yield* mmap_read_lock(mm);
        const vma = vma_lookup(mm, s.uaddr)!;
        const r = yield* unsafe_follow_pfn(vma, s.uaddr);
        yield* mmap_read_unlock(mm);
        if (r.ret) {
          ctx.note(`unsafe_follow_pfn: ${errname(r.ret)}`);
          return;
        }
        ctx.note(`unsafe_follow_pfn: pfn ${hex(r.pfn)} (nothing keeps it valid)`);
        if ((yield* mapPfn(ctx, s, r.pfn)) === 0) yield* deviceWrite(ctx, s);
      },
    },
    zapper: zapperThread<State>(),
    victim: victimThread<State>(),
  },
  check: (_ctx, s) => pfnRaceCheck(s),
  variants: {
    strict: {
      description: 'CONFIG_STRICT_FOLLOW_PFN=y: the lookup is refused with -EINVAL',
      config: { CONFIG_STRICT_FOLLOW_PFN: true },
      expect: { '5.13': 'SAFE', default: 'n/a' },
    },
    nonstrict: {
      description: 'CONFIG_STRICT_FOLLOW_PFN=n: WARN_ONCE and TAINT_USER, then the stale use',
      config: { CONFIG_STRICT_FOLLOW_PFN: false },
      expect: { '5.13': 'stale-pfn', default: 'n/a' },
    },
  },
});

export default unsafeFollowPfn;
