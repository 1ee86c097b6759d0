"""JSON-over-UDP messaging used between hosts, applications and units (one object a datagram)."""
from __future__ import annotations

import itertools
import json
import select
import socket
import time

from ..udp_paths import PathSockets

MAX_DATAGRAM = 65000


def decode(data: bytes) -> dict:
    """Parse one datagram; raise ValueError with a clear reason on anything but a JSON object."""
    try:
        msg = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        raise ValueError("a message is a JSON object with a string 'op'")
    return msg


def encode(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


class Server:
    """Bound UDP socket answering requests with handler(msg, addr) -> reply dict or None."""

    def __init__(self, port: int, host: str = "0.0.0.0"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.setblocking(False)    # a reply to a dead path is dropped (udp_paths.py)

    def serve_once(self, handler, timeout: float) -> None:
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return
        try:
            data, addr = self.sock.recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            return
        try:
            msg = decode(data)
        except ValueError as exc:
            self.reply(addr, {"ok": False, "error": str(exc)})
            return
        reply = handler(msg, addr)
        if reply is not None:
            reply.setdefault("seq", msg.get("seq"))
            self.reply(addr, reply)

    def reply(self, addr, msg: dict) -> None:
        """Send an answer; a path that cannot send (a network cut: nftables answers EPERM)
        loses it, as any datagram, and never takes the server down."""
        try:
            self.sock.sendto(encode(msg), addr)
        except OSError:
            pass


class Client:
    """Request/reply to several equivalent addresses (redundant paths): first answer wins.
    One non-blocking socket per address (udp_paths.py): a dead path never stalls the
    caller nor starves the other path."""

    _seq = itertools.count(1)

    def __init__(self):
        self.paths = PathSockets()

    def request(self, addrs, msg: dict, timeout: float = 0.5, retransmit: float = 0.15):
        seq = next(self._seq)
        payload = encode(dict(msg, seq=seq))
        deadline = time.monotonic() + timeout
        next_send = 0.0
        socks = [self.paths.get(a) for a in addrs]
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                for addr in addrs:
                    self.paths.send(payload, addr)   # a cut path: the other one may still work
                next_send = now + retransmit
            ready, _, _ = select.select(socks, [], [], min(deadline, next_send) - now)
            for sock in ready:
                try:
                    reply = json.loads(sock.recvfrom(MAX_DATAGRAM)[0])
                except (OSError, ValueError):
                    continue
                if isinstance(reply, dict) and reply.get("seq") == seq:
                    return reply

    def send(self, addrs, msg: dict) -> None:
        payload = encode(msg)
        for addr in addrs:
            self.paths.send(payload, addr)

    def close(self) -> None:
        self.paths.close()
