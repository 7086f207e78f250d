/**
 * KernelConfig: the CONFIG_* options the model reads, with their defaults per version.
 * Resolved once (CLI or scenario) and passed to the kernel instance; code reads them with
 * IS_ENABLED(), as kernel code does.
 *
 * Defaults follow an x86_64 distribution-like debug kernel: the debugging options that
 * turn a silent bug into a report (DEBUG_VM, LOCKDEP) are on, so the model reports what
 * such a kernel reports.
 */
import { KERNEL_VERSION } from './version.js';
import { currentKernel } from './kernel/kernel.js';

export type ConfigValue = boolean | number;
export type KernelConfig = Readonly<Record<string, ConfigValue>>;

interface OptionSpec {
  readonly help: string;
  readonly def: ConfigValue | ((code: number) => ConfigValue);
  /** First version that has the option (KERNEL_VERSION code). */
  readonly since?: number;
  /** First version that no longer has it. */
  readonly until?: number;
  /** The option is a number, not a bool. */
  readonly numeric?: boolean;
}

const V = KERNEL_VERSION;

export const CONFIG_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  CONFIG_MMU: { help: 'memory management unit', def: true },
  CONFIG_X86_64: { help: 'x86-64 architecture', def: true },
  CONFIG_ARCH_HAS_PTE_SPECIAL: {
    help: 'the architecture has a software "special" PTE bit (x86: yes); n models arches without it',
    def: true,
  },
  CONFIG_ARCH_SUPPORTS_PMD_PFNMAP: {
    help: 'huge PMD pfnmap entries (mm: huge pfnmap series, v6.12)',
    def: true,
    since: V(6, 12),
  },
  CONFIG_ARCH_SUPPORTS_PUD_PFNMAP: {
    help: 'huge PUD pfnmap entries (v6.12)',
    def: true,
    since: V(6, 12),
  },
  CONFIG_TRANSPARENT_HUGEPAGE: { help: 'transparent huge pages', def: true },
  CONFIG_HAVE_GUP_FAST: {
    help: 'lockless get_user_pages_fast (CONFIG_HAVE_FAST_GUP before v6.9)',
    def: true,
  },
  CONFIG_MIGRATION: { help: 'page migration', def: true },
  CONFIG_CMA: { help: 'contiguous memory allocator', def: true },
  CONFIG_CMA_DEBUG: {
    help: 'CMA debug messages: cma_debug_show_areas() on failure (removed in v6.9, which always shows them)',
    def: false,
    until: V(6, 9),
  },
  CONFIG_ZONE_DMA32: { help: 'ZONE_DMA32 below 4 GiB', def: true },
  CONFIG_MMU_NOTIFIER: { help: 'MMU notifiers', def: true },
  CONFIG_X86_PAT: { help: 'page attribute table memtype tracking of pfn mappings', def: true },
  CONFIG_X86_BUG_L1TF: {
    help: 'model-only: the CPU has X86_BUG_L1TF (boot_cpu_has_bug), so pfn_modify_allowed() refuses PROT_NONE pfnmaps above the L1TF limit without CAP_SYS_ADMIN',
    def: false,
  },
  CONFIG_SPARSEMEM_VMEMMAP: { help: 'sparse memmap in sections', def: true },
  CONFIG_DEBUG_VM: { help: 'VM_BUG_ON and VM_WARN_ON checks', def: true },
  CONFIG_LOCKDEP: { help: 'lock dependency checking and lockdep_assert_held()', def: true },
  CONFIG_PROVE_LOCKING: { help: 'lock proving (implies LOCKDEP)', def: true },
  CONFIG_SHMEM: { help: 'shmem/tmpfs', def: true },
  CONFIG_MEMFD_CREATE: { help: 'memfd_create', def: true },
  CONFIG_SECRETMEM: { help: 'memfd_secret', def: true, since: V(5, 14) },
  CONFIG_HUGETLBFS: { help: 'hugetlbfs', def: true },
  CONFIG_STRICT_FOLLOW_PFN: {
    help: 'reject unsafe_follow_pfn() users (security/Kconfig, 69bacee7f9ad, v5.13)',
    def: false,
    since: V(5, 13),
    until: V(5, 14),
  },
  CONFIG_DEVMEM: { help: '/dev/mem (drivers/char/mem.c); off: no /dev/mem node', def: true },
  CONFIG_STRICT_DEVMEM: { help: '/dev/mem only for non-RAM, non-claimed ranges', def: true },
  CONFIG_IO_STRICT_DEVMEM: {
    help: '/dev/mem refuses and revokes ranges claimed by drivers',
    def: false,
  },
  CONFIG_PROC_MEM_NO_FORCE: {
    help: '/proc/<pid>/mem never uses FOLL_FORCE (choice with PROC_MEM_ALWAYS_FORCE, the default; 41e8149c8892, v6.12)',
    def: false,
    since: V(6, 12),
  },
  CONFIG_PROC_MEM_FORCE_PTRACE: {
    help: '/proc/<pid>/mem uses FOLL_FORCE only for an active ptracer (41e8149c8892, v6.12)',
    def: false,
    since: V(6, 12),
  },
  CONFIG_PFNSAN: {
    help: 'model-only: pfnsan, the PFN sanitizer (leases, frame owners and generations, reports)',
    def: true,
  },
  CONFIG_IOMMU_SUPPORT: { help: 'IOMMU drivers and the IOMMU API', def: true },
  CONFIG_IOMMU_DEFAULT_DMA_STRICT: {
    help: 'DMA API unmaps flush the IOTLB synchronously (else lazy flush queue; iommu.strict)',
    def: true,
  },
  CONFIG_PCI_P2PDMA: { help: 'peer-to-peer DMA between PCI devices', def: true },
  CONFIG_VFIO_IOMMU_TYPE1: { help: 'VFIO type1 IOMMU backend', def: true },
  CONFIG_VFIO_PCI: { help: 'vfio-pci driver', def: true },
  CONFIG_KVM: { help: 'kernel-based virtual machine', def: true },
  CONFIG_ACRN_HSM: { help: 'ACRN hypervisor service module (v5.12+)', def: true, since: V(5, 12) },
  CONFIG_DMA_SHARED_BUFFER: { help: 'dma-buf', def: true },
  CONFIG_DMABUF_MOVE_NOTIFY: {
    help: 'dma-buf move notification between drivers (EXPERIMENTAL; default n): without it dynamic importers are pinned at map time (bb42df4662a4, v5.7)',
    def: false,
  },
  CONFIG_INFINIBAND_ON_DEMAND_PAGING: { help: 'RDMA on-demand paging (ODP)', def: true },
  CONFIG_HZ: { help: 'timer frequency (jiffies per second)', def: 250, numeric: true },
  CONFIG_NR_CPUS: { help: 'number of CPUs', def: 2, numeric: true },
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function versionName(code: number): string {
  return `${Math.floor(code / 65536)}.${Math.floor(code / 256) % 256}`;
}

/** Whether the option exists in the kernel with this version code. */
export function optionExists(name: string, code: number): boolean {
  const o = CONFIG_OPTIONS[name];
  if (!o) return false;
  return (o.since === undefined || code >= o.since) && (o.until === undefined || code < o.until);
}

/**
 * Builds the configuration for a version from the defaults and user overrides. Values
 * may be given as 'y'/'n'/'1'/'0'/numbers. Throws ConfigError with a one-line message
 * for an unknown option, an option that the version lacks, or a bad value.
 */
export function resolveConfig(
  code: number,
  overrides: Readonly<Record<string, ConfigValue | string>> = {},
): KernelConfig {
  const out: Record<string, ConfigValue> = {};
  for (const [name, spec] of Object.entries(CONFIG_OPTIONS)) {
    if (!optionExists(name, code)) continue;
    out[name] = typeof spec.def === 'function' ? spec.def(code) : spec.def;
  }
  for (const [rawName, raw] of Object.entries(overrides)) {
    const name = rawName.startsWith('CONFIG_') ? rawName : `CONFIG_${rawName}`;
    const spec = CONFIG_OPTIONS[name];
    if (!spec) {
      throw new ConfigError(`unknown config option ${name}; 'pfnsim config' lists the known ones`);
    }
    if (!optionExists(name, code)) {
      const when =
        spec.since !== undefined && code < spec.since
          ? `it was added in ${versionName(spec.since)}`
          : `it was removed in ${versionName(spec.until!)}`;
      throw new ConfigError(`${name} does not exist in kernel ${versionName(code)}: ${when}`);
    }
    out[name] = parseValue(name, raw, spec.numeric === true);
  }
  if (out.CONFIG_PROVE_LOCKING === true) out.CONFIG_LOCKDEP = true;
  return Object.freeze(out);
}

function parseValue(name: string, raw: ConfigValue | string, numeric: boolean): ConfigValue {
  if (numeric) {
    const n = typeof raw === 'number' ? raw : Number(raw);
    if (!Number.isInteger(n) || n <= 0) {
      throw new ConfigError(`${name} takes a positive whole number, not '${String(raw)}'`);
    }
    return n;
  }
  if (typeof raw === 'boolean') return raw;
  const s = String(raw).toLowerCase();
  if (s === 'y' || s === 'yes' || s === '1' || s === 'true') return true;
  if (s === 'n' || s === 'no' || s === '0' || s === 'false') return false;
  throw new ConfigError(`${name} takes y or n, not '${String(raw)}'`);
}

/**
 * IS_ENABLED(CONFIG_X): whether the running kernel was built with the option.
 * @kernel include/linux/kconfig.h:IS_ENABLED (all versions)
 */
export function IS_ENABLED(name: string): boolean {
  return currentKernel().config[name] === true;
}
