/**
 * A pool of worker threads running parallel-worker, shared by any number of parallel
 * explorations ({@link exploreParallel} with `pool`) and module calls ({@link WorkerPool.call}),
 * so that a command running many small explorations starts its workers once.
 *
 * A worker runs one request at a time. Workers start on first use, up to `size`; a
 * worker whose request is cancelled is terminated and replaced on the next use. Each
 * worker keeps the programs it has loaded (by their {@link ProgramModule}), so a program
 * is imported and built once per worker.
 *
 * The worker entry resolves both from the TypeScript sources (tests, through tsx's
 * loader, registered in the worker) and from the built JavaScript (dist/). With
 * `typescript`, the loader is registered from dist too (for program modules written in
 * TypeScript).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ExploreResult } from './explore.js';
import type { ProgramModule } from './program-module.js';

/** The plain-data options of one subtree exploration in a worker (internal). */
export interface WireTask {
  readonly prefix: readonly number[];
  readonly sleep: readonly number[];
}

/** Messages between the main thread and a worker (internal). */
export type ToWorker =
  | {
      readonly type: 'task';
      readonly id: number;
      readonly program: ProgramModule;
      readonly task: WireTask;
      readonly opts: Record<string, unknown> & {
        readonly reportProgress: boolean;
        readonly collectSchedules?: boolean;
      };
    }
  | { readonly type: 'call'; readonly id: number; readonly call: ProgramModule };
export type FromWorker =
  | {
      readonly type: 'progress';
      readonly id: number;
      readonly executions: number;
      readonly totalSteps: number;
      readonly fractionDone: number;
    }
  | { readonly type: 'callProgress'; readonly id: number; readonly data: unknown }
  | {
      readonly type: 'result';
      readonly id: number;
      readonly result: ExploreResult;
      readonly schedules?: number[][];
    }
  | { readonly type: 'value'; readonly id: number; readonly value: unknown }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

/** A request ended because its worker was terminated ({@link WorkerPool.cancel}). */
export class Cancelled extends Error {
  constructor() {
    super('cancelled');
    this.name = 'Cancelled';
  }
}

/** Whether a module specifier names a TypeScript file. */
export function isTypeScript(spec: string): boolean {
  return /\.[cm]?tsx?$/.test(spec.replace(/[?#].*$/, ''));
}

/** Starts a worker running parallel-worker, from sources or from dist. */
function startWorker(typescript: boolean): Worker {
  const self = import.meta.url;
  const fromTs = isTypeScript(new URL(self).pathname);
  const entry = new URL(fromTs ? './parallel-worker.ts' : './parallel-worker.js', self).href;
  if (!fromTs && !typescript) return new Worker(new URL(entry));
  // tsx's ESM loader, registered inside the worker before the entry is imported.
  const req = createRequire(self);
  const api = pathToFileURL(req.resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
  const code =
    `import(${JSON.stringify(api)}).then((m) => { m.register(); ` +
    `return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { eval: true });
}

type Pending = {
  readonly resolve: (m: FromWorker) => void;
  readonly reject: (e: unknown) => void;
  readonly onProgress: ((m: FromWorker) => void) | undefined;
};

/** One worker of a pool: one request at a time. */
export class PoolWorker {
  private readonly worker: Worker;
  private pending: Pending | undefined;
  private ended: unknown = undefined;
  private nextId = 0;

  constructor(typescript: boolean) {
    this.worker = startWorker(typescript);
    this.worker.on('message', (m: FromWorker) => {
      const p = this.pending;
      if (!p) return;
      if (m.type === 'progress' || m.type === 'callProgress') p.onProgress?.(m);
      else {
        this.pending = undefined;
        if (m.type === 'error') p.reject(new Error(m.message));
        else p.resolve(m);
      }
    });
    this.worker.on('error', (e) => this.end(e));
    this.worker.on('exit', (code) => this.end(new Error(`worker thread exited with code ${code}`)));
  }

  private end(e: unknown): void {
    this.ended ??= e;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(this.ended);
  }

  /** Whether the worker can take requests. */
  get alive(): boolean {
    return this.ended === undefined;
  }

  /** Sends a request (its `id` is set here); resolves to the worker's answer. */
  request(
    msg: ToWorker,
    onProgress?: (m: FromWorker) => void,
  ): Promise<Extract<FromWorker, { type: 'result' | 'value' }>> {
    if (this.pending) throw new Error('pool worker: a request is already running');
    if (this.ended !== undefined) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.pending = {
        resolve: resolve as (m: FromWorker) => void,
        reject,
        onProgress,
      };
      this.worker.postMessage({ ...msg, id: this.nextId++ });
    });
  }

  /** Terminates the worker; a running request rejects with {@link Cancelled}. */
  async terminate(): Promise<void> {
    this.end(new Cancelled());
    await this.worker.terminate();
  }
}

/** A pool of up to `size` workers (see the module comment). */
export class WorkerPool {
  readonly size: number;
  private readonly typescript: boolean;
  private readonly idle: PoolWorker[] = [];
  private readonly waiting: ((w: PoolWorker) => void)[] = [];
  private readonly all = new Set<PoolWorker>();
  private closed = false;

  constructor(size: number, opts: { readonly typescript?: boolean } = {}) {
    if (!Number.isInteger(size) || size < 1)
      throw new Error(`worker pool: size must be a whole number of at least 1, not ${size}`);
    this.size = size;
    this.typescript = opts.typescript ?? false;
  }

  /** A free worker, started if fewer than `size` exist, else the next one released. */
  acquire(): Promise<PoolWorker> {
    if (this.closed) return Promise.reject(new Error('worker pool: closed'));
    while (this.idle.length > 0) {
      const w = this.idle.pop()!;
      if (w.alive) return Promise.resolve(w);
      this.all.delete(w);
    }
    if (this.all.size < this.size) {
      const w = new PoolWorker(this.typescript);
      this.all.add(w);
      return Promise.resolve(w);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Gives a worker back after its request ended. */
  release(w: PoolWorker): void {
    if (!w.alive) {
      this.all.delete(w);
      if (this.waiting.length > 0 && !this.closed) {
        const n = new PoolWorker(this.typescript);
        this.all.add(n);
        this.waiting.shift()!(n);
      }
      return;
    }
    const next = this.waiting.shift();
    if (next) next(w);
    else this.idle.push(w);
  }

  /** Terminates a busy worker (its request rejects with {@link Cancelled}) and releases it. */
  cancel(w: PoolWorker): void {
    void w.terminate().then(() => this.release(w));
  }

  /**
   * Calls `call.export` of module `call.module` in a worker, with `call.args` (they must
   * survive structured cloning) followed by a progress function whose argument reaches
   * `onProgress` here; resolves to the (awaited) return value, which must survive
   * structured cloning too. An exception in the worker rejects with its message.
   */
  async call(call: ProgramModule, onProgress?: (data: unknown) => void): Promise<unknown> {
    const w = await this.acquire();
    try {
      const m = await w.request(
        { type: 'call', id: 0, call },
        onProgress ? (p) => p.type === 'callProgress' && onProgress(p.data) : undefined,
      );
      return m.type === 'value' ? m.value : undefined;
    } finally {
      this.release(w);
    }
  }

  /** Terminates every worker. */
  async close(): Promise<void> {
    this.closed = true;
    const ws = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
