/**
 * WARN/BUG/taint, printk rate limits, lockdep assertions, versions and KernelConfig.
 */
import { describe, expect, it } from 'vitest';
import { Kernel } from './kernel.js';
import {
  BUG,
  BUG_ON,
  KernelBug,
  TAINT_USER,
  TAINT_WARN,
  VM_BUG_ON,
  WARN,
  WARN_ON,
  WARN_ON_ONCE,
  WARN_ONCE,
  add_taint,
  LOCKDEP_NOW_UNRELIABLE,
  LOCKDEP_STILL_OK,
  print_tainted,
  test_taint,
} from './panic.js';
import { ___ratelimit, ratelimit_state, dmesg, pr_info } from './printk.js';
import {
  lockdep_assert_held,
  spinlock_t,
  spin_lock,
  spin_unlock,
} from '../include/linux/spinlock.js';
import { parseVersion, since, KERNEL_VERSION } from '../version.js';
import { resolveConfig } from '../kconfig.js';

function warnings(k: Kernel): number {
  return k.log.filter((l) => l.text.startsWith('WARNING: CPU: 0')).length;
}

describe('WARN family', () => {
  it('WARN_ON prints a cut-here report with the call path, taints W, returns the condition', () => {
    const k = new Kernel({ version: '6.12' });
    function some_kernel_function(): boolean {
      return WARN_ON(true);
    }
    expect(some_kernel_function()).toBe(true);
    expect(WARN_ON(false)).toBe(false);
    expect(k.log[0]!.text).toBe('------------[ cut here ]------------');
    expect(warnings(k)).toBe(1);
    expect(test_taint(TAINT_WARN)).toBe(true);
    expect(print_tainted()).toBe('Tainted: G        W');
  });

  it('WARN prints its message before the WARNING line', () => {
    const k = new Kernel({ version: '6.12' });
    WARN(true, 'unsafe follow_pfn usage');
    expect(k.log.map((l) => l.text).slice(0, 3)).toEqual([
      '------------[ cut here ]------------',
      'unsafe follow_pfn usage',
      expect.stringMatching(/^WARNING: CPU: 0 PID: 0 at /),
    ]);
  });

  it('WARN_ON_ONCE and WARN_ONCE fire once per call site and still return the condition', () => {
    const k = new Kernel({ version: '6.12' });
    const site = (): boolean => WARN_ON_ONCE(true);
    const other = (): boolean => WARN_ONCE(true, 'x');
    expect([site(), site(), site()]).toEqual([true, true, true]);
    other();
    other();
    expect(warnings(k)).toBe(2);
  });
});

describe('BUG family', () => {
  it('BUG throws KernelBug with "kernel BUG at" and an oops in the log, taint D', () => {
    const k = new Kernel({ version: '6.12' });
    expect(() => BUG()).toThrow(KernelBug);
    expect(k.log.some((l) => /^kernel BUG at /.test(l.text))).toBe(true);
    expect(k.log.some((l) => l.text.startsWith('Oops: invalid opcode'))).toBe(true);
    expect(k.tainted_mask & (1 << 7)).not.toBe(0);
    expect(k.debug_locks).toBe(false);
  });

  it('BUG_ON only on a true condition; VM_BUG_ON only with CONFIG_DEBUG_VM', () => {
    new Kernel({ version: '6.12' });
    expect(() => BUG_ON(false)).not.toThrow();
    expect(() => VM_BUG_ON(true)).toThrow(KernelBug);
    new Kernel({ version: '6.12', config: { CONFIG_DEBUG_VM: 'n' } });
    expect(() => VM_BUG_ON(true)).not.toThrow();
  });
});

describe('add_taint', () => {
  it('LOCKDEP_NOW_UNRELIABLE turns lock debugging off once, with the message', () => {
    const k = new Kernel({ version: '6.12' });
    add_taint(TAINT_USER, LOCKDEP_STILL_OK);
    expect(k.debug_locks).toBe(true);
    add_taint(5, LOCKDEP_NOW_UNRELIABLE);
    add_taint(5, LOCKDEP_NOW_UNRELIABLE);
    expect(
      k.log.filter((l) => l.text === 'Disabling lock debugging due to kernel taint'),
    ).toHaveLength(1);
    expect(print_tainted()).toBe('Tainted: G    BU');
  });
});

describe('___ratelimit', () => {
  it('allows burst messages per interval, then reports how many were suppressed', () => {
    const k = new Kernel({ version: '6.12' }); // HZ 250
    const rs = new ratelimit_state(250, 3);
    const ok = [1, 2, 3, 4, 5].map(() => ___ratelimit(rs, 'f'));
    expect(ok).toEqual([true, true, true, false, false]);
    k.ktime_ns += 1e9; // one second = one interval later
    expect(___ratelimit(rs, 'f')).toBe(true);
    expect(k.log.map((l) => l.text)).toContain('f: 2 callbacks suppressed');
  });
});

describe('lockdep_assert_held', () => {
  it('WARNs under CONFIG_LOCKDEP when the lock is not held by the running thread, not when it is', () => {
    const k = new Kernel({ version: '6.12' });
    const l = new spinlock_t('test.lock');
    lockdep_assert_held(l);
    expect(warnings(k)).toBe(1);
    k.run(
      (function* () {
        yield* spin_lock(l);
        lockdep_assert_held(l);
        yield* spin_unlock(l);
      })(),
    );
    expect(warnings(k)).toBe(1);
    new Kernel({ version: '6.12', config: { CONFIG_LOCKDEP: 'n', CONFIG_PROVE_LOCKING: 'n' } });
    lockdep_assert_held(l);
  });
});

describe('versions and config', () => {
  it('parses supported versions and gates on them', () => {
    expect(parseVersion('6.12').code).toBe(KERNEL_VERSION(6, 12, 0));
    expect(parseVersion('6.18.22').name).toBe('6.18.22');
    expect(() => parseVersion('6.7')).toThrow(/unknown kernel version '6.7'/);
    expect(() => parseVersion('banana')).toThrow(/unknown kernel version/);
    new Kernel({ version: '6.1' });
    expect(since(6, 1)).toBe(true);
    expect(since(6, 5)).toBe(false);
  });

  it('config: defaults, overrides, unknown options and options a version lacks are errors', () => {
    const c = resolveConfig(KERNEL_VERSION(5, 13), { STRICT_FOLLOW_PFN: 'y' });
    expect(c.CONFIG_STRICT_FOLLOW_PFN).toBe(true);
    expect(c.CONFIG_ARCH_HAS_PTE_SPECIAL).toBe(true);
    expect(() => resolveConfig(KERNEL_VERSION(6, 12), { CONFIG_STRICT_FOLLOW_PFN: 'y' })).toThrow(
      'CONFIG_STRICT_FOLLOW_PFN does not exist in kernel 6.12: it was removed in 5.14',
    );
    expect(() => resolveConfig(KERNEL_VERSION(6, 12), { CONFIG_NOPE: 'y' })).toThrow(
      /unknown config option CONFIG_NOPE/,
    );
    expect(() => resolveConfig(KERNEL_VERSION(6, 12), { CONFIG_DEBUG_VM: 'maybe' })).toThrow(
      /takes y or n/,
    );
  });

  it('printk lines carry the logical time and dmesg formats them', () => {
    const k = new Kernel({ version: '6.12' });
    k.ktime_ns = 1_500_000_000;
    pr_info('hello');
    expect(dmesg()).toBe('[    1.500000] hello');
  });
});
