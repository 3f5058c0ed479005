/* etherfabric/vi.h -- pollnet's ef_vi look-alike (native/efvi_shim): VI allocation and
 * filters (IPv4 full/local and Ethernet local-MAC filters are implemented). */
#ifndef PN_EFVI_SHIM_VI_H
#define PN_EFVI_SHIM_VI_H

#include <etherfabric/base.h>
#include <etherfabric/ef_vi.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ef_pd;

/* >= 0 (the queue id) or a negative error code. */
extern int ef_vi_alloc_from_pd(ef_vi *vi, ef_driver_handle vi_dh, struct ef_pd *pd,
                               ef_driver_handle pd_dh, int evq_capacity, int rxq_capacity,
                               int txq_capacity, ef_vi *evq_opt, ef_driver_handle evq_dh,
                               enum ef_vi_flags flags);
extern int ef_vi_free(ef_vi *vi, ef_driver_handle nic);
extern unsigned ef_vi_mtu(ef_vi *vi, ef_driver_handle vi_dh);
extern int ef_vi_get_mac(ef_vi *vi, ef_driver_handle vi_dh, void *mac_out);

enum ef_filter_flags {
    EF_FILTER_FLAG_NONE = 0x0,
    EF_FILTER_FLAG_MCAST_LOOP_RECEIVE = 0x2,
};

typedef struct {
    unsigned type;
    unsigned flags;
    unsigned data[12];
} ef_filter_spec;

enum {
    EF_FILTER_VLAN_ID_ANY = -1,
};

typedef struct {
    int filter_id;
    int filter_type;
} ef_filter_cookie;

extern void ef_filter_spec_init(ef_filter_spec *filter_spec, enum ef_filter_flags flags);
extern int ef_filter_spec_set_ip4_local(ef_filter_spec *filter_spec, int protocol,
                                        unsigned host_be32, int port_be16);
extern int ef_filter_spec_set_ip4_full(ef_filter_spec *filter_spec, int protocol,
                                       unsigned host_be32, int port_be16,
                                       unsigned rhost_be32, int rport_be16);
extern int ef_filter_spec_set_eth_local(ef_filter_spec *filter_spec, int vlan_id,
                                        const void *mac);
extern int ef_vi_filter_add(ef_vi *vi, ef_driver_handle vi_dh,
                            const ef_filter_spec *filter_spec,
                            ef_filter_cookie *filter_cookie_out);
extern int ef_vi_filter_del(ef_vi *vi, ef_driver_handle vi_dh,
                            ef_filter_cookie *filter_cookie);

#ifdef __cplusplus
}
#endif
#endif
