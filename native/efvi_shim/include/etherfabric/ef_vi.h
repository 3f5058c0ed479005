/*
 * etherfabric/ef_vi.h -- pollnet's ef_vi look-alike (native/efvi_shim), NOT AMD Onload.
 *
 * Declares only the subset of the ef_vi API that native/src/link_efvi.c uses (and
 * ef_vi_transmit_fill_level, which the look-alike's own test reads), with the
 * names, argument order, types, return conventions and event layout that Onload's
 * documentation gives (src/include/etherfabric/ef_vi.h of Xilinx-CNS/onload). Where Onload
 * implements a call as a macro over vi->ops or as an inline over the (user-opaque) ef_vi
 * structure, this library provides a function of the same name and signature instead: code
 * that uses the documented calls compiles unchanged against either.
 *
 * Frames move over an AF_PACKET socket on an ordinary interface (see efvi_shim.c).
 */
#ifndef PN_EFVI_SHIM_EF_VI_H
#define PN_EFVI_SHIM_EF_VI_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#define EF_VI_ALIGN(x) __attribute__((aligned(x)))
#define ef_vi_inline static inline

/* Cache line size for DMA alignment (x86). */
#define EF_VI_DMA_ALIGN 64

#ifdef __cplusplus
extern "C" {
#endif

typedef int ef_driver_handle;
typedef uint32_t ef_eventq_ptr;
typedef uint64_t ef_addr;
typedef int ef_request_id;

#define EF_REQUEST_ID_MASK 0xffffffff
#define EF_VI_EVENT_POLL_MIN_EVS 2

/* The event: users read it only through the EF_EVENT_* macros. */
typedef union {
    struct {
        unsigned type : 16;
    } generic;
    struct {
        unsigned type : 16;
        unsigned q_id : 8;
        unsigned __reserved : 8;
        unsigned rq_id : 32;
        unsigned len : 16;
        unsigned flags : 16;
        unsigned ofs : 16;
    } rx;
    struct {
        unsigned type : 16;
        unsigned q_id : 8;
        unsigned __reserved : 8;
        unsigned rq_id : 32;
        unsigned len : 16;
        unsigned flags : 16;
        unsigned subtype : 16;
    } rx_discard;
    struct {
        unsigned type : 16;
        unsigned q_id : 8;
        unsigned flags : 8;
        unsigned desc_id : 16;
    } tx;
    struct {
        unsigned type : 16;
        unsigned q_id : 8;
        unsigned flags : 8;
        unsigned desc_id : 16;
        unsigned subtype : 16;
    } tx_error;
    struct {
        unsigned type : 16;
        unsigned q_id : 8;
    } rx_no_desc_trunc;
    struct {
        unsigned type : 16;
        unsigned data;
    } sw;
} ef_event;

#define EF_EVENT_TYPE(e) ((e).generic.type)

enum {
    EF_EVENT_TYPE_RX,
    EF_EVENT_TYPE_TX,
    EF_EVENT_TYPE_RX_DISCARD,
    EF_EVENT_TYPE_TX_ERROR,
    EF_EVENT_TYPE_RX_NO_DESC_TRUNC,
    EF_EVENT_TYPE_SW,
    EF_EVENT_TYPE_OFLOW,
    EF_EVENT_TYPE_TX_WITH_TIMESTAMP,
    EF_EVENT_TYPE_RX_PACKED_STREAM,
    EF_EVENT_TYPE_RX_MULTI,
    EF_EVENT_TYPE_TX_ALT,
    EF_EVENT_TYPE_RX_MULTI_DISCARD,
    EF_EVENT_TYPE_RX_MULTI_PKTS,
    EF_EVENT_TYPE_MEMCPY,
    EF_EVENT_TYPE_RESET,
    EF_EVENT_TYPE_RX_REF,
    EF_EVENT_TYPE_RX_REF_DISCARD,
};

#define EF_EVENT_RX_BYTES(e) ((e).rx.len)
#define EF_EVENT_RX_Q_ID(e) ((e).rx.q_id)
#define EF_EVENT_RX_RQ_ID(e) ((e).rx.rq_id)
#define EF_EVENT_RX_CONT(e) ((e).rx.flags & EF_EVENT_FLAG_CONT)
#define EF_EVENT_RX_SOP(e) ((e).rx.flags & EF_EVENT_FLAG_SOP)

#define EF_EVENT_FLAG_SOP 0x1
#define EF_EVENT_FLAG_CONT 0x2
#define EF_EVENT_FLAG_ISCSI_OK 0x4
#define EF_EVENT_FLAG_MULTICAST 0x8

#define EF_EVENT_FLAG_CTPIO 0x1
#define EF_EVENT_TX_Q_ID(e) ((e).tx.q_id)
#define EF_EVENT_TX_CTPIO(e) ((e).tx.flags & EF_EVENT_FLAG_CTPIO)

#define EF_EVENT_RX_DISCARD_Q_ID(e) ((e).rx_discard.q_id)
#define EF_EVENT_RX_DISCARD_RQ_ID(e) ((e).rx_discard.rq_id)
#define EF_EVENT_RX_DISCARD_CONT(e) ((e).rx_discard.flags & EF_EVENT_FLAG_CONT)
#define EF_EVENT_RX_DISCARD_SOP(e) ((e).rx_discard.flags & EF_EVENT_FLAG_SOP)
#define EF_EVENT_RX_DISCARD_TYPE(e) ((e).rx_discard.subtype)
#define EF_EVENT_RX_DISCARD_BYTES(e) ((e).rx_discard.len)

enum {
    EF_EVENT_RX_DISCARD_CSUM_BAD,
    EF_EVENT_RX_DISCARD_MCAST_MISMATCH,
    EF_EVENT_RX_DISCARD_CRC_BAD,
    EF_EVENT_RX_DISCARD_TRUNC,
    EF_EVENT_RX_DISCARD_RIGHTS,
    EF_EVENT_RX_DISCARD_EV_ERROR,
    EF_EVENT_RX_DISCARD_OTHER,
    EF_EVENT_RX_DISCARD_INNER_CSUM_BAD,
    EF_EVENT_RX_DISCARD_MAX,
};

#define EF_EVENT_TX_ERROR_Q_ID(e) ((e).tx_error.q_id)
#define EF_EVENT_TX_ERROR_TYPE(e) ((e).tx_error.subtype)

enum {
    EF_EVENT_TX_ERROR_RIGHTS,
    EF_EVENT_TX_ERROR_OFLOW,
    EF_EVENT_TX_ERROR_2BIG,
    EF_EVENT_TX_ERROR_BUS,
};

#define EF_VI_SYNC_FLAG_CLOCK_SET 1
#define EF_VI_SYNC_FLAG_CLOCK_IN_SYNC 2

#define ef_timespec struct timespec

enum ef_vi_flags {
    EF_VI_FLAGS_DEFAULT = 0x0,
    EF_VI_TX_IP_CSUM_DIS = 0x80,
    EF_VI_TX_TCPUDP_CSUM_DIS = 0x100,
    EF_VI_TX_PUSH_DISABLE = 0x4000,
    EF_VI_TX_PUSH_ALWAYS = 0x8000,
    EF_VI_RX_TIMESTAMPS = 0x10000,
    EF_VI_TX_TIMESTAMPS = 0x20000,
    EF_VI_RX_EVENT_MERGE = 0x200000,
    EF_VI_TX_CTPIO = 0x1000000,
    EF_VI_TX_CTPIO_NO_POISON = 0x2000000,
};

/* The virtual interface. As in Onload, users must not touch its members; this one keeps
 * its state behind a pointer (the AF_PACKET socket, rings and filters of efvi_shim.c). */
struct efvi_shim_vi;
typedef struct ef_vi {
    unsigned inited;
    unsigned vi_resource_id;
    ef_driver_handle dh;
    enum ef_vi_flags vi_flags;
    struct efvi_shim_vi *shim;
} ef_vi;

/* Receive */
extern int ef_vi_receive_prefix_len(const ef_vi *vi);
extern int ef_vi_receive_buffer_len(const ef_vi *vi);
extern void ef_vi_receive_set_buffer_len(ef_vi *vi, unsigned buf_len);
extern int ef_vi_receive_space(const ef_vi *vi);
extern int ef_vi_receive_fill_level(const ef_vi *vi);
extern int ef_vi_receive_capacity(const ef_vi *vi);
extern int ef_vi_receive_init(ef_vi *vi, ef_addr addr, ef_request_id dma_id);
extern void ef_vi_receive_push(ef_vi *vi);
extern int ef_vi_receive_get_timestamp_with_sync_flags(ef_vi *vi, const void *pkt,
                                                       ef_timespec *ts_out,
                                                       unsigned *flags_out);

/* Transmit */
#define EF_VI_TRANSMIT_BATCH 64
#define EF_VI_CTPIO_CT_THRESHOLD_SNF 0xffff
extern int ef_vi_transmit_fill_level(const ef_vi *vi);
extern int ef_vi_transmit_capacity(const ef_vi *vi);
extern int ef_vi_transmit_init(ef_vi *vi, ef_addr addr, int bytes, ef_request_id dma_id);
extern void ef_vi_transmit_push(ef_vi *vi);
extern int ef_vi_transmit_unbundle(ef_vi *ep, const ef_event *event, ef_request_id *ids);
extern void ef_vi_transmit_ctpio(ef_vi *vi, const void *frame_buf, size_t frame_len,
                                 unsigned ct_threshold);
extern int ef_vi_transmit_ctpio_fallback(ef_vi *vi, ef_addr dma_addr, size_t len,
                                         ef_request_id dma_id);

/* Event queue */
extern int ef_eventq_poll(ef_vi *evq, ef_event *evs, int evs_len);

#ifdef __cplusplus
}
#endif
#endif /* PN_EFVI_SHIM_EF_VI_H */
