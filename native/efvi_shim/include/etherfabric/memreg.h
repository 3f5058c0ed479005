/* etherfabric/memreg.h -- pollnet's ef_vi look-alike (native/efvi_shim): registered memory.
 * As in Onload: p_mem page-aligned (4 KiB), len a multiple of 2048; DMA addresses are
 * contiguous only within each 4 KiB page (this library makes them discontiguous across
 * pages on purpose, so code that assumes otherwise breaks here first). */
#ifndef PN_EFVI_SHIM_MEMREG_H
#define PN_EFVI_SHIM_MEMREG_H

#include <etherfabric/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ef_memreg {
    ef_addr *mr_dma_addrs;
    ef_addr *mr_dma_addrs_base;
} ef_memreg;

struct ef_pd;

extern int ef_memreg_alloc(ef_memreg *mr, ef_driver_handle mr_dh, struct ef_pd *pd,
                           ef_driver_handle pd_dh, void *p_mem, size_t len_bytes);
extern int ef_memreg_free(ef_memreg *mr, ef_driver_handle mr_dh);

ef_vi_inline ef_addr ef_memreg_dma_addr(ef_memreg *mr, size_t offset)
{
    return mr->mr_dma_addrs[offset >> EF_VI_NIC_PAGE_SHIFT] |
           (offset & (EF_VI_NIC_PAGE_SIZE - 1));
}

#ifdef __cplusplus
}
#endif
#endif
