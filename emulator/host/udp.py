"""JSON-over-UDP messaging used between hosts, applications and units (one object a datagram)."""
from __future__ import annotations

import itertools
import json
import select
import socket
import time

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

    def serve_once(self, handler, timeout: float) -> None:
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not ready:
            return
        data, addr = self.sock.recvfrom(MAX_DATAGRAM)
        try:
            msg = decode(data)
        except ValueError as exc:
            self.sock.sendto(encode({"ok": False, "error": str(exc)}), addr)
            return
        reply = handler(msg, addr)
        if reply is not None:
            reply.setdefault("seq", msg.get("seq"))
            self.sock.sendto(encode(reply), addr)


class Client:
    """Request/reply to several equivalent addresses (redundant paths): first answer wins."""

    _seq = itertools.count(1)

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def request(self, addrs, msg: dict, timeout: float = 0.5, retransmit: float = 0.15):
        seq = next(self._seq)
        payload = encode(dict(msg, seq=seq))
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                for addr in addrs:
                    try:
                        self.sock.sendto(payload, tuple(addr))
                    except OSError:
                        pass  # a cut path: the other one may still work
                next_send = now + retransmit
            ready, _, _ = select.select([self.sock], [], [], min(deadline, next_send) - now)
            if not ready:
                continue
            try:
                data, _ = self.sock.recvfrom(MAX_DATAGRAM)
                reply = json.loads(data)
            except (OSError, ValueError):
                continue
            if isinstance(reply, dict) and reply.get("seq") == seq:
                return reply

    def send(self, addrs, msg: dict) -> None:
        payload = encode(msg)
        for addr in addrs:
            try:
                self.sock.sendto(payload, tuple(addr))
            except OSError:
                pass
