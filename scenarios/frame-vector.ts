/**
 * frame-vector: videobuf2's USERPTR path turns a user address range into a frame vector
 * with get_vaddr_frames() (R-FV-1). Its three eras decide both stories here; the "fix"
 * of each is a kernel version, so the variants are the two stories and the expectation
 * changes where the kernel changed.
 *
 * - cma: the user buffer is ordinary anonymous memory that happens to sit in a CMA area
 *   (movable allocations may use CMA). The V4L2 driver pins it with get_vaddr_frames()
 *   while another driver needs the whole CMA area (cma_alloc of every page).
 *   v5.8-v5.11 (mm/frame_vector.c): pin_user_pages_locked(FOLL_FORCE|FOLL_WRITE), not
 *   long-term: the pinned page stays in CMA and cma_alloc fails on it (cma-pin). v5.7
 *   used get_user_pages_locked (a FOLL_GET reference, not a pin: 55a650c35fea made it a
 *   pin in v5.8): cma_alloc fails the same way, but pfnsan's cma-pin is about pins, so
 *   the failure is the final check's ("cma_alloc of the whole CMA area failed").
 *   v5.12+ (04769cb1c45a "mm/frame-vector: Use FOLL_LONGTERM"): pin_user_pages_fast with
 *   FOLL_LONGTERM migrates the page out of CMA before pinning it (R-GUP-8). Up to v5.18
 *   the long-term check asks whether the pageblock is MIGRATE_CMA, and cma_alloc has
 *   turned it MIGRATE_ISOLATE: a pin taken after the isolation keeps the page in the
 *   area and cma_alloc fails on it (cma-pin; 1c563432588d "mm: fix is_pinnable_page
 *   against a cma page", v5.19, also refuses MIGRATE_ISOLATE). From v6.1 in the model:
 *   SAFE. cma_alloc may still fail while GUP holds its transient pin or migrates the
 *   page (-EBUSY, which pfnsan does not count: the pin is in flight); the final check
 *   then tries again once every thread is done, as a driver would, and that succeeds.
 * - pfn-path: the user buffer is a driver's VM_IO|VM_PFNMAP mapping of RAM frames
 *   (remap_pfn_range). GUP refuses VM_IO|VM_PFNMAP (-EFAULT, R-GUP-2), so up to v6.0
 *   get_vaddr_frames falls back to follow_pfn() (unsafe_follow_pfn in v5.13) and returns
 *   raw pfns that nothing keeps valid; the driver meanwhile moves its buffer (zaps the
 *   mapping, frees the frame, which another process's fault reuses) and vb2 turns the
 *   stale pfns into pages (frame_vector_to_pages): stale-pfn. v6.1+ (6647e76ab623 "v4l2:
 *   don't fall back to follow_pfn() if pin_user_pages_fast() fails"): get_vaddr_frames
 *   fails, the buffer is refused. SAFE.
 */
import { defineScenario, type Op, type ScenarioContext } from '../src/index.js';
import { FOLL_FORCE, FOLL_WRITE } from '../src/kernel/include/linux/mm.js';
import * as fvMm from '../src/kernel/mm/frame_vector.js';
import * as fvMedia from '../src/kernel/drivers/media/common/videobuf2/frame_vector.js';
import type { frame_vector } from '../src/kernel/mm/frame_vector.js';
import { cma_alloc, cma_find, cma_release } from '../src/kernel/mm/cma.js';
import type { page } from '../src/kernel/include/linux/mm_types.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import type { Process } from '../src/scenario/process.js';
import {
  hex,
  pfnRaceSetup,
  userFrame,
  victimThread,
  zapperThread,
  type PfnRace,
} from './mm-common.js';

/** The CMA area: one 2 MiB pageblock at 768 MiB (pfn 0x30000..0x301ff). */
const CMA_BASE = 0x30000000;
const CMA_PAGES = 512;

/** get_vaddr_frames of the era, run as the current process (vb2_create_framevec). */
function* getFrames(
  ctx: ScenarioContext,
  start: number,
  nr: number,
): Op<{
  ret: number;
  vec: frame_vector;
}> {
  if (!ctx.since(5, 12)) {
    const vec = fvMm.frame_vector_create(nr)!;
    const ret = yield* fvMm.get_vaddr_frames(start, nr, FOLL_FORCE | FOLL_WRITE, vec);
    return { ret, vec };
  }
  const vec = fvMedia.frame_vector_create(nr)!;
  const ret = ctx.since(6, 2)
    ? yield* fvMedia.get_vaddr_frames(start, nr, true, vec)
    : yield* fvMedia.get_vaddr_frames(start, nr, vec);
  return { ret, vec };
}

function putFrames(ctx: ScenarioContext, vec: frame_vector): void {
  if (!ctx.since(5, 12)) {
    fvMm.put_vaddr_frames(vec);
    fvMm.frame_vector_destroy(vec);
  } else {
    fvMedia.put_vaddr_frames(vec);
    fvMedia.frame_vector_destroy(vec);
  }
}

function toPages(ctx: ScenarioContext, vec: frame_vector): number {
  return ctx.since(5, 12) ? fvMedia.frame_vector_to_pages(vec) : fvMm.frame_vector_to_pages(vec);
}

interface CmaState {
  readonly kind: 'cma';
  readonly p: Process;
  readonly buf: number;
  /** The CMA frame behind buf at setup. */
  readonly frame: number;
  /** cma_alloc's result: the first page, or null on failure. */
  got: number | null | undefined;
  pinned: boolean;
}

interface PfnState extends PfnRace {
  readonly kind: 'pfn';
}

type State = CmaState | PfnState;

export const frameVector = defineScenario<State>({
  name: 'frame-vector',
  story: 'frame-vector',
  description:
    "videobuf2's get_vaddr_frames() on a user buffer: pins that block a CMA allocation, and the raw-pfn fallback on a VM_IO mapping whose driver moves the buffer",
  machine: {
    ram: 2 ** 30,
    cma: [{ name: 'reserved', base: CMA_BASE, size: CMA_PAGES * 4096 }],
    devices: [{ bdf: '0000:01:00.0', bars: [{ size: 0x1000 }] }],
  },
  setup(ctx): State {
    if (ctx.variant === 'pfn-path') return { ...pfnRaceSetup(ctx, 'remap'), kind: 'pfn' };
    const c = cma_find('reserved')!;
    const p = ctx.spawnProcess('camera-app');
    const area = p.mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    // Touch the first page so the page tables exist; then a freed CMA frame is what the
    // next movable allocation (the buffer page's fault) takes.
    if (p.store(area, [1]) !== 0) throw new Error('touching the scratch page failed');
    const pg = ctx.run(cma_alloc(c, 1, 0, false));
    if (pg === null) throw new Error('cma_alloc of one page failed');
    ctx.run(cma_release(c, pg, 1));
    const buf = area + 4096;
    if (p.store(buf, [0x5a]) !== 0) throw new Error('touching the user buffer failed');
    const f = userFrame(p.task.mm!, buf, 1)!;
    if (f.pfn < CMA_BASE / 4096 || f.pfn >= CMA_BASE / 4096 + CMA_PAGES)
      throw new Error(`the user buffer is at pfn ${hex(f.pfn)}, outside the CMA area`);
    ctx.note(`camera-app's buffer ${hex(buf)} is anon memory at CMA pfn ${hex(f.pfn)}`);
    return { kind: 'cma', p, buf, frame: f.pfn, got: undefined, pinned: false };
  },
  threads: {
    v4l2: {
      kind: 'driver',
      as: (_ctx, s) => (s.kind === 'cma' ? s.p : s.app),
      *run(ctx, s): Op<void> {
        const start = s.kind === 'cma' ? s.buf : s.uaddr;
        const { ret, vec } = yield* getFrames(ctx, start, 1);
        if (ret <= 0) {
          ctx.note(`get_vaddr_frames: ${ret < 0 ? errname(ret) : 0}: the buffer is refused`);
          putFrames(ctx, vec);
          return;
        }
        // Read is_pfns first: frame_vector_pfns() converts a page vector in place.
        const rawPfns = vec.is_pfns;
        const nums = (ctx.since(5, 12) ? fvMedia : fvMm).frame_vector_pfns(vec);
        ctx.note(
          `get_vaddr_frames: ${ret} frame(s), ${rawPfns ? `raw pfn ${hex(nums[0] ?? -1)} (no reference)` : `pinned page(s) from pfn ${hex(nums[0] ?? -1)}`}`,
        );
        if (s.kind === 'cma') {
          s.pinned = true;
          // The buffer stays pinned while the stream runs (the scenario ends first).
          return;
        }
        // vb2_dc_get_userptr: frame_vector_to_pages, then the pages are DMA-mapped.
        const r = toPages(ctx, vec);
        ctx.note(`frame_vector_to_pages: ${r < 0 ? errname(r) : r}`);
        putFrames(ctx, vec);
      },
    },
    other: {
      kind: 'driver',
      *run(ctx, s): Op<void> {
        if (s.kind === 'pfn') {
          yield* zapperThread<PfnState>().run(ctx, s);
          return;
        }
        const c = cma_find('reserved')!;
        const pg = yield* cma_alloc(c, CMA_PAGES, 0, false);
        s.got = pg;
        ctx.note(
          pg === null
            ? `cma_alloc(${CMA_PAGES} pages) failed`
            : `cma_alloc(${CMA_PAGES} pages) = pfn ${hex(pg)}`,
        );
        if (pg !== null) yield* cma_release(c, pg as page, CMA_PAGES);
      },
    },
    victim: {
      kind: 'cpu',
      as: (_ctx, s) => (s.kind === 'pfn' ? s.victim : s.p),
      *run(ctx, s): Op<void> {
        if (s.kind === 'pfn') yield* victimThread<PfnState>().run(ctx, s);
      },
    },
  },
  check(ctx, s) {
    if (s.kind === 'pfn') return null;
    if (s.got === null) {
      // cma_alloc may fail while a frame of the area is briefly referenced or pinned
      // (a GUP call that is about to migrate it, a migration in flight): -EBUSY, and the
      // driver tries again. Tried again here, once every thread is done: whatever still
      // blocks it now is held for good.
      const c = cma_find('reserved')!;
      const pg = ctx.run(cma_alloc(c, CMA_PAGES, 0, false));
      if (pg === null) return 'cma_alloc of the whole CMA area failed, and failed again at the end';
      ctx.note(`cma_alloc(${CMA_PAGES} pages) again at the end = pfn ${hex(pg)}`);
      ctx.run(cma_release(c, pg, CMA_PAGES));
    }
    const f = userFrame(s.p.task.mm!, s.buf, 1);
    if (!f || f.bytes[0] !== 0x5a) return "camera-app's buffer lost its contents";
    return null;
  },
  variants: {
    cma: {
      description: 'get_vaddr_frames pins anon memory in CMA while cma_alloc wants the area',
      expect: { '5.7': 'check', '5.8-5.15': 'cma-pin', '6.1+': 'SAFE' },
    },
    'pfn-path': {
      description: 'get_vaddr_frames on a VM_IO|VM_PFNMAP mapping whose driver moves the buffer',
      expect: { '5.7-5.15': 'stale-pfn', '6.1+': 'SAFE' },
    },
  },
});

export default frameVector;
