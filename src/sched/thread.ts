/**
 * Threads as the scheduler sees them, and the notion of "the running thread".
 *
 * The scheduler sets the running thread before resuming a generator, so a primitive
 * can record which thread holds a lock. Outside any runner (plain synchronous use) the
 * running thread is a per-runner boot thread.
 */
import type { Op, Step } from './step.js';

export interface HeldLock {
  readonly name: string;
  readonly shared: boolean;
}

export class SchedThread {
  /** Locks this thread holds, in acquisition order (for assertions and lockdep). */
  readonly held: HeldLock[] = [];
  /** The step this thread will run next, or null when it has not started or has ended. */
  pending: Step | null = null;
  done = false;
  result: unknown = undefined;
  error: unknown = undefined;
  started = false;

  constructor(
    readonly id: number,
    readonly name: string,
    readonly op: Op<unknown>,
    /** Opaque per-thread context owned by the layer above (e.g. the kernel's task). */
    public ctx: unknown = undefined,
  ) {}

  holds(name: string): boolean {
    return this.held.some((h) => h.name === name);
  }

  dropHeld(name: string): void {
    for (let i = this.held.length - 1; i >= 0; i--) {
      if (this.held[i]!.name === name) {
        this.held.splice(i, 1);
        return;
      }
    }
  }
}

let running: SchedThread | null = null;
const bootThreads: SchedThread[] = [];

/** The thread whose step is executing now (a boot thread when no runner is active). */
export function currentThread(): SchedThread {
  if (running) return running;
  if (bootThreads.length === 0) bootThreads.push(makeBootThread());
  return bootThreads[0]!;
}

function makeBootThread(): SchedThread {
  const op = (function* (): Op<unknown> {
    return undefined;
  })();
  return new SchedThread(-1, 'boot', op);
}

/** Internal: the runners switch the running thread around each resume. */
export function setRunning(t: SchedThread | null): SchedThread | null {
  const prev = running;
  running = t;
  return prev;
}
