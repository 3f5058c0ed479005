"""The links under a stack: `base.Link` (an open pn_link), `sim.SimWire` (the in-process
wire) and `open.open_link` (the one a config asks for: the sim wire or a real NIC).
Imports only the core binding below it."""
