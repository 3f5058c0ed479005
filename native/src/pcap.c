/* pcap.c -- a minimal pcap writer (nanosecond timestamps, LINKTYPE_ETHERNET). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "pn_internal.h"

int pn_pcap_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (err && errlen)
            snprintf(err, errlen, "pcap: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    /* magic a1b23c4d = nanosecond resolution; v2.4; snaplen 65535; linktype 1 */
    uint32_t hdr[6] = {0xa1b23c4du, 0x00040002u, 0, 0, 65535, 1};
    if (write(fd, hdr, sizeof hdr) != (ssize_t)sizeof hdr) {
        if (err && errlen)
            snprintf(err, errlen, "pcap: write %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void pn_pcap_write(int fd, uint64_t ts_ns, const uint8_t *data, uint32_t len)
{
    if (fd < 0)
        return;
    uint32_t cap = len > 65535 ? 65535 : len;
    uint32_t rec[4] = {(uint32_t)(ts_ns / 1000000000u), (uint32_t)(ts_ns % 1000000000u), cap, len};
    uint8_t buf[16 + 65535];
    memcpy(buf, rec, 16);
    memcpy(buf + 16, data, cap);
    /* A capture is a debugging aid: a short write is not worth failing the stack for. */
    ssize_t r = write(fd, buf, 16 + cap);
    (void)r;
}
