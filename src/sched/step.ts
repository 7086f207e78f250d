/**
 * Steps and operations: the vocabulary shared by the model and the scheduler.
 *
 * A model thread is a generator. Every visible action (lock acquire or release, a
 * lockless read or write of shared state, an atomic, an allocator call, a DMA access)
 * is announced by yielding a {@link Step} *before* it happens; when the scheduler
 * resumes the thread, the action takes effect together with the local work that
 * follows it, up to the next yield. So one Step is one atomic transition.
 */

/** How a step touches its object. `shared` marks reader-side acquires (rwsem read). */
export type StepKind = 'read' | 'write' | 'acquire' | 'release' | 'spawn' | 'exit';

export interface Step {
  /** Stable name of the object touched, e.g. `mm1.mmap_lock` or `pt7[3]`. */
  readonly obj: string;
  readonly kind: StepKind;
  /** Reader side of a reader/writer lock: shared acquires commute with each other. */
  readonly shared?: boolean;
  /**
   * Further objects the step writes: plain state that the code running with the step
   * changes besides `obj` (a reference drop that may free the frame into its zone, an
   * LRU isolation that also takes a reference). The step is dependent with every step
   * of another thread on one of them, whatever the kinds.
   */
  readonly also?: readonly string[];
  /**
   * Further objects the step reads (a pageblock's migratetype read next to a reference
   * change): dependent with steps of other threads that write one of them (a `also`
   * entry, or the `obj` of a step that is not a read).
   */
  readonly reads?: readonly string[];
  /** Free text shown in traces (the function that made the step). */
  readonly what?: string;
  /**
   * For blocking steps: whether the step can run now. A thread whose pending step is
   * not enabled is blocked; a run where every live thread is blocked is a deadlock.
   */
  readonly enabled?: () => boolean;
}

/** A preemptible operation returning T. Compose with `yield*`. */
export type Op<T> = Generator<Step, T, unknown>;

/** Runs an operation that never yields (statically known to be step-free). */
export function isOp(x: unknown): x is Op<unknown> {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as { next?: unknown }).next === 'function' &&
    typeof (x as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function'
  );
}

/** A plain scheduling point with no blocking condition. */
export function* point(obj: string, kind: StepKind, what?: string): Op<void> {
  yield { obj, kind, what };
}

/** Wraps a plain value as an operation (for interfaces that take an Op). */
export function* pure<T>(value: T): Op<T> {
  return value;
}
