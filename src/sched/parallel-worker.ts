/**
 * Worker thread entry of pool.ts. Answers one request at a time: a 'task' explores a
 * subtree of the program named in it with {@link exploreSubtree} (each program is
 * imported and built once per worker, then reused); a 'call' runs a module export
 * (see {@link WorkerPool.call}).
 */
import { parentPort } from 'node:worker_threads';
import { exploreSubtree, type ProgramFactory } from './explore.js';
import type { FromWorker, ToWorker } from './pool.js';
import { loadProgram, moduleUrl, type ProgramModule } from './program-module.js';

const port = parentPort;
if (!port) throw new Error('parallel-worker: not running in a worker thread');
const post = (m: FromWorker): void => port.postMessage(m);
const programs = new Map<string, Promise<ProgramFactory>>();

function program(p: ProgramModule): Promise<ProgramFactory> {
  const key = JSON.stringify(p);
  let f = programs.get(key);
  if (!f) {
    f = loadProgram(p);
    programs.set(key, f);
  }
  return f;
}

async function call(c: ProgramModule, progress: (data: unknown) => void): Promise<unknown> {
  const mod = (await import(moduleUrl(c.module))) as Record<string, unknown>;
  const fn = mod[c.export];
  if (typeof fn !== 'function')
    throw new Error(`module ${c.module}: export '${c.export}' is not a function`);
  return (fn as (...a: unknown[]) => unknown)(...(c.args ?? []), progress);
}

async function answer(m: ToWorker): Promise<void> {
  if (m.type === 'call') {
    const value = await call(m.call, (data) => post({ type: 'callProgress', id: m.id, data }));
    post({ type: 'value', id: m.id, value });
    return;
  }
  const factory = await program(m.program);
  const { reportProgress, collectSchedules, ...opts } = m.opts;
  const schedules: number[][] = [];
  const result = exploreSubtree(
    factory,
    {
      ...opts,
      ...(reportProgress
        ? {
            onProgress: (p) =>
              post({
                type: 'progress',
                id: m.id,
                executions: p.executions,
                totalSteps: p.totalSteps,
                fractionDone: p.fractionDone,
              }),
          }
        : {}),
      ...(collectSchedules
        ? {
            onExecution: (run, { sleepBlocked }) => {
              if (!sleepBlocked) schedules.push([...run.schedule]);
            },
          }
        : {}),
    },
    m.task,
  );
  post({ type: 'result', id: m.id, result, ...(collectSchedules ? { schedules } : {}) });
}

port.on('message', (m: ToWorker) => {
  answer(m).catch((e: unknown) =>
    post({
      type: 'error',
      id: m.id,
      message:
        m.type === 'call'
          ? e instanceof Error
            ? e.message
            : String(e)
          : e instanceof Error
            ? (e.stack ?? e.message)
            : String(e),
    }),
  );
});
