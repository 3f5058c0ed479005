/* link.c -- what every link gets for free: destroy, and pcap recording around rx/tx. */
#include <unistd.h>

#include "pn_internal.h"

void pn_link_destroy(pn_link *l)
{
    if (l == NULL)
        return;
    if (l->pcap_fd >= 0) {
        close(l->pcap_fd);
        l->pcap_fd = -1;
    }
    if (l->ops && l->ops->destroy)
        l->ops->destroy(l);
}

int pn_link_pcap(pn_link *l, const char *path, char *err, size_t errlen)
{
    if (l == NULL || path == NULL)
        return PN_EINVAL;
    int fd = pn_pcap_open(path, err, errlen);
    if (fd < 0)
        return PN_EINVAL;
    if (l->pcap_fd >= 0)
        close(l->pcap_fd);
    l->pcap_fd = fd;
    return PN_OK;
}

int pn_link_rx(pn_link *l, uint64_t now, pn_rx_frame *f, int max)
{
    int n = l->ops->rx_burst(l, now, f, max);
    if (n > 0 && l->pcap_fd >= 0)
        for (int i = 0; i < n; i++)
            pn_pcap_write(l->pcap_fd, now, f[i].data, f[i].len);
    return n;
}

uint8_t *pn_link_txbuf(pn_link *l, uint32_t *cap)
{
    return l->ops->tx_buf(l, cap);
}

int pn_link_tx(pn_link *l, uint64_t now, uint8_t *buf, uint32_t len)
{
    if (l->pcap_fd >= 0)
        pn_pcap_write(l->pcap_fd, now, buf, len);
    return l->ops->tx_send(l, buf, len);
}
