/*
 * The K-slot lease model (issue 5, benchmark), in Promela for SPIN. bench/kslot.ts runs the
 * same model in pfnsim and this one with SPIN, and prints both.
 *
 * Slot k: a driver's frame k is mapped by one VM_PFNMAP PTE. A mapper looks the pfn up
 * (follow_pfnmap_start under the PTE lock, with mmap_lock read held) and maps it into the
 * IOMMU; a zapper clears the PTE under its lock, frees the frame and reallocates it to another
 * owner; a DMA engine (hardware: it takes no CPU lock) makes 3 accesses through the IOMMU
 * entry, each checking that the frame still has the generation the entry was made for. A
 * request is in flight from its translation to its memory access, and an IOTLB invalidation
 * (the sync in iommu_unmap) waits until none is.
 *
 * BUG:   the mapper maps the pfn after follow_pfnmap_end. The lease check (pfnsan's
 *        "stale-pfn") fails when the stale pfn is published.
 * FIXED: the mapper maps the pfn before follow_pfnmap_end, under the DMA lock, while it
 *        holds the PTE lock; the zapper, after clearing the PTE (and flushing the TLB),
 *        runs the driver's MMU-notifier callback (->arch_invalidate_secondary_tlbs), which
 *        removes the IOMMU entry under the DMA lock and waits for requests in flight,
 *        before the frame is freed. One attempt: a mapper that finds no PTE maps nothing.
 *
 * Build: spin -a -DK=2 -DFIXED kslot.pml && gcc -O2 -DSAFETY -o pan pan.c && ./pan
 */
#ifndef K
#define K 2
#endif
#define NONE 255

byte mmap_readers;          /* mmap_lock held for read by this many mappers */
bit ptl[K];                 /* PTE lock of slot k's page table */
byte pte[K];                /* pfn mapped by slot k's PTE, or NONE */
bit leased[K];              /* the mapper's follow_pfnmap lease is live */
bit dma_lock[K];
byte iommu_pfn[K];          /* IOMMU entry of slot k: pfn and the generation it was made for */
byte iommu_gen[K];
byte inflight[K];           /* DMA requests translated but not yet completed */
byte owner[K];              /* frame k's owner: k+1 = the driver, 0 = free, K+1+k = another */
byte gen[K];                /* frame k's generation, bumped at each change of owner */

proctype mapper(byte k) {
  byte pfn = NONE;
  mmap_readers++;                                 /* mmap_read_lock */
  atomic { ptl[k] == 0 -> ptl[k] = 1 };           /* follow_pfnmap_start: PTE lock */
  if
  :: pte[k] != NONE -> pfn = pte[k]; leased[k] = 1
  :: else -> skip
  fi;
#ifdef FIXED
  if
  :: pfn != NONE ->                               /* iommu_map inside the window */
       atomic { dma_lock[k] == 0 -> dma_lock[k] = 1 };
       assert(leased[k]);
       iommu_pfn[k] = pfn;
       iommu_gen[k] = gen[pfn];
       dma_lock[k] = 0
  :: else -> skip
  fi;
#endif
  leased[k] = 0;                                  /* follow_pfnmap_end */
  ptl[k] = 0;
  mmap_readers--;                                 /* mmap_read_unlock */
#ifndef FIXED
  if
  :: pfn != NONE ->
       atomic { dma_lock[k] == 0 -> dma_lock[k] = 1 };
       assert(leased[k]);                         /* pfnsan: stale pfn published */
       iommu_pfn[k] = pfn;
       iommu_gen[k] = gen[pfn];
       dma_lock[k] = 0
  :: else -> skip
  fi
#endif
}

proctype zapper(byte k) {
  atomic { ptl[k] == 0 -> ptl[k] = 1 };           /* zap: PTE lock */
  pte[k] = NONE;
  ptl[k] = 0;
#ifdef FIXED
  atomic { dma_lock[k] == 0 -> dma_lock[k] = 1 }; /* secondary-TLB notifier callback */
  iommu_pfn[k] = NONE;                            /* iommu_unmap */
  inflight[k] == 0;                               /* iommu_iotlb_sync: drain */
  dma_lock[k] = 0;
#endif
  owner[k] = 0; gen[k] = gen[k] + 1;              /* __free_pages */
  owner[k] = K + 1 + k; gen[k] = gen[k] + 1       /* reallocated to another owner */
}

proctype dma(byte k) {
  byte i = 0, p, g;
  do
  :: i < 3 ->
       atomic {                                   /* IOMMU translation */
         p = iommu_pfn[k]; g = iommu_gen[k];
         if
         :: p != NONE -> inflight[k]++
         :: else -> skip
         fi
       };
       if
       :: p != NONE ->
            assert(gen[p] == g);                  /* the frame still has the entry's owner */
            inflight[k]--                         /* the request completes */
       :: else -> skip
       fi;
       i++
  :: else -> break
  od
}

init {
  byte k = 0;
  atomic {
    do
    :: k < K ->
         pte[k] = k; owner[k] = k + 1; gen[k] = 0; iommu_pfn[k] = NONE;
         k++
    :: else -> break
    od;
    k = 0;
    do
    :: k < K -> run mapper(k); run zapper(k); run dma(k); k++
    :: else -> break
    od
  }
}
