/**
 * Wakeup trees for optimal DPOR (Abdulla, Aronis, Jonsson, Sagonas, "Optimal dynamic
 * partial order reduction", POPL 2014, Algorithm 2; "Source sets: a foundation for
 * optimal dynamic partial order reduction", JACM 64(4) 2017, Section 6).
 *
 * A wakeup tree at a state E is an ordered tree of thread steps: each root-to-leaf path
 * is a sequence of steps that must be explored from E. Children are ordered by insertion
 * (the order ≺ of the paper); the leftmost child is explored first.
 *
 * Weak initials. For a sequence w after E, thread p is a weak initial of w when either
 * p's first step in w has no step of w before it that happens before it (no earlier
 * step of w of the same thread or dependent with it), or p has no step in w and its
 * next step after E is independent of every step of w.
 */

/** What the tree needs of a step: its thread and enough to test dependency. */
export interface WakeupStep<S> {
  readonly tid: number;
  readonly step: S;
}

export interface WakeupNode<S> extends WakeupStep<S> {
  readonly children: WakeupNode<S>[];
}

/** Whether the step at index `idx` of `w` has no happens-before predecessor in `w`. */
export function isInitial<S>(
  w: readonly WakeupStep<S>[],
  idx: number,
  dep: (a: S, b: S) => boolean,
): boolean {
  const x = w[idx]!;
  for (let j = 0; j < idx; j++) {
    const y = w[j]!;
    if (y.tid === x.tid || dep(y.step, x.step)) return false;
  }
  return true;
}

/**
 * Whether thread `tid`, whose next step (when it has none in `w`) is `next`, is a weak
 * initial of `w`. Returns the index of its step in `w` when it has one, -1 when it is a
 * weak initial without a step in `w`, and null when it is not a weak initial.
 */
export function weakInitial<S>(
  w: readonly WakeupStep<S>[],
  tid: number,
  next: S | null,
  dep: (a: S, b: S) => boolean,
): number | null {
  const idx = w.findIndex((x) => x.tid === tid);
  if (idx >= 0) return isInitial(w, idx, dep) ? idx : null;
  if (next === null) return null;
  for (const x of w) if (dep(x.step, next)) return null;
  return -1;
}

/**
 * Inserts the sequence `v` into the tree whose root children are `roots`
 * (insert[E](v, wut) of the paper): walks down from the root, at each node taking the
 * leftmost child that is a weak initial of what is left of v (removing that thread's
 * step from v when it has one); stops without change when it reaches a leaf or uses up
 * v (an existing branch already covers v); otherwise appends the rest of v as a new
 * rightmost branch. Returns true when the tree changed.
 */
export function insertWakeup<S>(
  roots: WakeupNode<S>[],
  v: readonly WakeupStep<S>[],
  dep: (a: S, b: S) => boolean,
): boolean {
  let cur = roots;
  const w = [...v];
  for (;;) {
    if (w.length === 0) return false;
    let matched: WakeupNode<S> | null = null;
    for (const c of cur) {
      const k = weakInitial(w, c.tid, c.step, dep);
      if (k === null) continue;
      if (k >= 0) w.splice(k, 1);
      matched = c;
      break;
    }
    if (matched === null) {
      cur.push(chain(w));
      return true;
    }
    // A leaf: its path is a prefix of (an extension of) v.
    if (matched.children.length === 0) return false;
    cur = matched.children;
  }
}

function chain<S>(w: readonly WakeupStep<S>[]): WakeupNode<S> {
  const [head, ...rest] = w;
  return { tid: head!.tid, step: head!.step, children: rest.length > 0 ? [chain(rest)] : [] };
}

/** A deep copy of a list of subtrees. */
export function cloneWakeup<S>(roots: readonly WakeupNode<S>[]): WakeupNode<S>[] {
  return roots.map((r) => ({ tid: r.tid, step: r.step, children: cloneWakeup(r.children) }));
}

/** Number of leaves (sequences) below the given roots. */
export function wakeupLeaves<S>(roots: readonly WakeupNode<S>[]): number {
  let n = 0;
  for (const r of roots) n += r.children.length === 0 ? 1 : wakeupLeaves(r.children);
  return n;
}
