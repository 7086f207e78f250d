/**
 * The modelled kernel instance: the state Linux keeps in globals (the log buffer,
 * tainted_mask, jiffies, the memmap, iomem_resource, the task list), held per instance
 * so several machines can exist in one process.
 *
 * Kernel code reaches the instance it runs in through {@link currentKernel}, as kernel
 * code reaches its globals. A kernel instance becomes current when it is created and
 * whenever {@link Kernel.enter} runs an operation in it; nothing reads the environment.
 */
import { runOp, Runner, type Op, type RunnerOptions, type SchedThread } from '../../sched/index.js';
import { resolveConfig, type ConfigValue, type KernelConfig } from '../kconfig.js';
import { parseVersion } from '../version.js';

export interface LogLine {
  /** printk level 0 (KERN_EMERG) .. 7 (KERN_DEBUG). */
  readonly level: number;
  readonly text: string;
  /** Logical time in nanoseconds since boot. */
  readonly ns: number;
  /** The scheduler step during which the line was printed (-1 outside a runner). */
  readonly step: number;
  /** Name of the thread that printed it. */
  readonly thread: string;
}

/** Per-subsystem state is attached here by the subsystems themselves. */
export interface KernelSubsystems {
  [key: string]: unknown;
}

export interface KernelOptions {
  readonly version: string;
  readonly config?: Readonly<Record<string, ConfigValue | string>>;
}

let current: Kernel | null = null;

/** The kernel instance the running code belongs to. */
export function currentKernel(): Kernel {
  if (!current) throw new Error('no kernel instance: create one with new Kernel({ version })');
  return current;
}

/**
 * One modelled kernel: its version, configuration and the state Linux keeps in globals.
 * @kernel kernel/printk/printk.c:log_buf, kernel/panic.c:tainted_mask,
 *   kernel/time/jiffies.c:jiffies (globals, all versions)
 */
export class Kernel {
  readonly version: { readonly name: string; readonly code: number };
  readonly config: KernelConfig;
  /** dmesg. */
  readonly log: LogLine[] = [];
  /** tainted_mask bits (TAINT_*). */
  tainted_mask = 0;
  /** debug_locks: cleared when a taint makes lockdep unreliable, or lockdep has reported. */
  debug_locks = true;
  /** Logical time; advanced by one microsecond per scheduler step, and by msleep(). */
  ktime_ns = 0;
  /** The step index of the current runner, for log lines. */
  step = -1;
  /** Sites whose _ONCE warning has fired. */
  readonly onceFired = new Set<string>();
  /** Per-subsystem state (memmap, allocator, tasks, ...). */
  readonly sub: KernelSubsystems = {};
  /** Deterministic id counters, per kind. */
  private readonly ids = new Map<string, number>();

  constructor(opts: KernelOptions) {
    this.version = parseVersion(opts.version);
    this.config = resolveConfig(this.version.code, opts.config ?? {});
    current = this;
  }

  /** Makes this instance current (kernel code called directly from tests or the API). */
  activate(): this {
    current = this;
    return this;
  }

  /** jiffies at CONFIG_HZ. */
  get jiffies(): number {
    const hz = this.config.CONFIG_HZ as number;
    return Math.floor((this.ktime_ns * hz) / 1e9);
  }

  /** A fresh id of the given kind, counted per instance (deterministic). */
  nextId(kind: string): number {
    const n = (this.ids.get(kind) ?? 0) + 1;
    this.ids.set(kind, n);
    return n;
  }

  /** Runs an operation to completion in this kernel, as `thread` or a fresh thread. */
  run<T>(op: Op<T>, as: string | SchedThread = 'kernel'): T {
    const prev = current;
    current = this;
    try {
      return runOp(this.clocked(op), as);
    } finally {
      current = prev ?? this;
    }
  }

  /** A multi-thread runner whose steps advance this kernel's clock. */
  runner(opts: RunnerOptions = {}): Runner {
    current = this;
    const hooks = opts.hooks ?? {};
    return new Runner({
      ...opts,
      hooks: {
        beforeStep: (t, s, i) => {
          current = this;
          this.ktime_ns += 1000;
          this.step = i;
          hooks.beforeStep?.(t, s, i);
        },
        afterStep: hooks.afterStep,
      },
    });
  }

  /** Wraps an op so each of its steps advances the clock by 1 us. */
  private *clocked<T>(op: Op<T>): Op<T> {
    let r = op.next();
    while (!r.done) {
      const sent: unknown = yield r.value;
      this.ktime_ns += 1000;
      current = this;
      r = op.next(sent);
    }
    return r.value;
  }
}
