/**
 * The model side of the agreement cases (conformance/cases.ts, issue 3 §6): each
 * (mapping kind × entry point) is set up and run in a model process the way
 * conformance/probe.c does it on the live kernel, and its result is written in the same
 * strings ('ok', 'short:N', '-EFAULT', 'SIGBUS', 'SIGSEGV', 'skip:<why>').
 *
 * As in the probe: every case runs in a fresh process; the mapping is 2 pages (THP: one
 * 2 MiB page), touched before the entry point runs (each page written once if writable,
 * read once if read-only; prot-none and the kernel-made mappings are left as they are);
 * every entry point acts on the first 4096 bytes; the ext4 files are made with write(2)
 * and written back (fsync) before the cases run.
 *
 * Differences from the probe, each because the model lacks something:
 * - thp-anon: madvise(MADV_HUGEPAGE) is not modelled (mm/madvise.ts); the machine runs
 *   with THP "always" instead, which gives the range a PMD-mapped THP the same way;
 */
import type { Kernel } from '../kernel/kernel/kernel.js';
import { bootMachine } from './machine.js';
import { isSignal, spawnProcess, type Process } from './process.js';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from '../kernel/mm/mmap.js';
import { MADV_POPULATE_READ, MADV_POPULATE_WRITE } from '../kernel/mm/madvise.js';
import { O_CREAT, O_DIRECT, O_TRUNC } from '../kernel/include/linux/fs.js';
import { O_RDONLY, O_RDWR } from '../kernel/fs/inode.js';
import { errname } from '../kernel/include/linux/errno.js';
import { hugetlb_sysctl_handler } from '../kernel/mm/hugetlb.pool.js';
import { MAP_HUGETLB } from '../kernel/mm/mmap.js';
import { MFD_HUGETLB } from '../kernel/mm/memfd.js';
import { FUTEX_WAKE } from '../kernel/kernel/futex/core.js';
import { IORING_REGISTER_BUFFERS, IORING_UNREGISTER_BUFFERS } from '../kernel/io_uring/io_uring.js';
import { PERF_COUNT_SW_DUMMY, PERF_TYPE_SOFTWARE } from '../kernel/kernel/events/core.js';
import { vfsLookup } from '../kernel/fs/namei.js';
import { filemap_write_and_wait_range } from '../kernel/mm/filemap.js';
import { setTransparentHugepage } from '../kernel/mm/huge_memory.anon.js';

const PG = 4096;
const HPAGE = 2 * 1024 * 1024;
const FILE_LEN = 2 * PG;

/** The probe's files on the ext4 root (conformance/probe.c: make_file). */
export const MAP_PATH = '/var/tmp/pfnsim-probe-map';
export const ODIRECT_PATH = '/var/tmp/pfnsim-probe-odirect';

/** A machine for the agreement cases: booted, the two ext4 files made and synced. */
export function agreementMachine(version: string): Kernel {
  const k = bootMachine({ version });
  setTransparentHugepage(k, { enabled: 'always' });
  // The probe makes sure 4 huge pages are free (/proc/sys/vm/nr_hugepages).
  if (k.run(hugetlb_sysctl_handler(4)) !== 0)
    throw new Error('agreementMachine: cannot fill the hugetlb pool');
  const p = spawnProcess(k, 'probe-setup');
  const data = p.buffer(FILE_LEN, 'p'.charCodeAt(0));
  for (const path of [MAP_PATH, ODIRECT_PATH]) {
    const fd = p.open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600);
    if (fd < 0 || p.write(fd, data, FILE_LEN) !== FILE_LEN)
      throw new Error(`agreementMachine: cannot make ${path}`);
    // fsync(fd)
    const i = vfsLookup(path)!;
    k.run(filemap_write_and_wait_range(i.i_mapping, 0, -1));
    p.close(fd);
  }
  p.exit(0);
  return k;
}

function touch(p: Process, addr: number, len: number, write: boolean): void {
  for (let off = 0; off < len; off += PG) {
    const r = write ? p.store(addr + off, [1]) : p.load(addr + off, 1);
    if (isSignal(r)) throw new Error(`touch faulted: ${r.toString()}`);
  }
}

/**
 * Sets up a mapping kind in process p as the probe's setup() does.
 * Return: the mapping's address, or 'skip:<why>'.
 */
export function setupKind(p: Process, kind: string): number | string {
  const rw = PROT_READ | PROT_WRITE;
  const anon = MAP_PRIVATE | MAP_ANONYMOUS;
  let len = FILE_LEN;
  let w: 1 | 0 | -1 = 1;
  let addr: number;
  const mapFd = (fd: number, prot: number, flags: number): number =>
    fd < 0 ? fd : p.mmap(0, len, prot, flags, fd, 0);
  const sized = (fd: number, flags: number): number => {
    if (fd < 0) return fd;
    const r = p.ftruncate(fd, len);
    return r < 0 ? r : mapFd(fd, rw, flags);
  };
  switch (kind) {
    case 'anon-private':
      addr = p.mmap(0, len, rw, anon);
      break;
    case 'anon-shared':
      addr = p.mmap(0, len, rw, MAP_SHARED | MAP_ANONYMOUS);
      break;
    case 'devzero-private':
    case 'devzero-shared':
      addr = mapFd(
        p.open('/dev/zero', O_RDWR),
        rw,
        kind === 'devzero-private' ? MAP_PRIVATE : MAP_SHARED,
      );
      break;
    case 'memfd-shared':
      addr = sized(p.memfd_create('pfnsim', 0), MAP_SHARED);
      break;
    case 'tmpfs-shared':
    case 'tmpfs-private': {
      const path = `/dev/shm/pfnsim-probe-${p.pid}`;
      const fd = p.open(path, O_RDWR | O_CREAT | 0o200, 0o600);
      p.unlink(path);
      addr = sized(fd, kind === 'tmpfs-private' ? MAP_PRIVATE : MAP_SHARED);
      break;
    }
    case 'ext4-shared-rw':
    case 'ext4-private-rw':
    case 'ext4-shared-ro':
    case 'ext4-private-ro': {
      const ro = kind.endsWith('-ro');
      addr = mapFd(
        p.open(MAP_PATH, ro ? O_RDONLY : O_RDWR),
        ro ? PROT_READ : rw,
        kind.includes('shared') ? MAP_SHARED : MAP_PRIVATE,
      );
      w = ro ? 0 : 1;
      break;
    }
    case 'hugetlb-anon':
      len = HPAGE;
      addr = p.mmap(0, len, rw, anon | MAP_HUGETLB);
      break;
    case 'hugetlb-memfd':
      len = HPAGE;
      addr = sized(p.memfd_create('pfnsim', MFD_HUGETLB), MAP_SHARED);
      break;
    case 'thp-anon': {
      const q = p.mmap(0, 2 * HPAGE, rw, anon);
      if (q < 0) return `skip:mmap${errname(q)}`;
      const a = Math.ceil(q / HPAGE) * HPAGE;
      if (a > q) p.munmap(q, a - q);
      p.munmap(a + HPAGE, q + HPAGE - a);
      len = HPAGE;
      // madvise(MADV_HUGEPAGE): not modelled; THP is "always" on the agreement machine.
      touch(p, a, len, true);
      return a;
    }
    case 'secretmem':
      addr = sized(p.memfd_secret(0), MAP_SHARED);
      break;
    case 'prot-none':
      addr = p.mmap(0, len, PROT_NONE, anon);
      w = -1;
      break;
    case 'anon-readonly':
      addr = p.mmap(0, len, PROT_READ, anon);
      w = 0;
      break;
    case 'vvar':
      addr = p.vvar();
      if (addr < 0) return 'skip:no-vvar';
      return addr;
    case 'perf-ring': {
      const fd = p.perf_event_open({
        type: PERF_TYPE_SOFTWARE,
        config: PERF_COUNT_SW_DUMMY,
        disabled: true,
        exclude_kernel: true,
      });
      addr = mapFd(fd, rw, MAP_SHARED);
      w = -1;
      break;
    }
    case 'mixedmap-ring': {
      // 256 entries: the SQ/CQ ring region spans 3 pages; map 2.
      addr = mapFd(p.io_uring_setup(256), rw, MAP_SHARED);
      w = -1;
      break;
    }
    case 'aio-ring': {
      const ctx = { value: 0 };
      const r = p.io_setup(128, ctx);
      if (r < 0) return `skip:io_setup${errname(r)}`;
      return ctx.value;
    }
    default:
      return 'skip:unknown-kind';
  }
  if (addr < 0) return `skip:setup${errname(addr)}`;
  if (w >= 0) touch(p, addr, len, w === 1);
  return addr;
}

function count(r: number, want: number): string {
  if (r < 0) return errname(r);
  return r === want ? 'ok' : `short:${r}`;
}

function status(r: number): string {
  return r < 0 ? errname(r) : 'ok';
}

/**
 * Runs an entry point on the first 4096 bytes at addr in process p, as the probe's
 * run_entry() does. Return: the result string.
 */
export function runEntry(p: Process, entry: string, addr: number): string {
  const buf = p.buffer(PG);
  const local = [{ iov_base: buf, iov_len: PG }];
  const remote = [{ iov_base: addr, iov_len: PG }];
  switch (entry) {
    case 'cpu-read': {
      const r = p.load(addr, 1);
      return isSignal(r) ? r.signo : 'ok';
    }
    case 'cpu-write': {
      const r = p.store(addr, [0]);
      return isSignal(r) ? r.signo : 'ok';
    }
    case 'io_uring-register': {
      const fd = p.io_uring_setup(4);
      if (fd < 0) return 'skip:io_uring_setup';
      const r = p.io_uring_register(fd, IORING_REGISTER_BUFFERS, remote, 1);
      if (r === 0) p.io_uring_register(fd, IORING_UNREGISTER_BUFFERS, null, 0);
      return status(r);
    }
    case 'process_vm_readv':
      return count(p.process_vm_readv(p.pid, local, remote, 0), PG);
    case 'process_vm_writev':
      return count(p.process_vm_writev(p.pid, local, remote, 0), PG);
    case 'vmsplice': {
      const fds = p.pipe();
      if (typeof fds === 'number') return 'skip:pipe';
      return count(p.vmsplice(fds[1], remote, 0), PG);
    }
    case 'proc-mem-read':
    case 'proc-mem-write': {
      const fd = p.open('/proc/self/mem', O_RDWR);
      if (fd < 0) return 'skip:open-proc-self-mem';
      return entry === 'proc-mem-read'
        ? count(p.pread(fd, buf, PG, addr), PG)
        : count(p.pwrite(fd, buf, PG, addr), PG);
    }
    case 'odirect-read':
    case 'odirect-write': {
      const fd = p.open(ODIRECT_PATH, O_RDWR | O_DIRECT);
      if (fd < 0) return 'skip:open-o_direct';
      return entry === 'odirect-read'
        ? count(p.pread(fd, addr, PG, 0), PG)
        : count(p.pwrite(fd, addr, PG, 0), PG);
    }
    case 'madv-populate-read':
      return status(p.madvise(addr, PG, MADV_POPULATE_READ));
    case 'madv-populate-write':
      return status(p.madvise(addr, PG, MADV_POPULATE_WRITE));
    case 'mlock':
      return status(p.mlock(addr, PG));
    case 'futex-shared':
      return status(p.futex(addr, FUTEX_WAKE, 1));
    default:
      return 'skip:unknown-entry';
  }
}

/**
 * runModelCase(k, kind, entry): one case in a fresh process of machine k (made by
 * agreementMachine); the process exits afterwards.
 * Return: the result string.
 */
export function runModelCase(k: Kernel, kind: string, entry: string): string {
  const p = spawnProcess(k, 'probe');
  try {
    const addr = setupKind(p, kind);
    if (typeof addr === 'string') return addr;
    return runEntry(p, entry, addr);
  } finally {
    if (!p.exited) p.exit(0);
  }
}

/** The model's table for the given kinds and entry points, `${kind}/${entry}` → result. */
export function modelTable(
  version: string,
  kinds: readonly string[],
  entries: readonly string[],
): Record<string, string> {
  const k = agreementMachine(version);
  const out: Record<string, string> = {};
  for (const kind of kinds) for (const e of entries) out[`${kind}/${e}`] = runModelCase(k, kind, e);
  return out;
}
