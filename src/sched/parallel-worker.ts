/**
 * Worker thread entry of parallel.ts: imports the program module named in workerData,
 * then explores each task it is sent with {@link exploreSubtree} and posts the result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { exploreSubtree } from './explore.js';
import type { FromWorker, ToWorker } from './parallel.js';
import { loadProgram, type ProgramModule } from './program-module.js';

const port = parentPort;
if (!port) throw new Error('parallel-worker: not running in a worker thread');
const { program } = workerData as { program: ProgramModule };
const post = (m: FromWorker): void => port.postMessage(m);

loadProgram(program).then(
  (factory) => {
    port.on('message', (m: ToWorker) => {
      if (m.type === 'exit') {
        port.close();
        return;
      }
      try {
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
      } catch (e) {
        post({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      }
    });
    post({ type: 'ready' });
  },
  (e: unknown) => post({ type: 'error', message: e instanceof Error ? e.message : String(e) }),
);
