/* etherfabric/pd.h -- pollnet's ef_vi look-alike (native/efvi_shim): protection domains. */
#ifndef PN_EFVI_SHIM_PD_H
#define PN_EFVI_SHIM_PD_H

#include <etherfabric/base.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ef_pd_flags {
    EF_PD_DEFAULT = 0x0,
    EF_PD_VF = 0x1,
    EF_PD_PHYS_MODE = 0x2,
    EF_PD_RX_PACKED_STREAM = 0x4,
    EF_PD_VPORT = 0x8,
    EF_PD_MCAST_LOOP = 0x10,
    EF_PD_MEMREG_64KiB = 0x20,
    EF_PD_IGNORE_BLACKLIST = 0x40,
};

typedef struct ef_pd {
    enum ef_pd_flags pd_flags;
    unsigned pd_resource_id;
    char *pd_intf_name;
    char *pd_cluster_name;
    int pd_cluster_sock;
    ef_driver_handle pd_cluster_dh;
    unsigned pd_cluster_viset_resource_id;
    int pd_cluster_viset_index;
} ef_pd;

extern int ef_pd_alloc_by_name(ef_pd *pd, ef_driver_handle pd_dh,
                               const char *cluster_or_intf_name, enum ef_pd_flags flags);
extern int ef_pd_free(ef_pd *pd, ef_driver_handle pd_dh);

#ifdef __cplusplus
}
#endif
#endif
