/**
 * pfnsim's public API (`import { defineScenario, checkScenario } from 'pfnsim'`).
 * Kernel functions are imported from their model files, e.g.
 * `import { remap_pfn_range } from 'pfnsim/kernel/mm/memory.pfnmap.js'`.
 */
export {
  defineScenario,
  isScenario,
  concreteScenarios,
  resolveExpectations,
  expectedFor,
  verdictMatches,
  verdictCode,
  ScenarioError,
  type Scenario,
  type AnyScenario,
  type ScenarioSpec,
  type ScenarioContext,
  type ScenarioMachine,
  type ConcreteScenario,
  type ThreadDef,
  type ThreadFn,
  type ThreadKind,
  type Expectation,
  type ExpectMap,
  type VariantSpec,
} from './scenario/scenario.js';
export {
  runScenario,
  checkScenario,
  replayCommand,
  type RunOptions,
  type CheckOptions,
  type CheckResult,
  type Counterexample,
} from './scenario/execute.js';
export { takeSnapshot, vmFlagNames } from './scenario/snapshot.js';
export { bootMachine, type MachineSpec, type MmioWindow } from './scenario/machine.js';
export {
  Process,
  ProcessOps,
  Signal,
  isSignal,
  spawnProcess,
  type SpawnOptions,
} from './scenario/process.js';
export { formatSchedule, parseSchedule, type Op, type Step } from './sched/index.js';
export { Kernel } from './kernel/kernel/kernel.js';
export { SUPPORTED_VERSIONS } from './kernel/version.js';
export * from './report/format.js';
export { renderTrace, renderDmesg, renderSteps } from './report/text.js';
