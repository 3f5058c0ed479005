/*
 * pncore.h -- all of pollnet's native TCP/IPv4 stack, one header per audience:
 *
 *   pn_base.h   types, PN_E* errors, the opaque pn_link and pn_stack
 *   pn_stack.h  the stack's API (config, create, poll, connections, counters)
 *   pn_link.h   what a link implements (struct pn_link and its ops)
 *   pn_links.h  the links to open a stack on (sim wire, af_packet, af_xdp, efvi)
 *   pn_bench.h  the bench's native loops
 *
 * The cffi binding (native/build_ffi.py) reads this one, preprocessed with PN_CDEF.
 */
#ifndef PNCORE_H
#define PNCORE_H

#include "pn_stack.h"
#include "pn_link.h"
#include "pn_links.h"
#include "pn_bench.h"

#endif /* PNCORE_H */
