/**
 * The trace format: a versioned JSON document that every run produces and that the
 * text (and later HTML) renderings read. Nothing here imports the model.
 */
export const TRACE_FORMAT = 'pfnsim-trace';
export const TRACE_VERSION = 1;

export interface TraceThread {
  readonly tid: number;
  readonly name: string;
}

export interface TraceStepRecord {
  readonly index: number;
  readonly tid: number;
  readonly thread: string;
  readonly obj: string;
  readonly kind: string;
  readonly shared?: boolean;
  readonly what?: string;
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
  readonly error?: string;
}
