"""The unit's side of the gateway protocol (ARCHITECTURE.md, "Route request").

It exists to keep blocking network waits off sippy's reactor: route requests run on a
thread of their own and finish through a callback (the SIP stack hands the result back
to the reactor with `ED2.callFromThread`). A request goes to every gateway address of
the current lease (asked again at every retransmission: the lease may move to the new
active host meanwhile), is retransmitted every 250 ms, and the first `ok` reply wins; with
no `ok` within 1 s the call is refused (the gateways' own refusal code when one came,
503 otherwise). A refusal marked `standby` (that gateway is not active) never ends the
request early: a host that steps down answers so until the unit's lease moves. Call events (`answered`, `ended`) are fire-and-forget datagrams to the
gateway address that routed the call.
"""
from __future__ import annotations

import ipaddress
import itertools
import json
import os
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..udp_paths import PathSockets

MAX_DATAGRAM = 65000


@dataclass
class RouteResult:
    ok: bool
    code: int = 0                   # SIP code for the caller when not ok
    reason: str = ""
    gateway: Optional[str] = None   # gateway name from the reply (X-Tb-Gateway)
    gateway_addr: Optional[tuple] = None   # where the ok reply came from (call events go there)
    routes: list = field(default_factory=list)   # [(host, port), ...] in order


def parse_routes(raw) -> list:
    """[(ip, port), ...] from the reply's routes; entries that are not an IP and port are
    dropped (sippy would resolve names on its reactor, blocking it)."""
    out = []
    if not isinstance(raw, list):
        return out
    for r in raw:
        if not isinstance(r, dict):
            continue
        host, port = r.get("host"), r.get("port", 5060)
        try:
            ipaddress.IPv4Address(str(host))
            port = int(port)
        except (ValueError, TypeError):
            continue
        if 0 < port < 65536:
            out.append((str(host), port))
    return out


class _Pending:
    def __init__(self, seq, payload, addrs, deadline, on_done, addrs_fn=None):
        self.seq, self.payload, self.addrs = seq, payload, addrs
        self.addrs_fn = addrs_fn
        self.deadline, self.on_done = deadline, on_done
        self.next_send = 0.0
        self.refusal: Optional[RouteResult] = None
        self.refused_by: set = set()
        self.cancelled = False

    def cancel(self):
        """Drop the request; its callback will not run (safe from any thread)."""
        self.cancelled = True


class GatewayClient:
    def __init__(self, unit: str, timeout: float = 1.0, retransmit: float = 0.25,
                 log: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic):
        self.unit, self.timeout, self.retransmit = unit, timeout, retransmit
        self.log, self.clock = log, clock
        self._seq = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # one non-blocking socket per gateway address: a dead host's unresolved address
        # must not stall this thread nor starve the other path (emulator/udp_paths.py)
        self.paths = PathSockets()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="tmedia-gateway-client", daemon=True)

    def start(self) -> "GatewayClient":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        self._thread.join(timeout=2)
        self.paths.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    # --- API (any thread) -------------------------------------------------------------
    def route(self, gateways, call_id: str, cli, cld, on_done: Callable[[RouteResult], None],
              gateways_fn: Optional[Callable[[], tuple]] = None) -> _Pending:
        """Ask the gateways for a route; on_done(RouteResult) runs once, on the client thread
        (or at once, on the caller's thread, when there is no gateway to ask).
        `gateways_fn`: the gateways of the current lease, asked again at every
        retransmission: a request sent to the old active host just before the lease moved
        goes on to the new one within its deadline, instead of waiting for a dead host."""
        seq = next(self._seq)
        msg = {"op": "route", "seq": seq, "call_id": call_id, "cli": cli, "cld": cld, "unit": self.unit}
        p = _Pending(seq, json.dumps(msg, separators=(",", ":")).encode(),
                     [tuple(a) for a in gateways or ()], self.clock() + self.timeout, on_done,
                     gateways_fn)
        if not p.addrs and gateways_fn is None:
            on_done(RouteResult(False, 503, "no lease"))
            return p
        # no lease now (the old holder's lapsed, the new one has not polled yet): the
        # request waits for one until its deadline
        with self._lock:
            self._pending[seq] = p
        self._wake()
        return p

    def pending_count(self) -> int:
        """Route requests not yet answered (read without the lock: a size, for overload)."""
        return len(self._pending)

    def call_event(self, event: str, call_id: str, gateway: Optional[str], addr) -> None:
        msg = {"op": "call", "seq": next(self._seq), "event": event, "call_id": call_id,
               "unit": self.unit, "gateway": gateway}
        # fire and forget: a cut path loses the event
        self.paths.send(json.dumps(msg, separators=(",", ":")).encode(), tuple(addr))

    # --- client thread ----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            wait = 0.5
            finished = []
            with self._lock:
                for p in list(self._pending.values()):
                    if p.cancelled:
                        del self._pending[p.seq]
                    elif now >= p.deadline:
                        del self._pending[p.seq]
                        finished.append((p, p.refusal or RouteResult(
                            False, 503, f"no answer from gateways within {self.timeout:g} s"
                            if p.addrs else f"no lease within {self.timeout:g} s")))
                    else:
                        if now >= p.next_send:
                            current = p.addrs_fn() if p.addrs_fn is not None else None
                            if current and [tuple(a) for a in current] != p.addrs:
                                p.addrs = [tuple(a) for a in current]   # the lease moved
                                p.refused_by.clear()
                            # (no lease yet: asked again soon, not at the next retransmission)
                            p.next_send = now + (self.retransmit if p.addrs else 0.02)
                            for a in p.addrs:
                                self.paths.send(p.payload, a)   # one path cut: the other may answer
                        wait = min(wait, p.next_send - now, p.deadline - now)
            for p, res in finished:
                self._finish(p, res)
            try:
                ready, _, _ = select.select(self.paths.sockets() + [self._wake_r], [], [],
                                            max(wait, 0.0))
            except (OSError, ValueError):
                return
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 4096)
                except OSError:
                    pass
            for sock in ready:
                if sock is not self._wake_r:
                    self._receive(sock)

    def _receive(self, sock) -> None:
        try:
            data, addr = sock.recvfrom(MAX_DATAGRAM)
            reply = json.loads(data.decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return
        if not isinstance(reply, dict) or not isinstance(reply.get("seq"), int):
            return
        with self._lock:
            p = self._pending.get(reply["seq"])
            if p is None or p.cancelled:
                return
            if reply.get("ok") is True:
                del self._pending[p.seq]
                routes = parse_routes(reply.get("routes"))
                if routes:
                    res = RouteResult(True, gateway=str(reply.get("gateway") or f"{addr[0]}"),
                                      gateway_addr=addr, routes=routes)
                else:
                    res = RouteResult(False, 500, "gateway gave no usable route",
                                      gateway=reply.get("gateway"), gateway_addr=addr)
            else:
                code = reply.get("code")
                if isinstance(code, bool) or not isinstance(code, int) or not 300 <= code <= 699:
                    code = 503
                if p.refusal is None or (p.refusal.code == 503 and code != 503):
                    p.refusal = RouteResult(False, code, str(reply.get("error") or "refused"),
                                            gateway=reply.get("gateway"), gateway_addr=addr)
                if reply.get("standby") is True:
                    # a gateway that is not active: the lease is about to move to the
                    # one that is, so ask again until the deadline (the refusal stands
                    # when it never moves)
                    return
                p.refused_by.add(addr)
                if len(p.refused_by) < len(p.addrs):
                    return   # another address may still say ok, until the deadline
                del self._pending[p.seq]
                res = p.refusal
        self._finish(p, res)

    def _finish(self, p: _Pending, res: RouteResult) -> None:
        if p.cancelled:
            return
        try:
            p.on_done(res)
        except Exception as exc:   # the callback's bug must not stop the client
            self.log(f"gateway client: route callback failed: {exc!r}")
