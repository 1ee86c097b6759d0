"""The unit's control agent: UDP JSON server (port 7000) answering `poll`, `release`, `status`.

It exists so a host's toolpack_sys_manager can lease the unit (its polling is the lease
and, later, the watchdog keep-alive) and read its counters. It runs on a thread of its
own, apart from sippy's reactor, so control answers keep flowing whatever SIP is doing.
Wire format: ARCHITECTURE.md, "Unit control". Anything malformed gets
`{"ok": false, "error": ...}` (with `seq` when there is one) and never stops the agent.
"""
from __future__ import annotations

import json
import select
import socket
import threading
import time
import traceback
from typing import Callable, Optional

from .counters import Counters
from .lease import Lease

MAX_DATAGRAM = 65000


class BadRequest(ValueError):
    pass


def _check_poll(msg: dict):
    controller = msg.get("controller")
    if not isinstance(controller, str) or not controller:
        raise BadRequest("poll needs a non-empty string 'controller'")
    lease_ms = msg.get("lease_ms")
    if isinstance(lease_ms, bool) or not isinstance(lease_ms, (int, float)) or not 0 < lease_ms <= 3_600_000:
        raise BadRequest("poll needs 'lease_ms', a number of milliseconds in (0, 3600000]")
    gateways = msg.get("gateways", [])
    if not isinstance(gateways, list):
        raise BadRequest("'gateways' must be a list of [host, port]")
    out = []
    for g in gateways:
        if (not isinstance(g, (list, tuple)) or len(g) != 2 or not isinstance(g[0], str)
                or isinstance(g[1], bool) or not isinstance(g[1], int) or not 0 < g[1] < 65536):
            raise BadRequest(f"bad gateway address {g!r}: want [host, port]")
        out.append((g[0], g[1]))
    return controller, msg.get("epoch"), lease_ms, out


class ControlAgent:
    def __init__(self, unit: str, counters: Counters, lease: Optional[Lease] = None,
                 port: int = 7000, host: str = "0.0.0.0",
                 log: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic):
        self.unit = unit
        self.counters = counters
        self.lease = lease if lease is not None else Lease(clock)
        self.log = log
        self.clock = clock
        self.started_at = clock()
        self._lock = threading.Lock()
        self.sock: Optional[socket.socket] = None
        self.host, self.port = host, port
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- what the SIP stack asks -----------------------------------------------------
    def current_lease(self):
        """(controller, gateways) of the running lease, or None (no lease, or it expired)."""
        with self._lock:
            st = self.lease.current()
        return None if st is None else (st.controller, st.gateways)

    # --- request handling (no I/O: unit-testable) -----------------------------------
    def _unit_fields(self) -> dict:
        st = self.lease.current()
        fields = {"unit": self.unit,
                  "controller": st.controller if st else None,
                  "epoch": st.epoch if st else None,
                  "lease_expires_in_ms": self.lease.expires_in_ms() if st else 0}
        fields.update(self.counters.snapshot())
        fields["uptime_s"] = round(self.clock() - self.started_at, 3)
        return fields

    def handle_datagram(self, data: bytes) -> dict:
        try:
            msg = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return {"ok": False, "error": f"bad JSON: {exc}"}
        if not isinstance(msg, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        reply = self.handle(msg)
        if "seq" in msg:
            reply["seq"] = msg["seq"]
        return reply

    def handle(self, msg: dict) -> dict:
        op = msg.get("op")
        try:
            with self._lock:
                if op == "poll":
                    return self._poll(msg)
                if op == "release":
                    return self._release(msg)
                if op == "status":
                    return dict(ok=True, **self._unit_fields())
        except BadRequest as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:   # a bug must not take the control agent down
            self.log(f"control: internal error on {msg!r}: {traceback.format_exc(limit=3)}")
            return {"ok": False, "error": f"internal error: {exc}"}
        if op is None:
            return {"ok": False, "error": "missing 'op'"}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _poll(self, msg: dict) -> dict:
        controller, epoch, lease_ms, gateways = _check_poll(msg)
        res = self.lease.poll(controller, epoch, lease_ms, gateways)
        if not res.accepted:
            return {"ok": False, "error": "leased", "controller": res.state.controller,
                    "expires_in_ms": res.expires_in_ms}
        if res.change is not None:
            prev = f" (was {res.previous.controller})" if res.previous and \
                res.previous.controller != controller else ""
            self.log(f"lease {res.change} by {controller} epoch={epoch} lease_ms={lease_ms} "
                     f"gateways={[list(g) for g in res.state.gateways]}{prev}")
        return dict(ok=True, **self._unit_fields())

    def _release(self, msg: dict) -> dict:
        controller = msg.get("controller")
        if not isinstance(controller, str) or not controller:
            raise BadRequest("release needs a non-empty string 'controller'")
        holder = self.lease.holder()
        if not self.lease.release(controller):
            return {"ok": False, "error": "not controller", "controller": holder.controller}
        if holder is not None:
            self.log(f"lease released by {controller}")
        return {"ok": True}

    def check_expiry(self) -> None:
        with self._lock:
            st = self.lease.check_expiry()
        if st is not None:
            self.log(f"lease expired: {st.controller} epoch={st.epoch} did not poll "
                     f"within {st.lease_ms} ms")

    # --- socket server ---------------------------------------------------------------
    def start(self) -> "ControlAgent":
        """Bind (raises OSError on a bad address/port) and serve on a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="tmedia-control", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.1)
                self.check_expiry()
                if not ready:
                    continue
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except (OSError, ValueError):
                if self._stop.is_set():
                    return
                continue
            try:
                reply = self.handle_datagram(data)
                self.sock.sendto(json.dumps(reply, separators=(",", ":")).encode(), addr)
            except Exception:
                if self._stop.is_set():
                    return
                self.log(f"control: cannot answer {addr}: {traceback.format_exc(limit=3)}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.sock is not None:
            self.sock.close()
