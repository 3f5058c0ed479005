"""The efvi backend's lowest layer: the binding of the C core (`binding`, pollnet._pncore),
of the compiled per-message path to it (`fast`), and the owner of one C stack (`stack`).
It imports nothing above it in the backend."""
