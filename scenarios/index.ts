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
import followPfnmap from './follow-pfnmap.js';
import unsafeFollowPfn from './unsafe-follow-pfn.js';
import cmaPagecache from './cma-pagecache.js';
import noPteSpecial from './no-pte-special.js';
import folioWalkPfnmap from './folio-walk-pfnmap.js';
import frameVector from './frame-vector.js';
import kvmRemapped from './kvm-remapped.js';
import devmemRevoke from './devmem-revoke.js';
import { vfioType1BarScenarios } from './vfio-type1-bar.js';
import cve202012888 from './cve-2020-12888.js';
import gpuBoMove from './gpu-bo-move.js';
import v4l2UserptrIomem from './v4l2-userptr-iomem.js';

export const BUILTIN_SCENARIOS: readonly AnyScenario[] = [
  driverMmap,
  ...vfioType1BarScenarios,
  cve202012888,
  gpuBoMove,
  v4l2UserptrIomem,
  followPfnmap,
  unsafeFollowPfn,
  cmaPagecache,
  noPteSpecial,
  folioWalkPfnmap,
  frameVector,
  kvmRemapped,
  devmemRevoke,
];
