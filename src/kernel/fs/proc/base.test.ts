/**
 * /proc/<pid>/mem (fs/proc/base.c mem_rw) over access_remote_vm (mm/memory.c):
 * get_user_pages_remote with FOLL_FORCE, the vm_ops->access fallback, -EIO when nothing
 * could be copied.
 * Rules: kernel-spec.md §11 (entry points), O-2, O-4, O-5, O-6.
 */
import { describe, expect, it } from 'vitest';
import { bootEnv, type Env } from '../../../../test/kernel-env.js';
import { do_sys_open } from '../open.js';
import { O_RDWR } from '../inode.js';
import { ksys_pread64, ksys_pwrite64 } from '../read_write.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ } from '../../mm/mmap.js';
import { EIO } from '../../include/linux/errno.js';
import { find_vvar_vma } from '../../arch/x86/entry/vdso/vma.js';
import { is_zero_pfn } from '../../include/linux/pgtable.js';
import { folio_test_anon } from '../../include/linux/page-flags.js';
import type { file, folio, vm_area_struct } from '../../include/linux/mm_types.js';
import { VM_IO, VM_PFNMAP } from '../../include/linux/mm.js';
import { alloc_file, new_inode } from '../inode.js';
import { fd_install, get_unused_fd_flags } from '../../include/linux/fdtable.js';
import { vfsCreateFile } from '../namei.js';
import { O_RDONLY } from '../inode.js';
import { sys_memfd_secret } from '../../mm/secretmem.js';
import { sys_ftruncate, sys_mmap } from '../../arch/x86/entry/syscall_64.js';
import { proc_mem_foll_force } from './base.js';

function procMem(env: Env): number {
  return env.sys(do_sys_open('/proc/self/mem', O_RDWR, 0));
}

describe('mem_rw', () => {
  it('§11: reads and writes another range of the process through access_remote_vm', () => {
    const env = bootEnv();
    const a = env.buffer(8192, 9);
    const buf = env.buffer(8192, 0);
    const fd = procMem(env);
    expect(env.sys(ksys_pread64(fd, buf, 8192, a))).toBe(8192);
    expect([...(env.load(buf + 8191, 1) as Uint8Array)]).toEqual([9]);
    env.store(buf, [0x42]);
    expect(env.sys(ksys_pwrite64(fd, buf, 1, a + 5))).toBe(1);
    expect([...(env.load(a + 5, 1) as Uint8Array)]).toEqual([0x42]);
  });

  it('O-2: the [vvar] mapping (VM_IO|VM_PFNMAP, no ->access) reads and writes as -EIO', () => {
    const env = bootEnv();
    const vvar = find_vvar_vma(env.task.mm!)!.vm_start;
    const buf = env.buffer(4096);
    const fd = procMem(env);
    expect(env.sys(ksys_pread64(fd, buf, 4096, vvar))).toBe(-EIO);
    expect(env.sys(ksys_pwrite64(fd, buf, 4096, vvar))).toBe(-EIO);
  });

  it('O-2: a VM_IO|VM_PFNMAP mapping with vm_ops->access is read through the hook', () => {
    const env = bootEnv();
    const inode = new_inode({ s_type: 'devtmpfs', s_nowriteback: true }, 'chr');
    let calls = 0;
    const f: file = alloc_file('/dev/hook', O_RDWR, inode, {
      name: 'hook_fops',
      *mmap(_f: file, vma: vm_area_struct) {
        vma.vm_flags |= VM_IO | VM_PFNMAP;
        vma.vm_ops = {
          name: 'hook_vm_ops',
          *access(_v, _addr, b, len) {
            calls++;
            b.fill(0x6b, 0, len);
            return len;
          },
        };
        return 0;
      },
    });
    const fd = env.sys(
      (function* () {
        const n = yield* get_unused_fd_flags(0);
        yield* fd_install(n, f);
        return n;
      })(),
    );
    const addr = env.sys(sys_mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0));
    const buf = env.buffer(4096);
    const pm = procMem(env);
    expect(env.sys(ksys_pread64(pm, buf, 16, addr))).toBe(16);
    expect(calls).toBe(1);
    expect([...(env.load(buf, 2) as Uint8Array)]).toEqual([0x6b, 0x6b]);
  });

  it('O-4: secretmem reads as -EIO (GUP refuses it)', () => {
    const env = bootEnv();
    const sfd = env.sys(sys_memfd_secret(0));
    expect(env.sys(sys_ftruncate(sfd, 4096))).toBe(0);
    const s = env.sys(sys_mmap(0, 4096, 3, MAP_SHARED, sfd, 0));
    expect(env.store(s, [1])).toBe('ok');
    const buf = env.buffer(4096);
    expect(env.sys(ksys_pread64(procMem(env), buf, 4096, s))).toBe(-EIO);
  });

  it('O-5: PROT_NONE is accessible with FOLL_FORCE: a read maps the zero page, a write an anon page', () => {
    const env = bootEnv();
    const none = env.mmap(8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
    const buf = env.buffer(4096, 7);
    const fd = procMem(env);
    expect(env.sys(ksys_pread64(fd, buf, 4096, none))).toBe(4096);
    expect(is_zero_pfn(env.pfnAt(none)!)).toBe(true);
    expect(env.sys(ksys_pwrite64(fd, buf, 4096, none + 4096))).toBe(4096);
    const p = env.pfnAt(none + 4096)!;
    expect(folio_test_anon(p as folio)).toBe(true);
    expect(env.load(none + 4096)).toBe('SIGSEGV');
  });

  it('O-6: a forced write to a read-only private file mapping COWs; to a read-only shared one is -EIO', () => {
    const env = bootEnv();
    env.sys(vfsCreateFile('/data', new Uint8Array(4096).fill(1)));
    const fd = env.sys(do_sys_open('/data', O_RDONLY, 0));
    const priv = env.sys(sys_mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0));
    const shared = env.sys(sys_mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0));
    env.load(priv);
    const cachePfn = env.pfnAt(priv)!;
    const buf = env.buffer(4096, 0x33);
    const pm = procMem(env);
    expect(env.sys(ksys_pwrite64(pm, buf, 1, priv))).toBe(1);
    // The process now sees its private anon copy; the file page is untouched.
    expect(env.pfnAt(priv)).not.toBe(cachePfn);
    expect([...(env.load(priv, 2) as Uint8Array)]).toEqual([0x33, 1]);
    expect([...(env.load(shared, 1) as Uint8Array)]).toEqual([1]);
    expect(env.sys(ksys_pwrite64(pm, buf, 1, shared))).toBe(-EIO);
  });
});

describe('proc_mem_foll_force', () => {
  it('§11: FOLL_FORCE by default; CONFIG_PROC_MEM_NO_FORCE (v6.12+) makes the forced write fail', () => {
    const env = bootEnv('6.18', { config: { CONFIG_PROC_MEM_NO_FORCE: true } });
    const ro = env.mmap(4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    const buf = env.buffer(4096);
    expect(env.sys(ksys_pwrite64(procMem(env), buf, 1, ro))).toBe(-EIO);
    const dflt = bootEnv('6.18');
    expect(proc_mem_foll_force(null as never, dflt.task.mm!)).toBe(true);
  });
});
