/**
 * Kernel versions the model knows, and the version gates used at the places where
 * behaviour changed. A gate reads `LINUX_VERSION_CODE() >= KERNEL_VERSION(6, 12, 0)`
 * with the commit that changed the behaviour cited beside it.
 *
 * @kernel include/generated/uapi/linux/version.h:KERNEL_VERSION (all versions)
 */
import { currentKernel } from './kernel/kernel.js';

/** The versions a run may name. Each is the .0 release of that series. */
export const SUPPORTED_VERSIONS = [
  '5.7',
  '5.8',
  '5.10',
  '5.11',
  '5.12',
  '5.13',
  '5.15',
  '6.1',
  '6.5',
  '6.6',
  '6.10',
  '6.12',
  '6.13',
  '6.15',
  '6.18',
] as const;

export type VersionName = (typeof SUPPORTED_VERSIONS)[number];

/** KERNEL_VERSION(a, b, c) = (a << 16) + (b << 8) + min(c, 255). */
export function KERNEL_VERSION(a: number, b: number, c = 0): number {
  return a * 65536 + b * 256 + Math.min(c, 255);
}

export class VersionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VersionError';
  }
}

/** Parses "6.12" or "6.12.3"; throws VersionError naming the supported versions. */
export function parseVersion(v: string): { name: string; code: number } {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(v.trim());
  if (!m) {
    throw new VersionError(
      `unknown kernel version '${v}': expected one of ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const series = `${Number(m[1])}.${Number(m[2])}`;
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(series)) {
    throw new VersionError(
      `unknown kernel version '${v}': the model covers ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const sub = m[3] !== undefined ? Number(m[3]) : 0;
  return {
    name: m[3] !== undefined ? `${series}.${sub}` : series,
    code: KERNEL_VERSION(Number(m[1]), Number(m[2]), sub),
  };
}

/** The version code of the kernel being modelled. */
export function LINUX_VERSION_CODE(): number {
  return currentKernel().version.code;
}

/** Shorthand for `LINUX_VERSION_CODE() >= KERNEL_VERSION(a, b, c)`. */
export function since(a: number, b: number, c = 0): boolean {
  return currentKernel().version.code >= KERNEL_VERSION(a, b, c);
}
