/**
 * The built-in scenario library. Each story has an unsafe and a fixed variant (as
 * `variants` of one scenario, named `<story>/unsafe` and `<story>/fixed`), with the
 * verdict expected on each kernel version.
 *
 * Layout: one file per story, `scenarios/<story>.ts`, default-exporting its scenario;
 * add it to BUILTIN_SCENARIOS below (kept in `pfnsim list` order).
 */
import type { AnyScenario } from '../src/index.js';
import driverMmap from './driver-mmap.js';

export const BUILTIN_SCENARIOS: readonly AnyScenario[] = [driverMmap];
