/* efvi_shim.h -- what the ef_vi look-alike tells its tests (not part of the ef_vi API). */
#ifndef PN_EFVI_SHIM_H
#define PN_EFVI_SHIM_H
#include <stdint.h>

typedef struct efvi_shim_stats {
    uint64_t violations;     /* calls that break a documented ef_vi rule */
    uint64_t rx_frames, rx_no_buffer, rx_oversize, rx_segmented;
    uint64_t tx_frames, tx_wire_errors, tx_ctpio, tx_ctpio_fallback;
    uint64_t filters_added, filters_deleted;
} efvi_shim_stats;

const efvi_shim_stats *efvi_shim_stats_get(void);
#endif
