/**
 * State snapshots for traces: each process's VMAs (with VM_* flag names) and the present
 * entries in them (PTE, PMD and PUD leaves, found by walking the page tables directly,
 * without scheduling points), the IOMMU's entries, and the frames those entries and the
 * sanitizer's reports name, with their pfnsan owner and generation.
 *
 * Reads model state only; never yields, takes no lock, changes nothing.
 */
import { IOMMU_READ, IOMMU_WRITE, iommu_live_domains } from '../kernel/drivers/iommu/iommu.js';
import type { Kernel } from '../kernel/kernel/kernel.js';
import type { task_struct } from '../kernel/include/linux/sched.js';
import type { mm_struct } from '../kernel/include/linux/mm_types.js';
import type { ptdesc } from '../kernel/include/linux/pgtable.js';
import * as mmFlags from '../kernel/include/linux/mm.js';
import { pte_pfn, pte_present, pte_write } from '../kernel/arch/x86/include/asm/pgtable_types.js';
import {
  pmd_leaf,
  pte_special,
  pmd_special,
  pud_special,
} from '../kernel/arch/x86/include/asm/pgtable.js';
import { pfnsan_gen, pfnsan_owner_of } from '../kernel/mm/pfnsan/pfnsan.js';
import type {
  TraceFrame,
  TraceIommuEntry,
  TraceProcessState,
  TracePte,
  TraceSnapshot,
  TraceVma,
} from '../report/format.js';

/** VM_* flag names by bit, lowest bit first; of aliases, the x86 name (VM_PAT, not VM_ARCH_1). */
const VM_FLAG_NAMES: readonly (readonly [bigint, string])[] = (() => {
  const byBit = new Map<bigint, string>();
  for (const [name, v] of Object.entries(mmFlags)) {
    if (!name.startsWith('VM_') || typeof v !== 'bigint' || v === 0n) continue;
    if ((v & (v - 1n)) !== 0n) continue; // masks (VM_SPECIAL, VM_ACCESS_FLAGS)
    const prev = byBit.get(v);
    if (prev === undefined || /^VM_(HIGH_)?ARCH_/.test(prev)) byBit.set(v, name);
  }
  return [...byBit.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
})();

/** VM_* names of a vm_flags value, lowest bit first; unknown bits as hex. */
export function vmFlagNames(flags: bigint): string[] {
  const out: string[] = [];
  let rest = flags;
  for (const [bit, name] of VM_FLAG_NAMES) {
    if ((flags & bit) !== 0n) {
      out.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0n) out.push(`0x${rest.toString(16)}`);
  return out;
}

/** The user processes of the machine: tasks with an mm, by pid, one per mm. */
function processes(k: Kernel): task_struct[] {
  const table = k.sub.pid_hash as Map<number, task_struct> | undefined;
  if (!table) return [];
  const seen = new Set<mm_struct>();
  const out: task_struct[] = [];
  for (const t of [...table.values()].sort((a, b) => a.pid - b.pid)) {
    if (!t.mm || seen.has(t.mm)) continue;
    seen.add(t.mm);
    out.push(t);
  }
  return out;
}

const SIZE = { pgd: 2 ** 39, pud: 2 ** 30, pmd: 2 ** 21, pte: 2 ** 12 } as const;

/** Present leaf entries of the tables under `t` that map [start, end). */
function walk(t: ptdesc, base: number, start: number, end: number, out: TracePte[]): void {
  const size = SIZE[t.level];
  const first = Math.max(0, Math.floor((start - base) / size));
  const last = Math.min(511, Math.floor((end - 1 - base) / size));
  for (let i = first; i <= last; i++) {
    const addr = base + i * size;
    const v = t.entries[i]!;
    const child = t.children?.[i];
    if (t.level === 'pte') {
      if (v !== 0 && pte_present(v))
        out.push({
          addr,
          pfn: pte_pfn(v),
          level: 'pte',
          write: pte_write(v),
          special: pte_special(v),
        });
      continue;
    }
    if ((t.level === 'pmd' || t.level === 'pud') && v !== 0 && pmd_leaf(v)) {
      out.push({
        addr,
        pfn: pte_pfn(v),
        level: t.level,
        write: pte_write(v),
        special: t.level === 'pmd' ? pmd_special(v) : pud_special(v),
      });
      continue;
    }
    if (child) walk(child, addr, start, end, out);
  }
}

/** A process's VMAs and the present entries inside them. */
export function processState(task: task_struct): TraceProcessState {
  const mm = task.mm!;
  const vmas: TraceVma[] = [];
  const ptes: TracePte[] = [];
  for (const vma of mm.mmap) {
    vmas.push({
      start: vma.vm_start,
      end: vma.vm_end,
      flags: vmFlagNames(vma.vm_flags),
      pgoff: vma.vm_pgoff,
      ...(vma.vm_file ? { file: vma.vm_file.f_path } : {}),
    });
    walk(mm.pgd, 0, vma.vm_start, vma.vm_end, ptes);
  }
  return { pid: task.pid, comm: task.comm, vmas, ptes };
}

/**
 * The IOMMU's entries: every live domain's mappings, one per 4 KiB IOVA page, with the
 * frame generation each was made for.
 */
export function iommuEntries(k: Kernel): TraceIommuEntry[] {
  k.activate();
  const out: TraceIommuEntry[] = [];
  for (const d of iommu_live_domains()) {
    for (const [iovaPfn, e] of [...d.pt].sort((a, b) => a[0] - b[0])) {
      const prot = `${e.prot & IOMMU_READ ? 'r' : '-'}${e.prot & IOMMU_WRITE ? 'w' : '-'}`;
      out.push({ domain: d.obj, iova: iovaPfn * 4096, pfn: e.pfn, prot, gen: e.gen });
    }
  }
  return out;
}

/** Machine state now, as a trace snapshot after `step` (-1: after setup). */
export function takeSnapshot(k: Kernel, step: number, extraPfns: readonly number[]): TraceSnapshot {
  k.activate();
  const procs = processes(k).map(processState);
  const iommu = iommuEntries(k);
  const pfns = new Set<number>(extraPfns);
  for (const p of procs) for (const e of p.ptes) pfns.add(e.pfn);
  for (const e of iommu) pfns.add(e.pfn);
  const staleIommu = new Set(iommu.filter((e) => e.gen !== pfnsan_gen(e.pfn)).map((e) => e.pfn));
  const frames: TraceFrame[] = [...pfns]
    .sort((a, b) => a - b)
    .map((pfn) => ({
      pfn,
      owner: pfnsan_owner_of(pfn).desc,
      gen: pfnsan_gen(pfn),
      ...(staleIommu.has(pfn) ? { stale: true } : {}),
    }));
  return { step, processes: procs, iommu, frames };
}
