/**
 * The lock-order graph pfnsan keeps over lock classes, in the way lockdep keeps its
 * dependency graph: when a thread acquires class B (blocking acquire) while holding
 * class A, the edge A -> B is recorded with the site where it was first seen; a new edge
 * that closes a cycle is a potential deadlock ('lock-cycle').
 *
 * A lock's class is its name with instance numbers and bracketed keys removed
 * ("mm3.pte12.ptl" -> "mm.pte.ptl", "hugetlb_fault_mutex[mapping3:5]" ->
 * "hugetlb_fault_mutex"), as lockdep keys locks by their initialisation site. Nesting
 * within one class (two page-table locks, spin_lock_nested in the kernel) adds no edge.
 * Trylocks add no edge into the acquired class (they cannot wait).
 *
 * @kernel kernel/locking/lockdep.c:check_prev_add, check_noncircular (the idea; the model
 *   neither tracks irq state nor read-recursion)
 */
import type { pfnsan_site } from './pfnsan.js';

export function lock_class(name: string): string {
  return name.replace(/\[[^\]]*\]/g, '').replace(/\d+/g, '');
}

export class LockGraph {
  /** from -> to -> the site where the edge was first seen. */
  readonly edges = new Map<string, Map<string, pfnsan_site>>();
  private readonly classes = new Map<string, string>();

  /** lock_class(name), memoised (every blocking acquire under another lock asks). */
  classOf(name: string): string {
    let c = this.classes.get(name);
    if (c === undefined) {
      c = lock_class(name);
      this.classes.set(name, c);
    }
    return c;
  }

  has(from: string, to: string): boolean {
    return this.edges.get(from)?.has(to) === true;
  }

  add(from: string, to: string, at: pfnsan_site): void {
    let m = this.edges.get(from);
    if (!m) {
      m = new Map();
      this.edges.set(from, m);
    }
    m.set(to, at);
  }

  /** A path of classes from `from` to `to` (both included), or null. */
  path(from: string, to: string): string[] | null {
    const prev = new Map<string, string>();
    const queue = [from];
    const seen = new Set([from]);
    while (queue.length) {
      const c = queue.shift()!;
      if (c === to) {
        const out = [to];
        let x = to;
        while (x !== from) {
          x = prev.get(x)!;
          out.unshift(x);
        }
        return out;
      }
      for (const n of [...(this.edges.get(c)?.keys() ?? [])].sort()) {
        if (seen.has(n)) continue;
        seen.add(n);
        prev.set(n, c);
        queue.push(n);
      }
    }
    return null;
  }
}
