/**
 * The one dispatcher for memory accesses to PCI BARs, by the CPU (user mappings through
 * arch/x86/mm/fault.ts) and by DMA engines (peer-to-peer through drivers/dma/engine.ts).
 *
 * A BAR decodes memory only while its function is present, in D0 and has
 * PCI_COMMAND_MEMORY set. Otherwise the request ends as an Unsupported Request (or a
 * master abort once the device is gone): reads return all ones, writes are dropped. The
 * kernel has no function of its own for this: it is what the hardware does, and what
 * drivers/pci/access.c's config accessors and pci_dev_is_disconnected() assume (config
 * reads of a missing device return ~0). Every such access is reported to pfnsan as a
 * 'disabled-bar' event.
 *
 * This file holds only the per-kernel registry of BAR ranges (filled by drivers/pci/probe.ts)
 * and the dispatch, so that fault.ts can import it without pulling in the PCI core.
 *
 * Locking: none. The decode state is read at the moment of the access; callers yield the
 * Step for the access (the frame) before calling in.
 *
 * @kernel drivers/pci/access.c (model of the hardware behind it; all versions)
 */
import { currentKernel } from '../../kernel/kernel.js';
import { phys_read, phys_write } from '../../mm/sparse.js';
import { pfnsan_report_event } from '../../mm/pfnsan/pfnsan.js';
import type { Op } from '../../../sched/index.js';

/** What the PCI core tells the dispatcher about one BAR. */
export interface bar_decoder {
  /** First pfn of the BAR. */
  readonly start_pfn: number;
  /** Number of frames. */
  readonly nr_pages: number;
  /** "BAR0 of 0000:01:00.0". */
  readonly name: string;
  /** The Step object of the function's config space (COMMAND, PM state, presence). */
  readonly cfg_obj: string;
  /** Why the BAR does not decode now, or null when it does. */
  why_disabled(): string | null;
}

interface access_state {
  /** Sorted by start_pfn; BAR ranges never overlap. */
  readonly bars: bar_decoder[];
  /** Disabled-BAR accesses so far (model statistics for tests and reports). */
  disabled_accesses: number;
}

function st(): access_state {
  const k = currentKernel();
  return ((k.sub.pci_access as access_state | undefined) ??= { bars: [], disabled_accesses: 0 });
}

/** Registers a BAR range with the dispatcher (drivers/pci/probe.ts at device creation). */
export function pci_bar_register(bar: bar_decoder): void {
  const bars = st().bars;
  bars.push(bar);
  bars.sort((a, b) => a.start_pfn - b.start_pfn);
}

/** The BAR containing pfn, or null. Removed devices stay registered (their range decodes to nothing). */
export function pci_bar_lookup(pfn: number): bar_decoder | null {
  const bars = st().bars;
  let lo = 0;
  let hi = bars.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const b = bars[mid]!;
    if (pfn < b.start_pfn) hi = mid - 1;
    else if (pfn >= b.start_pfn + b.nr_pages) lo = mid + 1;
    else return b;
  }
  return null;
}

/** Number of accesses that hit a BAR not decoding memory (model statistics). */
export function pci_disabled_bar_accesses(): number {
  return st().disabled_accesses;
}

function report(bar: bar_decoder, pfn: number, why: string, how: 'read' | 'write', who: string) {
  st().disabled_accesses++;
  pfnsan_report_event(
    'disabled-bar',
    pfn,
    `BUG: pfnsan: disabled-bar ${how} of ${bar.name} (${why})`,
    [
      `${how} by ${who} at pfn 0x${pfn.toString(16)}`,
      how === 'read' ? 'the read returned all ones' : 'the write was dropped',
    ],
  );
}

/**
 * A read of `len` bytes at physical address `pa` (not crossing a page): from a decoding BAR,
 * its contents; from a BAR that does not decode, all ones (and a pfnsan 'disabled-bar'
 * event); elsewhere, RAM or unbacked memory as phys_read.
 * Return: the bytes read.
 */
export function mmio_or_phys_read(pa: number, len: number, who = 'cpu'): Uint8Array {
  const pfn = Math.floor(pa / 4096);
  const bar = pci_bar_lookup(pfn);
  if (!bar) return phys_read(pa, len);
  const why = bar.why_disabled();
  if (why !== null) {
    report(bar, pfn, why, 'read', who);
    return new Uint8Array(len).fill(0xff);
  }
  return phys_read(pa, len);
}

/**
 * A write of `data` at physical address `pa` (not crossing a page): to a decoding BAR or
 * RAM, stored; to a BAR that does not decode, dropped (and a pfnsan 'disabled-bar' event).
 * Return: true when the write reached memory.
 */
export function mmio_or_phys_write(pa: number, data: Uint8Array, who = 'cpu'): boolean {
  const pfn = Math.floor(pa / 4096);
  const bar = pci_bar_lookup(pfn);
  if (bar) {
    const why = bar.why_disabled();
    if (why !== null) {
      report(bar, pfn, why, 'write', who);
      return false;
    }
  }
  phys_write(pa, data);
  return true;
}

/**
 * mmio_or_phys_read as an Op: for a BAR, first a read Step of the function's config state
 * (so the scheduler orders it against COMMAND writes, resets and unplug), then the read.
 * RAM and unbacked addresses take no extra Step.
 */
export function* mmio_or_phys_read_op(pa: number, len: number, who = 'cpu'): Op<Uint8Array> {
  const bar = pci_bar_lookup(Math.floor(pa / 4096));
  if (bar) yield { obj: bar.cfg_obj, kind: 'read', what: `${who}: BAR decode` };
  return mmio_or_phys_read(pa, len, who);
}

/** mmio_or_phys_write as an Op (see {@link mmio_or_phys_read_op}). Return: true when stored. */
export function* mmio_or_phys_write_op(pa: number, data: Uint8Array, who = 'cpu'): Op<boolean> {
  const bar = pci_bar_lookup(Math.floor(pa / 4096));
  if (bar) yield { obj: bar.cfg_obj, kind: 'read', what: `${who}: BAR decode` };
  return mmio_or_phys_write(pa, data, who);
}
