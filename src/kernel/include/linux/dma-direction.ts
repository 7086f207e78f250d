/**
 * enum dma_data_direction and DMA attributes.
 * @kernel include/linux/dma-direction.h, include/linux/dma-mapping.h (all versions)
 */
export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
export const DMA_FROM_DEVICE = 2;
export const DMA_NONE = 3;
export type dma_data_direction = 0 | 1 | 2 | 3;

/** valid_dma_direction(dir). @kernel include/linux/dma-direction.h:valid_dma_direction (all versions) */
export function valid_dma_direction(dir: number): boolean {
  return dir === DMA_BIDIRECTIONAL || dir === DMA_TO_DEVICE || dir === DMA_FROM_DEVICE;
}

/* include/linux/dma-mapping.h: DMA_ATTR_* */
export const DMA_ATTR_WEAK_ORDERING = 1 << 1;
export const DMA_ATTR_WRITE_COMBINE = 1 << 2;
export const DMA_ATTR_NO_KERNEL_MAPPING = 1 << 4;
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;
export const DMA_ATTR_FORCE_CONTIGUOUS = 1 << 6;
export const DMA_ATTR_ALLOC_SINGLE_PAGES = 1 << 7;
export const DMA_ATTR_NO_WARN = 1 << 8;
export const DMA_ATTR_PRIVILEGED = 1 << 9;

/** DMA_MAPPING_ERROR: (~(dma_addr_t)0); as a JS number 2^64 (above every valid address). */
export const DMA_MAPPING_ERROR = 2 ** 64;

/** DMA_BIT_MASK(n). */
export function DMA_BIT_MASK(n: number): number {
  return n >= 64 ? 2 ** 64 - 1 : 2 ** n - 1;
}
