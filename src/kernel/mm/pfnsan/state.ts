/**
 * pfnsan's per-kernel state and the helpers every part of it shares: whether the
 * sanitizer is on (CONFIG_PFNSAN), and the current site (thread, step, call path).
 *
 * The state hangs off the kernel instance (`k.sub.pfnsan`), created on first use, so a
 * run with CONFIG_PFNSAN=n never allocates it and every entry point returns after one
 * cached check.
 *
 * @kernel mm/kasan/common.c (the role: model-only sanitizer state; no kernel counterpart)
 */
import { currentThread } from '../../../sched/index.js';
import { call_path_lazy, type Frame } from '../../kernel/callpath.js';
import { currentKernel, type Kernel } from '../../kernel/kernel.js';
import type { pfnsan_owner, pfnsan_report, pfnsan_site } from './pfnsan.js';
import { OwnerTable } from './owners.js';
import { LeaseTable } from './leases.js';
import { LockGraph } from './locks.js';
import { SpecialPtes } from './special.js';

export class PfnsanState {
  readonly owners = new OwnerTable();
  readonly leases = new LeaseTable();
  readonly locks = new LockGraph();
  readonly special = new SpecialPtes();
  readonly reports: pfnsan_report[] = [];
  /** anon owners -> the mm whose teardown means the owner is gone. */
  readonly liveness = new Map<pfnsan_owner, { readonly id: number; readonly mm_users: number }>();
  /** Dedup keys of the reports made (each distinct report once per run). */
  readonly reported = new Set<string>();
}

let cacheK: Kernel | null = null;
let cacheS: PfnsanState | null = null;

/**
 * The sanitizer state of the current kernel, or null when CONFIG_PFNSAN is off or no
 * kernel exists (plain scheduler tests): every entry point starts with this check.
 */
export function san(): PfnsanState | null {
  let k: Kernel;
  try {
    k = currentKernel();
  } catch {
    return null;
  }
  if (k === cacheK) return cacheS;
  cacheK = k;
  if (k.config.CONFIG_PFNSAN !== true) cacheS = null;
  else cacheS = (k.sub.pfnsan as PfnsanState | undefined) ??= new PfnsanState();
  return cacheS;
}

/** The running thread's name and the kernel's current step. */
export function now(): { thread: string; step: number } {
  return { thread: currentThread().name, step: currentKernel().step };
}

/**
 * The current site, with the kernel call path (innermost first) minus pfnsan's frames.
 * The stack is captured here and unwound when `path` is first read (a report), so
 * recording a site on every step stays cheap; the result is the same either way. While
 * the explorer searches, call paths are not captured (kernel/callpath.ts) and `path` is
 * empty.
 */
export function site(what: string): pfnsan_site {
  const frames = call_path_lazy();
  if (!frames) return { ...now(), path: [], what };
  const s = { ...now(), what } as { thread: string; step: number; what: string; path: Frame[] };
  Object.defineProperty(s, 'path', {
    enumerable: true,
    configurable: true,
    get(): Frame[] {
      // pfnsan's own frames and the Kernel instance's runner (kernel/kernel.ts) are not
      // kernel code.
      const path = frames().filter(
        (f) => !f.file.startsWith('mm/pfnsan/') && f.file !== 'kernel/kernel.c',
      );
      Object.defineProperty(s, 'path', { value: path, enumerable: true, writable: false });
      return path;
    },
  });
  return s;
}
