/**
 * A CPU fault (thread R: a user read of the BO's second page) racing a move of the BO
 * from VRAM to system memory (thread M: the GEM_MOVE ioctl) under fixed schedules
 * (R-REV-4, R-REV-1). The reservation orders them: either the fault holds it and inserts
 * the old VRAM pfn 0x180001 before the move's ttm_bo_unmap_virtual (which then zaps it),
 * or the move holds it and the fault (trylock fails: mmap_lock dropped, wait, VM_FAULT_RETRY,
 * retry) inserts the new system page. After both ends no PTE maps the old VRAM frame.
 * Machine: see pfngpu.fixtures.ts.
 */
import { describe, expect, it } from 'vitest';
import type { Runner, SchedThread } from '../../../../../sched/index.js';
import {
  PFNGPU_GEM_DOMAIN_SYSTEM,
  PFNGPU_GEM_DOMAIN_VRAM,
  PFNGPU_IOCTL_GEM_MOVE,
} from '../pfngpu/pfngpu.js';
import { VRAM_PFN, fill, gpuMachine } from '../pfngpu/pfngpu.fixtures.js';

function setup() {
  const env = gpuMachine('6.12');
  const h = env.create(0x2000, PFNGPU_GEM_DOMAIN_VRAM);
  const a = env.mmap(h, 0x2000);
  // contents written through the kernel's view of VRAM, no PTE left behind
  expect(env.store(a + 0x1000, fill(4, 0x42))).toBe('ok');
  expect(env.move(h, PFNGPU_GEM_DOMAIN_SYSTEM)).toBe(0);
  expect(env.move(h, PFNGPU_GEM_DOMAIN_VRAM)).toBe(0);
  expect(env.pfnAt(a + 0x1000)).toBeNull();
  const bo = env.bo(h);
  const r = env.k.runner();
  const tR = r.spawn('R', env.loadOp(a + 0x1000, 4), env.task);
  const tM = r.spawn(
    'M',
    env.ioctlOp(PFNGPU_IOCTL_GEM_MOVE, { handle: h, domain: PFNGPU_GEM_DOMAIN_SYSTEM }),
    env.task,
  );
  return { env, h, a, bo, r, tR, tM };
}

/** Steps t until pred() holds, t ends, or t cannot run. */
function runUntil(r: Runner, t: SchedThread, pred: () => boolean = () => false): void {
  while (!t.done && !pred()) if (!r.step(t.id)) break;
}

function finish(r: Runner, first: SchedThread, second: SchedThread): void {
  for (let i = 0; i < 10000 && !(first.done && second.done); i++) {
    if (!r.step(first.id) && !r.step(second.id)) break;
  }
  expect(first.done && second.done).toBe(true);
}

describe('ttm_bo_vm_fault vs ttm_bo_handle_move_mem (fixed schedules)', () => {
  it('R-REV-4: the fault holds the reservation: it inserts the old VRAM pfn 0x180001, the move waits, then zaps it', () => {
    const { env, a, bo, r, tR, tM } = setup();
    runUntil(r, tR, () => bo.base.resv.lock.owner === tR);
    expect(bo.base.resv.lock.owner).toBe(tR);
    runUntil(r, tM); // blocks on the reservation
    expect(tM.done).toBe(false);
    runUntil(r, tR);
    expect(tR.done).toBe(true);
    expect(tR.result).toEqual(fill(4, 0x42));
    expect(env.pfnAt(a + 0x1000)).toBe(VRAM_PFN + 1);
    runUntil(r, tM);
    expect(tM.result).toBe(0);
    expect(env.pfnAt(a + 0x1000)).toBeNull();
    expect(env.load(a + 0x1000, 4)).toEqual(fill(4, 0x42));
    expect(env.pfnAt(a + 0x1000)).toBe(bo.ttm!.pages[1]);
  });

  it('R-REV-4: the move holds the reservation: the fault drops mmap_lock, waits, retries and inserts the new system page', () => {
    const { env, a, bo, r, tR, tM } = setup();
    runUntil(r, tM, () => bo.base.resv.lock.owner === tM);
    runUntil(r, tR); // trylock fails, mmap_lock dropped, blocks in dma_resv_lock
    expect(tR.done).toBe(false);
    expect(tR.pending?.obj).toBe(bo.base.resv.lock.name);
    expect(env.task.mm!.mmap_lock.readers).not.toContain(tR);
    runUntil(r, tM);
    expect(tM.result).toBe(0);
    runUntil(r, tR);
    expect(tR.result).toEqual(fill(4, 0x42));
    expect(env.pfnAt(a + 0x1000)).toBe(bo.ttm!.pages[1]);
    expect(env.specialAt(a + 0x1000)).toBe(true);
  });

  it('R-REV-4: for every switch point (M runs k steps, then R, then both to the end) no PTE maps the old VRAM frame afterwards', () => {
    const total = (() => {
      const { r, tM } = setup();
      runUntil(r, tM);
      return r.clock;
    })();
    expect(total).toBeGreaterThan(10);
    for (const mFirst of [true, false]) {
      for (let k = 0; k <= total; k++) {
        const { env, a, bo, r, tR, tM } = setup();
        const [x, y] = mFirst ? [tM, tR] : [tR, tM];
        for (let i = 0; i < k && !x.done; i++) if (!r.step(x.id)) break;
        runUntil(r, y);
        finish(r, x, y);
        expect(tM.result).toBe(0);
        expect(tR.result).toEqual(fill(4, 0x42));
        const pfn = env.pfnAt(a + 0x1000);
        expect(pfn === null || pfn === bo.ttm!.pages[1]).toBe(true);
        expect(pfn).not.toBe(VRAM_PFN + 1);
      }
    }
  });
});
