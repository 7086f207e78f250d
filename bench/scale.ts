/**
 * Scale benchmark (issue 2): prints figures, asserts nothing.
 *
 * 1. Boot a machine with 1 TiB of physical address space: time and heap cost.
 * 2. Sequential 4 KiB write faults over 1 GiB of anonymous memory (THP off): faults/s.
 * 3. 4 million present PTEs in one process (16 GiB of anonymous memory written once):
 *    heap in use and bytes of heap per present PTE.
 *
 * Run: npm run build && node --expose-gc dist/bench/scale.js [--ptes N]
 */
import { performance } from 'node:perf_hooks';
import { Kernel } from '../src/kernel/kernel/kernel.js';
import { start_kernel, x86_64_e820 } from '../src/kernel/init/main.js';
import { create_user_task } from '../src/kernel/kernel/fork.js';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  vm_mmap_pgoff,
} from '../src/kernel/mm/mmap.js';
import { cpu_user_write } from '../src/kernel/arch/x86/mm/fault.js';
import { setTransparentHugepage } from '../src/kernel/mm/huge_memory.anon.js';
import { memmap } from '../src/kernel/mm/sparse.js';

const GiB = 2 ** 30;
const gc = (globalThis as { gc?: () => void }).gc;

function heapMiB(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** JS heap and typed-array backing stores, in MiB, after a full GC. */
function memMiB(): { heap: number; buffers: number } {
  gc?.();
  gc?.();
  const u = process.memoryUsage();
  return { heap: u.heapUsed / 2 ** 20, buffers: u.arrayBuffers / 2 ** 20 };
}

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

function bootTiB(): void {
  const h0 = heapMiB();
  const t0 = performance.now();
  const k = new Kernel({ version: '6.18' });
  start_kernel(k, { map: x86_64_e820(1024 * GiB) });
  const ms = performance.now() - t0;
  const h1 = heapMiB();
  console.log(
    `boot, 1 TiB of RAM:            ${fmt(ms, 2)} ms, heap +${fmt(h1 - h0, 2)} MiB, memmap sections touched: ${memmap().materialized}`,
  );
}

/**
 * Writes one byte to every page of a fresh anonymous mapping. A non-zero byte makes the
 * frame hold data (the model then stores its 4 KiB); a zero byte leaves the zeroed frame
 * without stored contents.
 */
function writeFaults(k: Kernel, bytes: number, value: number): { pages: number; secs: number } {
  const task = create_user_task('bench');
  const mm = task.mm!;
  const addr = k.run(
    vm_mmap_pgoff(mm, null, 0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 0),
  );
  if (addr < 0) throw new Error(`mmap failed: ${addr}`);
  const one = new Uint8Array([value]);
  const pages = bytes / 4096;
  const t0 = performance.now();
  k.run(
    (function* () {
      for (let i = 0; i < pages; i++) {
        const r = yield* cpu_user_write(task, addr + i * 4096, one);
        if (r.kind !== 'ok') throw new Error(`write fault at page ${i}: ${r.kind}`);
      }
    })(),
    'bench',
  );
  return { pages, secs: (performance.now() - t0) / 1000 };
}

function main(): void {
  const argi = process.argv.indexOf('--ptes');
  const ptes = argi > 0 ? Number(process.argv[argi + 1]) : 4 * 2 ** 20;
  if (!gc) console.log('(run with node --expose-gc for exact heap figures)');
  bootTiB();

  {
    const k = new Kernel({ version: '6.18' });
    start_kernel(k, { map: x86_64_e820(4 * GiB) });
    setTransparentHugepage(k, { enabled: 'never' });
    const { pages, secs } = writeFaults(k, GiB, 1);
    console.log(
      `write faults, 1 GiB anon (4 KiB pages, one non-zero byte each): ${fmt(pages, 0)} faults in ${fmt(secs, 2)} s = ${fmt(pages / secs, 0)} faults/s`,
    );
  }

  {
    const m0 = memMiB();
    const k = new Kernel({ version: '6.18' });
    start_kernel(k, { map: x86_64_e820(Math.ceil((ptes * 4096 * 1.1) / GiB + 1) * GiB) });
    setTransparentHugepage(k, { enabled: 'never' });
    const { pages, secs } = writeFaults(k, ptes * 4096, 0);
    const m1 = memMiB();
    const total = m1.heap + m1.buffers - m0.heap - m0.buffers;
    console.log(
      `${fmt(pages, 0)} present PTEs in one process (zero-filled pages): ${fmt(total, 0)} MiB ` +
        `(JS heap ${fmt(m1.heap - m0.heap, 0)} MiB + typed arrays ${fmt(m1.buffers - m0.buffers, 0)} MiB) = ` +
        `${fmt((total * 2 ** 20) / pages, 1)} bytes per present PTE, memmap and page tables included; faulted in ${fmt(secs, 1)} s`,
    );
    console.log('  (a frame that holds non-zero data costs another 4 KiB of contents)');
  }
}

main();
