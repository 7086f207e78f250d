/**
 * v4l2-userptr-iomem: a V4L2 USERPTR capture buffer (the model capture device 'pfncap',
 * videobuf2 dma-contig) whose user memory is another driver's VM_IO|VM_PFNMAP mapping of a
 * CMA frame. While the stream runs, the exporting driver revokes its mapping and frees the
 * frame (R-REV-5), another process faults an anonymous page in (the allocator hands the
 * freed frame out at once), and the device captures a frame.
 *
 * - unsafe: before 6.1 the frame vector's pfn path (follow_pfn, no reference and no pin;
 *   R-FV-1) records the pfn at QBUF and dma-contig maps it for the device: pfnsan reports
 *   the use after the lookup's window (stale-pfn); when the frame was reused first, the
 *   device writes the other process's page. 6.1+ (the pfn fallback removed, R-FV-1 third
 *   era) refuses the QBUF (-EFAULT), nothing is queued: SAFE.
 * - fixed: the buffer is the process's own anonymous memory, pinned by the frame vector
 *   (FOLL_LONGTERM from 5.11/5.12, plain pins before): the process unmaps it while
 *   streaming and the other process faults a page in; the pinned frame stays the
 *   process's until the buffer is released: SAFE on every version.
 *
 * Machine: 1 GiB RAM with a 4 MiB CMA area 'reserved' at 0x20000000 (pfns
 * 0x20000-0x203ff); pfncap = 0000:01:00.0 (IOMMU DMA domain). The exporter's frame is the
 * first CMA frame, mapped at the process's first free address; 'victim' maps
 * 0x50000000.
 */
import { defineScenario, type Op, type ScenarioContext } from '../src/index.js';
import type { Process } from '../src/scenario/process.js';
import { deviceByBdf } from '../src/scenario/machine.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import type { file, page, vm_area_struct } from '../src/kernel/include/linux/mm_types.js';
import { VM_DONTDUMP, VM_DONTEXPAND, VM_IO, VM_PFNMAP } from '../src/kernel/include/linux/mm.js';
import { fd_install, get_unused_fd_flags } from '../src/kernel/include/linux/fdtable.js';
import { alloc_file, new_inode, O_RDWR } from '../src/kernel/fs/inode.js';
import { remap_pfn_range, vm_flags_set } from '../src/kernel/mm/memory.pfnmap.js';
import { zap_vma_ptes } from '../src/kernel/mm/memory.zap.js';
import { cma_alloc, cma_find, cma_release } from '../src/kernel/mm/cma.js';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
} from '../src/kernel/mm/mmap.js';
import {
  PFNCAP_DEVICE,
  PFNCAP_VENDOR,
  V4L2_BUF_TYPE_VIDEO_CAPTURE,
  V4L2_MEMORY_USERPTR,
  VIDIOC_QBUF,
  VIDIOC_REQBUFS,
  VIDIOC_STREAMON,
  pfncap_capture_frame,
  pfncap_init,
  pfncap_of,
  pfncap_open,
  set_dma_sg,
  type pfncap_dev,
  type v4l2_buffer,
} from '../src/kernel/drivers/media/pfncap/pfncap.js';

const PAGE = 4096;
const CMA_BASE = 0x20000000;
const V = 0x50000000;
const CAP_BDF = '0000:01:00.0';
const hex = (n: number): string => `0x${n.toString(16)}`;

interface State {
  readonly app: Process;
  readonly victim: Process;
  readonly cap: pfncap_dev;
  /** The USERPTR buffer's address. */
  readonly buf: number;
  /** unsafe: the exporter's frame and VMA. */
  readonly frame?: page;
  readonly vma?: vm_area_struct;
  /** QBUF's result. */
  readonly queued: number;
}

/** The exporting driver: its ->mmap remaps `pfn` (VM_IO|VM_PFNMAP); the VMA is kept. */
function exporterFile(pfn: number, out: { vma: vm_area_struct | null }): file {
  const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
  return alloc_file('/dev/exporter', O_RDWR, inode, {
    name: 'exporter_fops',
    *mmap(_f: file, vma: vm_area_struct): Op<number> {
      vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
      out.vma = vma;
      return yield* remap_pfn_range(vma, vma.vm_start, pfn, PAGE, vma.vm_page_prot);
    },
  });
}

function installFile(p: Process, f: file): number {
  return p.run(
    (function* (): Op<number> {
      const fd = yield* get_unused_fd_flags(O_RDWR);
      yield* fd_install(fd, f);
      return fd;
    })(),
  );
}

function must(what: string, r: number): number {
  if (r < 0) throw new Error(`${what}: ${errname(r)}`);
  return r;
}

export const v4l2UserptrIomem = defineScenario<State>({
  name: 'v4l2-userptr-iomem',
  story: 'v4l2-userptr-iomem',
  description:
    "a V4L2 USERPTR buffer over another driver's VM_IO|VM_PFNMAP mapping whose frame is freed and reused while streaming",
  machine: {
    ram: 2 ** 30,
    cma: [{ name: 'reserved', base: CMA_BASE, size: 4 * 2 ** 20 }],
    devices: [
      { bdf: CAP_BDF, vendor: PFNCAP_VENDOR, device: PFNCAP_DEVICE, bars: [{ size: 0x1000 }] },
    ],
  },
  setup(ctx: ScenarioContext): State {
    ctx.k.activate();
    set_dma_sg(false);
    must('pfncap_init', ctx.run(pfncap_init(), 'insmod'));
    const pdev = deviceByBdf(ctx.k, CAP_BDF);
    const cap = pfncap_of(pdev)!;
    const app = ctx.spawnProcess('app');
    const victim = ctx.spawnProcess('victim');
    const fd = must('open pfncap', app.run(pfncap_open(pdev)));
    // victim's page tables exist before the race (its fault then only allocates the page)
    must(
      'victim mmap',
      victim.mmap(V, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED),
    );
    if (victim.store(V + PAGE, [1]) !== 0) throw new Error('victim store');
    let buf: number;
    let frame: page | undefined;
    const out: { vma: vm_area_struct | null } = { vma: null };
    if (ctx.variant === 'fixed') {
      buf = app.buffer(PAGE, 0x5a);
    } else {
      ctx.k.activate();
      const c = cma_find('reserved')!;
      const f = ctx.run(cma_alloc(c, 1, 0, false));
      if (f === null) throw new Error('cma_alloc failed');
      frame = f;
      const efd = installFile(app, exporterFile(f, out));
      buf = must(
        'mmap /dev/exporter',
        app.mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, efd, 0),
      );
    }
    must(
      'REQBUFS',
      app.ioctl(fd, VIDIOC_REQBUFS, {
        count: 1,
        type: V4L2_BUF_TYPE_VIDEO_CAPTURE,
        memory: V4L2_MEMORY_USERPTR,
      }),
    );
    const b: v4l2_buffer = {
      index: 0,
      type: V4L2_BUF_TYPE_VIDEO_CAPTURE,
      memory: V4L2_MEMORY_USERPTR,
      m: { userptr: buf },
      length: PAGE,
    };
    const queued = app.ioctl(fd, VIDIOC_QBUF, b);
    must('STREAMON', app.ioctl(fd, VIDIOC_STREAMON, V4L2_BUF_TYPE_VIDEO_CAPTURE));
    ctx.note(
      `USERPTR buffer at ${hex(buf)}${frame !== undefined ? ` (exporter's CMA frame ${hex(frame)})` : ' (anonymous)'}: QBUF ${queued ? errname(queued) : 0}`,
    );
    return {
      app,
      victim,
      cap,
      buf,
      queued,
      ...(frame !== undefined ? { frame, vma: out.vma! } : {}),
    };
  },
  threads: {
    owner: {
      kind: 'driver',
      as: (_ctx, s) => s.app,
      *run(ctx, s): Op<void> {
        if (s.frame !== undefined) {
          // The exporter revokes its buffer and gives the frame back to CMA.
          yield* zap_vma_ptes(s.vma!, s.vma!.vm_start, PAGE);
          const ok = yield* cma_release(cma_find('reserved')!, s.frame, 1);
          ctx.note(`exporter zapped its mapping and released frame ${hex(s.frame)}: ${ok}`);
        } else {
          const r = yield* s.app.op.munmap(s.buf, PAGE);
          ctx.note(`app munmapped its USERPTR buffer: ${r}`);
        }
      },
    },
    victim: {
      kind: 'cpu',
      as: (_ctx, s) => s.victim,
      *run(ctx, s): Op<void> {
        const r = yield* s.victim.op.store(V, [0x11, 0x11, 0x11, 0x11]);
        ctx.note(`victim wrote its page at ${hex(V)}: ${r === 0 ? 0 : r.toString()}`);
      },
    },
    capture: {
      kind: 'dma',
      *run(ctx, s): Op<void> {
        const r = yield* pfncap_capture_frame(s.cap, 0xcd);
        ctx.note(
          `pfncap captured a frame: ${r === -61 ? 'no buffer queued' : r ? errname(r) : 'done'}`,
        );
      },
    },
  },
  variants: {
    unsafe: {
      description: "the USERPTR buffer is the exporter's PFNMAP mapping",
      expect: { '5.7-5.15': 'stale-pfn', '6.1+': 'SAFE' },
    },
    fixed: {
      description: 'the USERPTR buffer is anonymous memory pinned by the frame vector',
      expect: { default: 'SAFE' },
    },
  },
});

export default v4l2UserptrIomem;
