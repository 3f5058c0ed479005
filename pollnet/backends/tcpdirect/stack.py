"""One TCPDirect stack (`struct zf_stack`) with the attributes it was made from.

A client or a server owns one stack bound to its interface, as pollnet's C++ wrapper does;
`perform()` (zf_reactor_perform) is what moves bytes, so every poll calls it once.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

from pollnet._fast import FAST
from pollnet.backends.tcpdirect import zf
from pollnet.config import TcpdirectOptions
from pollnet.errors import BackendUnavailable, ConfigError


class QueuedWriter(Protocol):
    """What the stack needs of a connection holding bytes write() queued (the
    connection module imports this one, not the other way)."""

    def _flush(self) -> bool: ...          # True once everything queued went out

    def _abandon_queue(self) -> None: ...  # the stack is going: drop what is left

_ffi = zf.ffi

# How long freeing a stack waits for it to finish its connections' closes (queued bytes
# sent, FINs acknowledged): TCPDirect sends nothing more for a stack freed before that.
SETTLE_SEC = 1.0

# What zf_stack_alloc's documented failures mean for the person running pollnet.
_STACK_ERRORS = {
    errno.EBUSY: "out of VI instances on the adapter",
    errno.ENOENT: "the ef_vi/Onload libraries failed to initialise (are the drivers loaded?)",
    errno.ENOKEY: "the adapter is not licensed for TCPDirect",
    errno.ENOMEM: "out of memory (TCPDirect needs huge pages)",
    errno.ENOSPC: "out of PIO buffers (set the pio attribute to 0 or 1)",
}


def _is_kernel_interface(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _raise_config_error(rc: int, interface: str, section: str, opts: TcpdirectOptions) -> None:
    """zf_stack_alloc's failures that are the config's doing, as ConfigErrors naming it."""
    if rc == -errno.ENODEV:
        raise ConfigError(
            f"{section}.interface = {interface!r}: TCPDirect cannot use this interface "
            "(zf_stack_alloc: ENODEV); name the Solarflare interface there or in ZF_ATTR "
            "(interface=NAME)"
        )
    if rc == -errno.ENOENT and interface and not _is_kernel_interface(interface):
        # TCPDirect answers an interface it does not know with ENOENT, which its header
        # documents as "drivers not loaded"; a name the host does not have is the config's.
        raise ConfigError(
            f"{section}.interface = {interface!r}: no such interface here (zf_stack_alloc: "
            "ENOENT); name the Solarflare interface there or in ZF_ATTR (interface=NAME)"
        )
    if rc == -errno.EINVAL:
        attrs = ", ".join(f"{k}={v}" for k, v in opts.attributes.items()) or "none"
        raise ConfigError(
            f"tcpdirect.attributes ({attrs}) or ZF_ATTR = "
            f"{os.environ.get('ZF_ATTR', '')!r}: TCPDirect refused the stack, an attribute "
            "is out of range (zf_stack_alloc: EINVAL; the library's message on stderr "
            "names it); bring it into range"
        )


class PyTdStackCore:
    """What the compiled `pollnet._pnfast.TdStackCore` holds, in Python: the base of Stack
    where the extension is not used (pollnet._fast)."""

    __slots__ = ("pending", "queued")

    pending: bool
    queued: list[QueuedWriter]

    def _attach(self, *_addresses: int) -> None:
        pass


if TYPE_CHECKING:
    _StackBase = PyTdStackCore
else:
    _StackBase = PyTdStackCore if FAST is None else FAST.TdStackCore


class Stack(_StackBase):
    __slots__ = ("_perform", "attr", "lib", "ptr")

    def __init__(self, opts: TcpdirectOptions, interface: str, section: str) -> None:
        lib = zf.load(opts.library)
        self.lib = lib
        self.ptr: Any = None
        self.attr: Any = zf.alloc_attr(lib, interface, opts.attributes, section)
        out = _ffi.new("struct zf_stack **")
        rc = lib.zf_stack_alloc(self.attr, out)
        if rc < 0:
            lib.zf_attr_free(self.attr)
            self.attr = None
            _raise_config_error(rc, interface, section, opts)
            why = _STACK_ERRORS.get(-rc, zf.strerror(rc))
            raise BackendUnavailable("tcpdirect", f"zf_stack_alloc failed: {why}")
        self.ptr = out[0]
        self._perform = lib.zf_reactor_perform
        self._attach(zf.address(self.ptr), zf.address(self._perform))
        # zf_reactor_perform said something happened that nobody has looked at yet.
        self.pending = True
        # Connections holding bytes write() could not hand to the library yet (changed in
        # place: the compiled poll holds this list).
        self.queued = []

    def perform(self) -> int:
        """Process the stack's events once (zf_reactor_perform); > 0 if anything happened."""
        rc: int = self._perform(self.ptr)
        if rc > 0:
            self.pending = True
        return rc

    def flush(self) -> None:
        """Hand what write() queued to the library: every poll, after the reactor ran."""
        self.queued[:] = [conn for conn in self.queued if not conn._flush()]

    def settle(self) -> None:
        """Run the reactor until queued bytes are sent and the stack is quiescent (no
        close in progress), at most SETTLE_SEC; then free what is still queued."""
        deadline = time.monotonic() + SETTLE_SEC
        while time.monotonic() < deadline:
            if self.queued:
                self.flush()
            elif self.lib.zf_stack_is_quiescent(self.ptr):
                break
            self._perform(self.ptr)
        for conn in self.queued:
            conn._abandon_queue()
        self.queued.clear()

    def free(self) -> None:
        """Free the stack once it has settled; every zocket in it must have been freed or
        be closing."""
        if self.ptr is not None:
            self.settle()
            self._attach(0, 0)
            self.lib.zf_stack_free(self.ptr)
            self.lib.zf_attr_free(self.attr)
            self.ptr = self.attr = None
