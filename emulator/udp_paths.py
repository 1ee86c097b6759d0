"""UDP sends that never stall the sender: one non-blocking socket per destination.

Linux holds datagrams for a neighbour whose address is not resolved yet (a dead or
restarting peer, a cut path) for up to 3 s of ARP attempts, and charges them to the
sending socket. The neighbour queue (unres_qlen_bytes) and the default send buffer
(SO_SNDBUF) are both 212992 bytes, so one dead address can fill a socket's whole send
buffer: a blocking sendto() then waits until ARP gives up, measured at 2.8 s in every
3 s, and a socket shared by two paths refuses the healthy path's datagrams as well.
That stalled the active gateway (its replication to a stopped peer ran on the call
path) until the units answered calls with 503.

Each destination gets its own non-blocking socket: a dead path's backlog stays on its
socket, and a full buffer drops the datagram (UDP may lose it anyway) instead of waiting.
"""
from __future__ import annotations

import socket
import threading


class PathSockets:
    def __init__(self):
        self._socks: dict[tuple, socket.socket] = {}
        self._lock = threading.Lock()

    def get(self, addr) -> socket.socket:
        addr = _norm(addr)
        with self._lock:
            s = self._socks.get(addr)
            if s is None:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setblocking(False)
                s.bind(("0.0.0.0", 0))
                self._socks[addr] = s
            return s

    def send(self, payload: bytes, addr) -> bool:
        """False when the datagram could not be sent (full buffer, a cut path: EPERM)."""
        addr = _norm(addr)
        try:
            self.get(addr).sendto(payload, addr)
            return True
        except OSError:
            return False

    def sockets(self) -> list[socket.socket]:
        with self._lock:
            return list(self._socks.values())

    def close(self) -> None:
        with self._lock:
            socks, self._socks = list(self._socks.values()), {}
        for s in socks:
            s.close()


def _norm(addr) -> tuple[str, int]:
    return str(addr[0]), int(addr[1])
