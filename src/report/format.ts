/**
 * The trace format: a versioned JSON document that every run produces and that the
 * text and HTML renderings read. Nothing here imports the model.
 *
 * Version 2 adds: thread kinds, locks held after each step, sanitizer reports with their
 * three call paths, the run's verdict, and state snapshots (processes' VMAs and present
 * entries, IOMMU entries, frames with owners and generations) after selected steps.
 */
export const TRACE_FORMAT = 'pfnsim-trace';
export const TRACE_VERSION = 2;

export interface TraceThread {
  readonly tid: number;
  readonly name: string;
  /** What the thread stands for: a CPU task, a driver/kernel thread, a device's DMA engine,
   *  or the IOMMU. Default 'cpu'. */
  readonly kind?: 'cpu' | 'driver' | 'dma' | 'iommu' | 'kthread';
}

export interface TraceStepRecord {
  readonly index: number;
  readonly tid: number;
  readonly thread: string;
  readonly obj: string;
  readonly kind: string;
  readonly shared?: boolean;
  /** Further objects the step writes, and reads (Step.also, Step.reads). */
  readonly also?: readonly string[];
  readonly reads?: readonly string[];
  readonly what?: string;
  /** Locks the stepping thread holds after the step. */
  readonly held?: readonly string[];
}

export interface TraceLogLine {
  readonly level: number;
  readonly text: string;
  readonly ns: number;
  readonly step: number;
  readonly thread: string;
}

/** A note the scenario adds to the trace (what a thread observed, a result). */
export interface TraceNote {
  readonly step: number;
  readonly thread: string;
  readonly text: string;
}

/** A kernel call path: innermost frame first, as "fn (file)". */
export type TraceCallPath = readonly string[];

/** Where something happened: the thread, the step index (-1: setup) and the call path. */
export interface TraceSite {
  readonly thread: string;
  readonly step: number;
  readonly path: TraceCallPath;
  readonly what: string;
}

/** A sanitizer (pfnsan) report. */
export interface TraceReport {
  /** Stable code, e.g. 'stale-pfn', 'use-after-free', 'cross-owner'. */
  readonly code: string;
  readonly title: string;
  readonly pfn: number;
  readonly thread: string;
  readonly step: number;
  /** Where the pfn was obtained, where its guarantee ended, where it was used. */
  readonly obtained?: TraceSite;
  readonly ended?: TraceSite;
  readonly used: TraceSite;
  /** The frame's owner history, oldest first. */
  readonly history: readonly {
    readonly gen: number;
    readonly owner: string;
    readonly step: number;
    readonly thread: string;
  }[];
  readonly text: readonly string[];
}

export interface TraceVma {
  readonly start: number;
  readonly end: number;
  /** VM_* flag names, e.g. ['VM_READ', 'VM_PFNMAP']. */
  readonly flags: readonly string[];
  readonly pgoff: number;
  readonly file?: string;
}

export interface TracePte {
  readonly addr: number;
  readonly pfn: number;
  /** 'pte' | 'pmd' | 'pud'. */
  readonly level: string;
  readonly write: boolean;
  readonly special: boolean;
}

export interface TraceProcessState {
  readonly pid: number;
  readonly comm: string;
  readonly vmas: readonly TraceVma[];
  readonly ptes: readonly TracePte[];
}

export interface TraceIommuEntry {
  readonly domain: string;
  readonly iova: number;
  readonly pfn: number;
  readonly prot: string;
  /** The frame generation the entry was made for. */
  readonly gen: number;
}

export interface TraceFrame {
  readonly pfn: number;
  readonly owner: string;
  readonly gen: number;
  /** Mapped by a live user PTE or IOMMU entry made for an older generation. */
  readonly stale?: boolean;
}

/** Machine state after a step (-1: after setup). */
export interface TraceSnapshot {
  readonly step: number;
  readonly processes: readonly TraceProcessState[];
  readonly iommu: readonly TraceIommuEntry[];
  readonly frames: readonly TraceFrame[];
}

/** 'SAFE' or the violation: a report code, 'BUG', 'WARN', 'deadlock', 'check: ...'. */
export type TraceVerdict = string;

export interface Trace {
  readonly format: typeof TRACE_FORMAT;
  readonly version: typeof TRACE_VERSION;
  readonly scenario: string;
  readonly kernel: {
    readonly version: string;
    readonly config: Readonly<Record<string, boolean | number>>;
  };
  readonly threads: readonly TraceThread[];
  readonly schedule: readonly number[];
  readonly status: string;
  readonly steps: readonly TraceStepRecord[];
  readonly log: readonly TraceLogLine[];
  readonly notes: readonly TraceNote[];
  readonly reports: readonly TraceReport[];
  /** Snapshots, in step order; the viewer shows the latest one at or before a step. */
  readonly snapshots: readonly TraceSnapshot[];
  readonly verdict?: TraceVerdict;
  /** The command that replays this execution. */
  readonly replay?: string;
  readonly error?: string;
}
