/**
 * devmem-revoke: a process maps a device's MMIO (a PCI BAR that no driver has claimed)
 * through /dev/mem and keeps accessing it; a driver then binds and claims the region
 * with request_mem_region(). 3234ac664a87 (v5.8) made every /dev/mem open share one
 * address_space so that, with CONFIG_IO_STRICT_DEVMEM, a successful claim revokes the
 * user mappings (R-REV-3: revoke_devmem, v5.8-v5.11; revoke_iomem in kernel/resource.c
 * from v5.12): unmap_mapping_range(devmem mapping, res->start, size, 1). The zapped VMA
 * has no ->fault, so the next access is SIGBUS.
 *
 * - strict (CONFIG_IO_STRICT_DEVMEM=y): v5.8+ the process's access after the claim gets
 *   SIGBUS (SAFE); v5.7 has no revoke: the process keeps reaching the device the driver
 *   now owns.
 * - relaxed (=n): no revoke on any version: the process keeps reaching the claimed
 *   device.
 * The harm is the check's ("the process still reaches the claimed region"): pfnsan has no
 * report for it (a claim by request_mem_region is not an owner change of the BAR frames
 * in the model).
 */
import { defineScenario, type Op } from '../src/index.js';
import { O_RDWR } from '../src/kernel/fs/inode.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../src/kernel/mm/mmap.js';
import { request_mem_region } from '../src/kernel/kernel/resource.js';
import { mutex, mutex_lock, mutex_unlock } from '../src/kernel/include/linux/spinlock.js';
import { errname } from '../src/kernel/include/linux/errno.js';
import { deviceByBdf } from '../src/scenario/machine.js';
import { isSignal, type Process } from '../src/scenario/process.js';
import { hex, userFrame } from './mm-common.js';

const BDF = '0000:02:00.0';

interface State {
  readonly p: Process;
  readonly bar: number;
  readonly addr: number;
  readonly lock: mutex;
  claimed: boolean;
  /** Accesses that reached the BAR after the claim. */
  reachedAfterClaim: number;
  sigbus: boolean;
}

export const devmemRevoke = defineScenario<State>({
  name: 'devmem-revoke',
  story: 'devmem-revoke',
  description:
    "a process's /dev/mem mapping of a PCI BAR while a driver claims the region (request_mem_region), with and without CONFIG_IO_STRICT_DEVMEM's revoke",
  machine: {
    ram: 2 ** 30,
    devices: [{ bdf: BDF, bars: [{ size: 0x4000 }], command: 0x2 /* PCI_COMMAND_MEMORY */ }],
  },
  setup(ctx) {
    const dev = deviceByBdf(ctx.k, BDF);
    const bar = dev.resource[0]!.start;
    const p = ctx.spawnProcess('devmem-tool');
    const fd = p.open('/dev/mem', O_RDWR);
    if (fd < 0) throw new Error(`open /dev/mem: ${errname(fd)}`);
    const addr = p.mmap(0, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, bar);
    if (addr < 0) throw new Error(`mmap of /dev/mem at ${hex(bar)}: ${errname(addr)}`);
    ctx.note(`devmem-tool mapped BAR0 of ${BDF} (${hex(bar)}) through /dev/mem at ${hex(addr)}`);
    return {
      p,
      bar,
      addr,
      lock: new mutex('demo_drv.probe_lock'),
      claimed: false,
      reachedAfterClaim: 0,
      sigbus: false,
    };
  },
  threads: {
    tool: {
      kind: 'cpu',
      as: (_ctx, s) => s.p,
      *run(ctx, s): Op<void> {
        for (let i = 0; i < 2; i++) {
          const claimedBefore = s.claimed;
          const r = yield* s.p.op.store(s.addr + 0x10, [0xa5]);
          if (isSignal(r)) {
            s.sigbus = true;
            ctx.note(`devmem-tool: store to BAR0+0x10: ${r.toString()}`);
            return;
          }
          if (claimedBefore) s.reachedAfterClaim++;
        }
      },
    },
    driver: {
      kind: 'driver',
      *run(ctx, s): Op<void> {
        yield* mutex_lock(s.lock);
        const res = yield* request_mem_region(s.bar, 0x4000, 'demo_drv');
        s.claimed = res !== null;
        yield* mutex_unlock(s.lock);
        ctx.note(
          res
            ? `demo_drv: request_mem_region(${hex(s.bar)}, 0x4000) claimed BAR0`
            : 'demo_drv: claim failed',
        );
      },
    },
  },
  check(_ctx, s) {
    if (!s.claimed) return 'the driver could not claim its BAR';
    if (s.reachedAfterClaim > 0)
      return `devmem-tool still reached BAR0 (${hex(s.bar)}) after demo_drv claimed it`;
    const e = userFrame(s.p.task.mm!, s.addr, 1);
    if (e) return `devmem-tool still maps BAR0 pfn ${hex(e.pfn)} after demo_drv claimed it`;
    return null;
  },
  variants: {
    strict: {
      description: 'CONFIG_IO_STRICT_DEVMEM=y: the claim revokes /dev/mem mappings (v5.8+)',
      config: { CONFIG_IO_STRICT_DEVMEM: true },
      expect: { '5.7': 'check', '5.8+': 'SAFE' },
    },
    relaxed: {
      description: 'CONFIG_IO_STRICT_DEVMEM=n: nothing revokes the mapping',
      config: { CONFIG_IO_STRICT_DEVMEM: false },
      expect: { default: 'check' },
    },
  },
});

export default devmemRevoke;
