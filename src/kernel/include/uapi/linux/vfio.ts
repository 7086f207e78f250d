/**
 * VFIO user API: ioctl numbers, extensions and argument structures.
 * @kernel include/uapi/linux/vfio.h (5.7–6.18; the numbers and layouts below did not change)
 *
 * The model passes an ioctl's argument structure as a value (fs/ioctl.ts); outputs are
 * written into it. `argsz` is still checked as the kernel checks it, against the
 * `*_MINSZ` constants (offsetofend of the last mandatory field in the C layout).
 * Left out: the capability chains, IRQ/PCI-hot-reset/migration/feature structures.
 */

/** `_IO(type, nr)` of include/uapi/asm-generic/ioctl.h: no direction, no size. */
function _IO(type: number, nr: number): number {
  return (type << 8) | nr;
}

export const VFIO_API_VERSION = 0;

/* Extensions (VFIO_CHECK_EXTENSION, and the IOMMU types for VFIO_SET_IOMMU). */
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
/** IOMMU enforces DMA cache coherence (ex. PCIe NoSnoop stripping). */
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
export const VFIO_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
/** VFIO_IOMMU_UNMAP_DMA accepts VFIO_DMA_UNMAP_FLAG_ALL (5.12+, c19650995374). */
export const VFIO_UNMAP_ALL = 9;
/** VFIO_DMA_MAP/UNMAP_FLAG_VADDR supported (5.12+, c3cbab24db38). */
export const VFIO_UPDATE_VADDR = 10;

/** ';' — the VFIO ioctl type. */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;

/* Container ioctls (/dev/vfio/vfio). */
export const VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0);
export const VFIO_CHECK_EXTENSION = _IO(VFIO_TYPE, VFIO_BASE + 1);
export const VFIO_SET_IOMMU = _IO(VFIO_TYPE, VFIO_BASE + 2);

/* Group ioctls (/dev/vfio/$GROUP). */
export const VFIO_GROUP_GET_STATUS = _IO(VFIO_TYPE, VFIO_BASE + 3);
export const VFIO_GROUP_SET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 4);
export const VFIO_GROUP_UNSET_CONTAINER = _IO(VFIO_TYPE, VFIO_BASE + 5);
export const VFIO_GROUP_GET_DEVICE_FD = _IO(VFIO_TYPE, VFIO_BASE + 6);

/* Device ioctls (the fd from VFIO_GROUP_GET_DEVICE_FD). */
export const VFIO_DEVICE_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 7);
export const VFIO_DEVICE_GET_REGION_INFO = _IO(VFIO_TYPE, VFIO_BASE + 8);
export const VFIO_DEVICE_GET_IRQ_INFO = _IO(VFIO_TYPE, VFIO_BASE + 9);
export const VFIO_DEVICE_SET_IRQS = _IO(VFIO_TYPE, VFIO_BASE + 10);
export const VFIO_DEVICE_RESET = _IO(VFIO_TYPE, VFIO_BASE + 11);

/* Type1 IOMMU ioctls (on the container once VFIO_SET_IOMMU chose type1). */
export const VFIO_IOMMU_GET_INFO = _IO(VFIO_TYPE, VFIO_BASE + 12);
export const VFIO_IOMMU_MAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 13);
export const VFIO_IOMMU_UNMAP_DMA = _IO(VFIO_TYPE, VFIO_BASE + 14);

/** VFIO_GROUP_GET_STATUS argument. */
export interface vfio_group_status {
  argsz: number;
  flags: number;
}
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;
/** offsetofend(struct vfio_group_status, flags) */
export const VFIO_GROUP_STATUS_MINSZ = 8;

/** VFIO_DEVICE_GET_INFO argument. */
export interface vfio_device_info {
  argsz: number;
  flags: number;
  num_regions: number;
  num_irqs: number;
}
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
/** offsetofend(struct vfio_device_info, num_irqs) */
export const VFIO_DEVICE_INFO_MINSZ = 16;

/** VFIO_DEVICE_GET_REGION_INFO argument: `index` in; the rest out. */
export interface vfio_region_info {
  argsz: number;
  flags: number;
  index: number;
  cap_offset: number;
  size: number;
  offset: number;
}
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
/** offsetofend(struct vfio_region_info, offset) */
export const VFIO_REGION_INFO_MINSZ = 32;

/* vfio-pci region indexes (enum in include/uapi/linux/vfio.h). */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
export const VFIO_PCI_NUM_REGIONS = 9;

/** VFIO_IOMMU_MAP_DMA argument. */
export interface vfio_iommu_type1_dma_map {
  argsz: number;
  flags: number;
  /** Process virtual address */
  vaddr: number;
  /** IO virtual address */
  iova: number;
  /** Size of mapping (bytes) */
  size: number;
}
/** readable from device */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
/** writable from device */
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
/** update the vaddr of an existing mapping (5.12+, c3cbab24db38) */
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;
/** offsetofend(struct vfio_iommu_type1_dma_map, size) */
export const VFIO_IOMMU_TYPE1_DMA_MAP_MINSZ = 32;

/** VFIO_IOMMU_UNMAP_DMA argument: `size` is written back with the bytes unmapped. */
export interface vfio_iommu_type1_dma_unmap {
  argsz: number;
  flags: number;
  iova: number;
  size: number;
}
/** (5.8+, 331e33d2960c) */
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
/** (5.12+, c19650995374) */
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
/** (5.12+, c3cbab24db38) */
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;
/** offsetofend(struct vfio_iommu_type1_dma_unmap, size) */
export const VFIO_IOMMU_TYPE1_DMA_UNMAP_MINSZ = 24;

/** VFIO_IOMMU_GET_INFO argument (capability chain left out). */
export interface vfio_iommu_type1_info {
  argsz: number;
  flags: number;
  iova_pgsizes: number;
  cap_offset: number;
}
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
/** offsetofend(struct vfio_iommu_type1_info, iova_pgsizes) */
export const VFIO_IOMMU_TYPE1_INFO_MINSZ = 16;
