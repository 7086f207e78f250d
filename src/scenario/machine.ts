/**
 * Building a machine for a run: a kernel instance of a version and configuration, booted
 * with a physical map of RAM, device MMIO windows and CMA areas.
 */
import { Kernel } from '../kernel/kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../kernel/init/main.js';
import type { PhysRange } from '../kernel/mm/sparse.js';
import type { ConfigValue } from '../kernel/kconfig.js';

export interface MmioWindow {
  /** Physical address of the window (page aligned). */
  readonly base: number;
  readonly size: number;
  readonly name: string;
}

export interface MachineSpec {
  readonly version: string;
  readonly config?: Readonly<Record<string, ConfigValue | string>>;
  /** Bytes of RAM (default 4 GiB). */
  readonly ram?: number;
  /** Device memory without struct page (BARs). Must not overlap RAM. */
  readonly mmio?: readonly MmioWindow[];
  readonly cma?: readonly { name: string; base: number; size: number }[];
}

/** Boots a kernel for the spec; throws an Error with a one-line message on bad input. */
export function bootMachine(spec: MachineSpec): Kernel {
  const k = new Kernel({ version: spec.version, config: spec.config ?? {} });
  const map: PhysRange[] = x86_64_e820(spec.ram ?? 4 * 2 ** 30);
  for (const w of spec.mmio ?? []) {
    map.push({ start: w.base, end: w.base + w.size, kind: 'mmio', name: w.name });
  }
  start_kernel(k, { map, cma: spec.cma });
  return k;
}
