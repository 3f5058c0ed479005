/* etherfabric/base.h -- pollnet's ef_vi look-alike (native/efvi_shim): the driver handle. */
#ifndef PN_EFVI_SHIM_BASE_H
#define PN_EFVI_SHIM_BASE_H

#include <etherfabric/ef_vi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EF_VI_NIC_PAGE_SHIFT 12
#define EF_VI_NIC_PAGE_SIZE (1 << EF_VI_NIC_PAGE_SHIFT)
#define EF_INVALID_ADDR ((ef_addr)-1)

/* 0 or a negative error code. */
extern int ef_driver_open(ef_driver_handle *dh_out);
extern int ef_driver_close(ef_driver_handle dh);

#ifdef __cplusplus
}
#endif
#endif
