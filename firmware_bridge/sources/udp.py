"""UDP source: Nexmon CSI payloads (port 5500) and ESP32 text lines, told apart per datagram.

The socket is non-blocking; ``read`` waits with ``poll`` and then drains what the
kernel holds (up to ``max_batch`` datagrams) so a burst costs one wake-up. The
receive buffer is made large because Nexmon sends one datagram per
(core, spatial stream) per frame, back to back, and a short stall of the
consumer must not overflow it. Datagrams the kernel dropped anyway are counted
(``SO_RXQ_OVFL`` per datagram and the socket's ``drops`` column in
``/proc/net/udp``) and show in ``stats().kernel_drops``.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time

from edgecsi.firmware_bridge.sources.decoders import DatagramDecoder
from edgecsi.firmware_bridge.sources.polling import POLL_INTERVAL, PollingSource
from edgecsi.firmware_bridge.sources.stats import SourceStats
from edgecsi.frames import CSIBatch

NEXMON_PORT = 5500
#: Asked for; the kernel grants up to net.core.rmem_max (doubled for bookkeeping).
DEFAULT_RCVBUF = 8 << 20
MAX_DATAGRAM = 65535
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux value; Python does not export it
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
# Plain ints: the enum versions cost a Python-level __and__ per datagram.
_MSG_TRUNC = int(socket.MSG_TRUNC)
_SOL_SOCKET = int(socket.SOL_SOCKET)
#: After a wake-up, wait this long for the rest of a burst before decoding.
DEFAULT_LINGER = 0.002


def socket_drops(sock: socket.socket) -> int | None:
    """The kernel's drop counter for this UDP socket (``/proc/net/udp[6]``), None if unknown."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as fh:
                next(fh)
                for row in fh:
                    cols = row.split()
                    if len(cols) >= 13 and cols[9] == str(inode):
                        return int(cols[12])
        except OSError:
            continue
    return None


class UDPSource(PollingSource):
    """Listen on ``host:port``; yield one batch per CSI packet received."""

    def __init__(self, host: str = "0.0.0.0", port: int = NEXMON_PORT, *, format: str = "auto",
                 chip: str | None = None, rcvbuf: int = DEFAULT_RCVBUF, max_batch: int = 512,
                 linger: float = DEFAULT_LINGER, silence_after: float | None = None, uri: str | None = None,
                 **nexmon_options) -> None:
        super().__init__(uri or f"udp://{host}:{port}", silence_after=silence_after)
        # Options are checked before a socket exists, so a bad one leaks nothing.
        self.decoder = DatagramDecoder(self.counters, format=format, chip=chip, source=self.uri,
                                       **nexmon_options)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._size_buffer(rcvbuf)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                self._anc_size = socket.CMSG_SPACE(4)
                self.counters.kernel_drops = 0
            except OSError:
                self._anc_size = 0
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()  # the real port when port=0
        if port == 0:  # name the port the kernel picked
            query = (uri or "").partition("?")[2]
            self.uri = self.counters.uri = f"udp://{host}:{self.address[1]}" + (f"?{query}" if query else "")
        self.max_batch = max_batch
        self.linger = float(linger)
        self.decoder.source = self.uri
        self._poller = select.poll()
        self._poller.register(self.sock.fileno(), select.POLLIN)
        self._buf = bytearray(MAX_DATAGRAM)
        self._view = memoryview(self._buf)
        self._peer_names: dict[tuple, str] = {}

    def _size_buffer(self, wanted: int) -> None:
        try:  # privileged: beyond rmem_max
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, wanted)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    @property
    def port(self) -> int:
        return int(self.address[1])

    def _peer(self, addr) -> str:
        name = self._peer_names.get(addr)
        if name is None:
            name = self._peer_names[addr] = str(addr[0])
        return name

    def read(self, timeout: float | None = POLL_INTERVAL) -> list[CSIBatch]:
        if self.finished:
            return []
        try:
            ready = self._poller.poll(None if timeout is None else max(0, int(timeout * 1000)))
        except (OSError, ValueError):  # closed under us
            return []
        if not ready:
            return []
        payloads: list[bytes] = []
        times: list[float] = []
        peers: list[str] = []
        self._drain(payloads, times, peers)
        if self.linger > 0 and 0 < len(payloads) < self.max_batch:
            # Wait a moment for the rest of the burst: one decode of many rows costs
            # little more than one of a single row; milliseconds do not matter to sensing.
            time.sleep(self.linger)
            self._drain(payloads, times, peers)
        if not payloads:
            return []
        return self.decoder.decode_many(payloads, times, peers)

    def _drain(self, payloads: list[bytes], times: list[float], peers: list[str]) -> None:
        """Move queued datagrams (up to ``max_batch`` in all) into the lists."""
        counters = self.counters
        view = self._view
        recv = self.sock.recvmsg_into
        anc_size = self._anc_size
        for _ in range(self.max_batch - len(payloads)):
            try:
                n, ancdata, flags, addr = recv([view], anc_size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if not self._closed.is_set():
                    counters.last_error = f"recv: {exc}"
                break
            counters.bytes += n
            if ancdata:
                for level, kind, data in ancdata:
                    if level == _SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= 4:
                        counters.kernel_drops = struct.unpack("=I", data[:4])[0]
            peer = self._peer(addr)
            if flags & _MSG_TRUNC:
                counters.count_bad_reason("datagram_too_long", f"more than {MAX_DATAGRAM} bytes",
                                          source=f"{self.uri} from {peer}")
                continue
            payloads.append(bytes(view[:n]))
            times.append(time.time())
            peers.append(peer)

    def stats(self) -> SourceStats:
        if not self._closed.is_set():
            drops = socket_drops(self.sock)
            if drops is not None:
                self.counters.kernel_drops = max(drops, self.counters.kernel_drops or 0)
        return super().stats()

    def _release(self) -> None:
        try:
            self._poller.unregister(self.sock.fileno())
        except (KeyError, ValueError, OSError):
            pass
        self.sock.close()
