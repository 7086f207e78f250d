import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENTRY_POINTS, MAPPING_KINDS } from './cases.js';
import {
  RESULT_PATTERN,
  caseIds,
  conformanceDir,
  diffTables,
  liveKernelVersion,
  loadExpected,
  loadExpectedFile,
  parseProbeOutput,
  runLive,
  summarize,
} from './live.js';

const LIVE = process.env.PFNSIM_LIVE === '1';

describe('parseProbeOutput', () => {
  it('reads header lines, VmFlags lines and one result per case', () => {
    const out = parseProbeOutput(
      [
        '# uname-r 6.18.44-fc-v595',
        '# thp_enabled always [madvise] never',
        '# vmflags vvar rd mr pf io de dd ',
        'vvar/cpu-read ok',
        'vvar/proc-mem-read -EIO',
        'anon-readonly/cpu-write SIGSEGV',
        'vvar/vmsplice short:100',
        'hugetlb-anon/mlock skip:no-hugepages-ENOMEM',
        '',
      ].join('\n'),
    );
    expect(out.meta).toEqual({
      'uname-r': '6.18.44-fc-v595',
      thp_enabled: 'always [madvise] never',
    });
    expect(out.vmflags).toEqual({ vvar: 'rd mr pf io de dd' });
    expect(out.results).toEqual({
      'vvar/cpu-read': 'ok',
      'vvar/proc-mem-read': '-EIO',
      'anon-readonly/cpu-write': 'SIGSEGV',
      'vvar/vmsplice': 'short:100',
      'hugetlb-anon/mlock': 'skip:no-hugepages-ENOMEM',
    });
  });

  it('rejects unknown case ids and results outside the cases.ts conventions', () => {
    expect(() => parseProbeOutput('vvar/cpu-jump ok\n')).toThrow(/unknown case/);
    expect(() => parseProbeOutput('vvar/cpu-read EFAULT\n')).toThrow(/bad result/);
    expect(() => parseProbeOutput('vvar/cpu-read\n')).toThrow(/malformed/);
  });
});

describe('diffTables / summarize', () => {
  it('lists differing and one-sided cases; counts result classes per entry point', () => {
    const a = { 'vvar/cpu-read': 'ok', 'vvar/mlock': 'ok' };
    const b = { 'vvar/cpu-read': 'SIGBUS', 'vvar/futex-shared': '-EFAULT' };
    expect(diffTables(a, b)).toEqual([
      { id: 'vvar/cpu-read', expected: 'ok', actual: 'SIGBUS' },
      { id: 'vvar/mlock', expected: 'ok', actual: undefined },
      { id: 'vvar/futex-shared', expected: undefined, actual: '-EFAULT' },
    ]);
    const s = summarize(b);
    expect(s['cpu-read']).toEqual({ ok: 0, short: 0, errno: 0, signal: 1, skip: 0 });
    expect(s['futex-shared']!.errno).toBe(1);
  });

  it('liveKernelVersion keeps major.minor of uname -r', () => {
    expect(liveKernelVersion('6.18.44-fc-v595')).toBe('6.18');
    expect(liveKernelVersion('5.10.0-28-amd64')).toBe('5.10');
  });
});

describe('probe.c', () => {
  it('runs exactly the case ids of cases.ts, in order', () => {
    const src = readFileSync(join(conformanceDir(), 'probe.c'), 'utf8');
    const table = (name: string): string[] => {
      const m = new RegExp(`${name}\\[\\] = \\{([^}]*)\\}`).exec(src);
      return [...(m?.[1] ?? '').matchAll(/"([^"]+)"/g)].map((x) => x[1]!);
    };
    expect(table('kinds')).toEqual(MAPPING_KINDS.map((k) => k.id));
    expect(table('entries')).toEqual(ENTRY_POINTS.map((e) => e.id));
  });
});

describe('expected-6.18.json', () => {
  const file = loadExpectedFile('6.18');
  const t = file.results;

  it('was recorded on a 6.18 kernel and holds a non-skip result for every case', () => {
    expect(liveKernelVersion(file.kernel)).toBe('6.18');
    expect(file.version).toBe('6.18');
    expect(Object.keys(t)).toEqual(caseIds());
    for (const [id, r] of Object.entries(t)) {
      expect(r, id).toMatch(RESULT_PATTERN);
      expect(r.startsWith('skip:'), `${id} ${r}`).toBe(false);
    }
  });

  // The recorded table against kernel-spec.md §11 (observations on this machine's 6.18).
  const gup = [
    'io_uring-register',
    'process_vm_readv',
    'process_vm_writev',
    'vmsplice',
    'odirect-read',
    'odirect-write',
  ];
  const row = (kind: string, entries: readonly string[]): string[] =>
    entries.map((e) => t[`${kind}/${e}`]!);

  it('O-1: long-term write pins of dirty-tracked shared file mappings fail -EFAULT, others pin', () => {
    expect(t['ext4-shared-rw/io_uring-register']).toBe('-EFAULT');
    expect(t['aio-ring/io_uring-register']).toBe('-EFAULT');
    for (const k of ['memfd-shared', 'tmpfs-shared', 'devzero-shared', 'hugetlb-memfd']) {
      expect(t[`${k}/io_uring-register`], k).toBe('ok');
    }
    // non-long-term pins of the same ext4 range succeed
    expect(row('ext4-shared-rw', ['process_vm_writev', 'odirect-read'])).toEqual(['ok', 'ok']);
  });

  it('O-2: VM_IO|VM_PFNMAP: GUP -EFAULT, /proc/pid/mem -EIO, MADV_POPULATE -EINVAL, mlock 0', () => {
    for (const k of ['vvar', 'perf-ring']) {
      expect(row(k, [...gup, 'futex-shared']), k).toEqual(Array(7).fill('-EFAULT'));
      expect(row(k, ['proc-mem-read', 'proc-mem-write']), k).toEqual(['-EIO', '-EIO']);
      expect(row(k, ['madv-populate-read', 'madv-populate-write']), k).toEqual([
        '-EINVAL',
        '-EINVAL',
      ]);
      expect(t[`${k}/mlock`], k).toBe('ok');
      expect(t[`${k}/cpu-read`], k).toBe('ok');
    }
  });

  it('O-3: VM_MIXEDMAP ring: every GUP works (long-term too); shared futex -EFAULT', () => {
    expect(row('mixedmap-ring', gup)).toEqual(Array(gup.length).fill('ok'));
    expect(t['mixedmap-ring/futex-shared']).toBe('-EFAULT');
  });

  it('O-4: secretmem: GUP -EFAULT, /proc/pid/mem -EIO, populate -EINVAL, mlock -ENOMEM', () => {
    expect(row('secretmem', [...gup, 'futex-shared'])).toEqual(Array(7).fill('-EFAULT'));
    expect(row('secretmem', ['proc-mem-read', 'proc-mem-write'])).toEqual(['-EIO', '-EIO']);
    expect(t['secretmem/madv-populate-read']).toBe('-EINVAL');
    expect(t['secretmem/mlock']).toBe('-ENOMEM');
  });

  it('O-5: PROT_NONE: all but /proc/pid/mem fail; mlock -ENOMEM', () => {
    expect(row('prot-none', gup)).toEqual(Array(gup.length).fill('-EFAULT'));
    expect(row('prot-none', ['proc-mem-read', 'proc-mem-write'])).toEqual(['ok', 'ok']);
    expect(row('prot-none', ['cpu-read', 'mlock'])).toEqual(['SIGSEGV', '-ENOMEM']);
  });

  it('O-6: read-only: forced write lands in private, -EIO in shared; non-forced writes -EFAULT', () => {
    expect(t['ext4-private-ro/proc-mem-write']).toBe('ok');
    expect(t['anon-readonly/proc-mem-write']).toBe('ok');
    expect(t['ext4-shared-ro/proc-mem-write']).toBe('-EIO');
    for (const k of ['ext4-private-ro', 'ext4-shared-ro', 'anon-readonly']) {
      expect(row(k, ['process_vm_writev', 'odirect-read', 'io_uring-register']), k).toEqual(
        Array(3).fill('-EFAULT'),
      );
    }
  });

  it('O-7: shared futex -EFAULT on read-only anon (zero page) and mapping-less pages', () => {
    expect(t['anon-readonly/futex-shared']).toBe('-EFAULT');
    expect(t['mixedmap-ring/futex-shared']).toBe('-EFAULT');
    expect(t['anon-private/futex-shared']).toBe('ok');
  });
});

describe('live kernel', () => {
  it.skipIf(!LIVE)(
    'the live kernel still gives the results of expected-<version>.json (PFNSIM_LIVE=1)',
    () => {
      const live = runLive();
      if ('skipped' in live)
        throw new Error(`PFNSIM_LIVE=1 but live side skipped: ${live.skipped}`);
      expect(diffTables(loadExpected(liveKernelVersion()), live)).toEqual([]);
    },
  );
});
