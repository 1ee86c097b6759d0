"""The unit's control agent: UDP JSON server (port 7000) answering `poll`, `release`,
`status`, `assume`, `configure`, `calls` and `close`.

It exists so a host's toolpack_sys_manager can lease the unit (its polling is the lease
and the watchdog keep-alive), read its counters and tell it which unit to serve (N+1),
the active host's engine can push the configuration (stacks, trunks, routes version)
and its gateway can list and close calls. It runs in the board (board.py) on a thread
of its own, so control answers keep flowing whatever the SIP applications are doing;
`calls` and `close` go to them over the board link with a short deadline, never while
holding the lease lock. Wire format: ARCHITECTURE.md, "Unit control". Anything
malformed gets `{"ok": false, "error": ...}` (with `seq` when there is one) and never
stops the agent.
"""
from __future__ import annotations

import json
import queue
import re
import select
import socket
import threading
import time
import traceback
from typing import Callable, Optional

from .counters import Counters
from .lease import Lease, LeaseLog
from .ss7_app import Ss7Config

MAX_DATAGRAM = 65000
SLOW_OPS = re.compile(rb'"op"\s*:\s*"(calls|close)"')
REACTOR_WAIT_S = 0.5      # how long a control request may wait for sippy's reactor
STACK_KINDS = ("SIP", "SS7", "ISDN")
NAME_MAX = 64


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


def _check_prefix(value, what: str) -> None:
    try:
        ip, prefix = value.split("/")
        socket.inet_aton(ip)
        if ip.count(".") != 3 or not 8 <= int(prefix) <= 32:
            raise ValueError
    except (OSError, ValueError, AttributeError):
        raise BadRequest(f"{what} {value!r} is not an IPv4 ip/prefix") from None


def _name(value, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= NAME_MAX:
        raise BadRequest(f"{what} must be a string of 1..{NAME_MAX} characters")
    return value


def _check_configure(msg: dict) -> dict:
    """The configuration a `configure` carries, checked field by field."""
    version = msg.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise BadRequest("configure needs 'version', a whole number >= 0")
    unit = msg.get("unit")
    if unit is not None:
        _name(unit, "'unit'")
    cfg = {"name": _name(msg.get("config"), "'config'"), "version": version, "unit": unit,
           "routes": msg.get("routes", 0), "stacks": [], "trunks": []}
    if isinstance(cfg["routes"], bool) or not isinstance(cfg["routes"], int) or cfg["routes"] < 0:
        raise BadRequest("'routes' must be a whole number >= 0 (how many routes the version has)")
    for key, kinds in (("stacks", STACK_KINDS), ("trunks", None)):
        items = msg.get(key, [])
        if not isinstance(items, list):
            raise BadRequest(f"'{key}' must be a list")
        for it in items:
            if not isinstance(it, dict) or not isinstance(it.get("enabled"), bool):
                raise BadRequest(f"each of '{key}' is an object with 'name' and a bool 'enabled'")
            entry = {"name": _name(it.get("name"), f"a {key[:-1]} name"), "enabled": it["enabled"]}
            if kinds is not None:
                if it.get("kind") not in kinds:
                    raise BadRequest(f"a stack's 'kind' is one of {', '.join(kinds)}")
                entry["kind"] = it["kind"]
            cfg[key].append(entry)
    if "ss7" in msg:      # absent: an engine that pushes no SS7 (the board keeps its own)
        try:
            Ss7Config.from_push(msg["ss7"])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        cfg["ss7"] = msg["ss7"]
    return cfg


class ControlAgent:
    def __init__(self, unit: str, counters: Counters, lease: Optional[Lease] = None,
                 port: int = 7000, host: str = "0.0.0.0",
                 log: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
                 board=None, lease_log: Optional[LeaseLog] = None):
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
        self._slow: queue.SimpleQueue = queue.SimpleQueue()
        self.config: Optional[dict] = None   # the last `configure`; None: never configured
        self.stack = None                    # the SIP application (attach): lists and closes calls
        # the board (board.py): kicked by accepted polls (watchdog), adds its fields to
        # every reply (ports, service, boots) and carries out `assume`; None in unit tests
        self.board = board
        self.lease_log = lease_log           # the lease changes on file (None: not kept)

    def _wall(self, mono: float) -> float:
        """A clock() instant as wall time (the lease log's stamps compare across containers)."""
        return self.lease_log.clock() - (self.clock() - mono)

    def attach(self, stack) -> None:
        """Give the agent the SIP application (board.AppLink, or None while the unit
        serves nothing): `list_calls(timeout)` and `close_call(call_id, timeout)`."""
        self.stack = stack

    # --- what the SIP stack asks -----------------------------------------------------
    def current_lease(self):
        """(controller, gateways) of the running lease, or None (no lease, or it expired)."""
        with self._lock:
            st = self.lease.current()
        return None if st is None else (st.controller, st.gateways)

    def admission(self) -> Optional[tuple]:
        """None when new calls are accepted, else (code, reason) to refuse them with.
        Before any `configure` the unit accepts calls; after one, it needs an enabled SIP
        stack. A configuration made for another unit than the one the board serves now (a
        spare that just took a unit over, configured as a spare) is no configuration of
        this unit's stacks yet: it does not refuse. Called on sippy's reactor: reads
        references, takes no lock."""
        return None if self.stack_enabled("SIP") else (503, "Service Unavailable (SIP stack disabled)")

    def ss7_enabled(self) -> bool:
        """The served unit's SS7 stack flag, passed to its SS7 node (ss7_app.py)."""
        return self.stack_enabled("SS7")

    def stack_enabled(self, kind: str) -> bool:
        """Enabled before any configuration of the served unit, else when one of its
        stacks of `kind` is enabled. Reads references, takes no lock."""
        cfg = self.config
        serves = getattr(self.board, "serves", None) if self.board is not None else None
        return cfg is None or (serves is not None and cfg.get("unit") != serves) \
            or any(s["kind"] == kind and s["enabled"] for s in cfg["stacks"])

    # --- request handling (no I/O: unit-testable) -----------------------------------
    def _unit_fields(self) -> dict:
        st = self.lease.current()
        fields = {"unit": self.unit,
                  "controller": st.controller if st else None,
                  "epoch": st.epoch if st else None,
                  "lease_expires_in_ms": self.lease.expires_in_ms() if st else 0}
        fields.update(self.counters.snapshot())
        fields["uptime_s"] = round(self.clock() - self.started_at, 3)
        cfg = self.config
        fields["config"] = None if cfg is None else {
            "name": cfg["name"], "version": cfg["version"], "routes": cfg["routes"], "unit": cfg["unit"]}
        fields["stacks"] = [] if cfg is None else cfg["stacks"]
        fields["trunks"] = [] if cfg is None else cfg["trunks"]
        fields["sip_accepting"] = self.admission() is None
        if self.board is not None:
            fields.update(self.board.fields())
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
            if op in ("calls", "close"):   # they wait for the reactor: never under the lock
                return self._calls(msg) if op == "calls" else self._close(msg)
            with self._lock:
                if op == "poll":
                    return self._poll(msg)
                if op == "release":
                    return self._release(msg)
                if op == "status":
                    return dict(ok=True, **self._unit_fields())
                if op == "configure":
                    return self._configure(msg)
                if op == "assume":
                    refusal = self._from_controller(msg, "assume")
                    if refusal:
                        return refusal
            if op == "assume":   # the board restarts the SIP application: not under the lock
                return self._assume(msg)
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
        if self.board is not None:
            self.board.polled()
        if res.change is not None:
            prev = f" (was {res.previous.controller})" if res.previous and \
                res.previous.controller != controller else ""
            self.log(f"lease {res.change} by {controller} epoch={epoch} lease_ms={lease_ms} "
                     f"gateways={[list(g) for g in res.state.gateways]}{prev}")
            if self.lease_log is not None:
                self.lease_log.granted(controller, epoch, int(lease_ms), res.change,
                                       self._wall(res.previous.expires_at) if res.previous else None)
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
            if self.lease_log is not None and self.lease_log.held == controller:
                self.lease_log.ended("released", controller, holder.epoch)
        return {"ok": True}

    def _from_controller(self, msg: dict, op: str) -> Optional[dict]:
        """A refusal unless `controller` holds the running lease: a unit obeys one host."""
        controller = msg.get("controller")
        if not isinstance(controller, str) or not controller:
            raise BadRequest(f"{op} needs a non-empty string 'controller'")
        st = self.lease.current()
        if st is None or st.controller != controller:
            return {"ok": False, "error": "not controller",
                    "controller": st.controller if st else None}
        return None

    def _configure(self, msg: dict) -> dict:
        refusal = self._from_controller(msg, "configure")
        if refusal:
            return refusal
        cfg = _check_configure(msg)
        prev = self.config
        self.config = cfg
        if prev != cfg:
            off = [f"{s['kind']}:{s['name']}" for s in cfg["stacks"] if not s["enabled"]] + \
                  [t["name"] for t in cfg["trunks"] if not t["enabled"]]
            self.log(f"configured by {msg['controller']}: {cfg['name']} version {cfg['version']}, "
                     f"{len(cfg['stacks'])} stacks, {len(cfg['trunks'])} trunks, "
                     f"disabled: {off or 'none'}")
        return dict(ok=True, **self._unit_fields())

    def _assume(self, msg: dict) -> dict:
        """Serve a unit's VoIP interfaces (N+1): `unit` and `address` ("ip/prefix"), or
        `unit` null to become the spare. Only from the lease holder."""
        if self.board is None:
            raise BadRequest("this unit has no board: it cannot change what it serves")
        unit, address = msg.get("unit"), msg.get("address")
        if unit is not None:
            _name(unit, "'unit'")
            if not isinstance(address, str) or "/" not in address:
                raise BadRequest("assume needs 'address', the interface as ip/prefix")
            _check_prefix(address, "'address'")
        vlans = msg.get("vlans") or []
        if not isinstance(vlans, list) or unit is None and vlans:
            raise BadRequest("'vlans' must be a list of [vlan id, ip/prefix] (none for the spare)")
        for v in vlans:
            if (not isinstance(v, list) or len(v) != 2 or isinstance(v[0], bool)
                    or not isinstance(v[0], int) or not 1 <= v[0] <= 4094):
                raise BadRequest(f"bad virtual port {v!r}: want [vlan id 1..4094, ip/prefix]")
            _check_prefix(v[1], "a virtual port's address")
        if len({v[0] for v in vlans}) != len(vlans):
            raise BadRequest("a VLAN id appears twice in 'vlans'")
        self.board.assume(unit, address, [tuple(v) for v in vlans], msg["controller"])
        return dict(ok=True, **self._unit_fields())

    def _calls(self, msg: dict) -> dict:
        """A page of the calls in progress in call_id order, after the cursor `after`."""
        after, limit = msg.get("after"), msg.get("limit", 50)
        if after is not None and not isinstance(after, str):
            raise BadRequest("'after' must be a call_id (string) or null")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise BadRequest("'limit' must be a whole number in 1..100")
        stack = self.stack
        try:
            calls = [] if stack is None else stack.list_calls(REACTOR_WAIT_S)
        except TimeoutError:
            return {"ok": False, "error": "SIP stack busy: try again"}
        rest = sorted((c for c in calls if after is None or c["call_id"] > after),
                      key=lambda c: c["call_id"])
        return {"ok": True, "unit": self.unit, "total": len(calls), "calls": rest[:limit],
                "more": len(rest) > limit}

    def _close(self, msg: dict) -> dict:
        call_id = msg.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest("close needs a non-empty string 'call_id'")
        with self._lock:
            refusal = self._from_controller(msg, "close")
        if refusal:
            return refusal
        stack = self.stack
        try:
            found = stack is not None and stack.close_call(call_id, REACTOR_WAIT_S)
        except TimeoutError:
            return {"ok": False, "error": "SIP stack busy: try again"}
        if not found:
            return {"ok": False, "code": 404, "error": f"no call {call_id!r} on {self.unit}"}
        self.log(f"call {call_id} closed on request of {msg['controller']}")
        return {"ok": True, "unit": self.unit, "call_id": call_id}

    def check_expiry(self) -> None:
        with self._lock:
            st = self.lease.check_expiry()
            if self.lease_log is not None:
                if st is not None:
                    self.lease_log.ended("expired", st.controller, st.epoch, self._wall(st.expires_at))
                self.lease_log.alive()      # while held: the stamp a dead board leaves
        if st is not None:
            self.log(f"lease expired: {st.controller} epoch={st.epoch} did not poll "
                     f"within {st.lease_ms} ms")

    # --- socket server ---------------------------------------------------------------
    def start(self) -> "ControlAgent":
        """Bind (raises OSError on a bad address/port) and serve on a daemon thread."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.setblocking(False)     # a reply to a dead path is dropped, never waited for
        self.sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="tmedia-control", daemon=True)
        self._thread.start()
        threading.Thread(target=self._serve_slow, name="tmedia-control-calls", daemon=True).start()
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
            if SLOW_OPS.search(data[:200]):
                # `calls` and `close` wait for the SIP applications' reactors (0.5 s each,
                # at worst): on their own thread, so that polls are never queued behind
                # them (a poll answered late lets the lease lapse)
                self._slow.put((data, addr))
                continue
            self._answer(data, addr)

    def _answer(self, data: bytes, addr) -> None:
        try:
            reply = self.handle_datagram(data)
            try:
                self.sock.sendto(json.dumps(reply, separators=(",", ":")).encode(), addr)
            except OSError:
                pass    # full buffer or a cut path (udp_paths.py): lost like any datagram
        except Exception:
            if not self._stop.is_set():
                self.log(f"control: cannot answer {addr}: {traceback.format_exc(limit=3)}")

    def _serve_slow(self) -> None:
        while True:
            item = self._slow.get()
            if item is None:
                return
            self._answer(*item)

    def stop(self) -> None:
        self._stop.set()
        self._slow.put(None)
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.sock is not None:
            self.sock.close()
