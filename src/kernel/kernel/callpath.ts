/**
 * Call paths for reports: the modelled kernel functions on the stack, innermost first,
 * with the kernel file each one models (src/kernel/mm/memory.ts -> mm/memory.c).
 * Read from the JavaScript stack, which is deterministic for the same code and schedule.
 */
export interface Frame {
  readonly fn: string;
  readonly file: string;
}

const FRAME = /^\s*at (?:Generator\.)?([A-Za-z_$][\w$.]*) \((?:file:\/\/)?(.*?):\d+:\d+\)$/;

/** Maps a model source path to the kernel file it models. */
export function kernelFile(path: string): string | null {
  const i = path.lastIndexOf('/src/kernel/');
  if (i < 0 || /\.test\.(ts|js)$/.test(path)) return null;
  // A kernel file split across several model files (mm/memory.fault.ts) maps to the one
  // kernel file (mm/memory.c).
  let rel = path
    .slice(i + '/src/kernel/'.length)
    .replace(/\.(ts|js)$/, '')
    .replace(/\.[a-z_]+$/, '');
  if (rel.startsWith('include/')) return `${rel}.h`;
  if (rel === 'version' || rel === 'kconfig') return null;
  rel = rel.replace(/^arch\/x86\//, 'arch/x86/');
  return `${rel}.c`;
}

/**
 * The kernel frames of the current stack, innermost first, skipping `skip` of them: the
 * model's stack unwinder for reports.
 * @kernel arch/x86/kernel/dumpstack.c:show_trace_log_lvl (all versions)
 */
export function call_path(skip = 0): Frame[] {
  return parseStack(captureStack()).slice(skip);
}

let capturing = true;

/**
 * Turns the capture of {@link call_path_lazy} on or off; returns the previous setting.
 * Model option, not kernel state: the explorer turns it off while it searches (a site's
 * call path is printed, never decides anything) and the trace of a counterexample is
 * replayed with it on, so every printed report has its call paths.
 */
export function set_call_path_capture(on: boolean): boolean {
  const prev = capturing;
  capturing = on;
  return prev;
}

/**
 * The current stack captured now and unwound on first use: for sites recorded on every
 * step (lock acquisitions, leases, owner changes) whose call path is printed only if a
 * report names them. Capturing costs microseconds; formatting costs more. With capture
 * off ({@link set_call_path_capture}), null: the site has no call path.
 */
export function call_path_lazy(): (() => Frame[]) | null {
  if (!capturing) return null;
  const holder = captureStack();
  let frames: Frame[] | null = null;
  return () => (frames ??= parseStack(holder));
}

function captureStack(): { stack?: string } {
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = 60;
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder);
  Error.stackTraceLimit = saved;
  return holder;
}

function parseStack(holder: { stack?: string }): Frame[] {
  const stack = holder.stack ?? '';
  const out: Frame[] = [];
  for (const line of stack.split('\n').slice(1)) {
    const m = FRAME.exec(line);
    if (!m) continue;
    const fn = m[1]!.replace(/^.*\./, '');
    if (fn === 'next' || fn === 'call_path' || fn === 'call_path_lazy') continue;
    const file = kernelFile(m[2]!);
    if (!file || file.startsWith('kernel/callpath') || file.startsWith('kernel/panic')) continue;
    out.push({ fn, file });
  }
  return out;
}

export function formatCallPath(frames: readonly Frame[]): string[] {
  return frames.map((f) => ` ${f.fn}`);
}
