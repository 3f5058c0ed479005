/* Test-only entry points of libzf_shim.so, outside the TCPDirect API.
 *
 * The shim counts every use of the API that breaks TCPDirect's documented contract
 * (zft_zc_recv_done without a pending zft_zc_recv, a zocket used after zft_free, a stack
 * freed with zockets still allocated, ...) and logs each on stderr, so tests can assert
 * that pollnet's backend keeps the contract the real library relies on. */
#ifndef POLLNET_ZF_SHIM_H
#define POLLNET_ZF_SHIM_H

int zf_shim_violations(void);
const char* zf_shim_last_violation(void);

#endif /* POLLNET_ZF_SHIM_H */
