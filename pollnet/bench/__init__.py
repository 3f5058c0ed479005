"""Benchmarks: `stats` does the arithmetic, `pingpong` runs a client against an echo
server process, `echo` is that server's loop."""
