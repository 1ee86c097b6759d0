"""gateway: answers the units' route requests while this host is active, keeps the call
records, replicates them to the peer gateway, and closes calls on the operator's request.

- Routing and accounts come from the loaded configuration version (config_versions,
  written by the active engine on each reload), so a change takes effect on reload; until
  the first reload the gateway routes with the active configuration as it is in the
  database. Loading runs on a thread of its own: a slow or failing database never delays
  a route answer (the last good table is kept).
- Call records (call_records.py): every change (routed, answered, ended, closed) is pushed
  to the peer gateway on both control networks, whatever this host's role, so the standby
  holds the calls of the active host and lists them after a switchover. A unit's call
  event goes to the gateway that routed the call, which may now be the standby: it
  records and forwards it all the same. A restarted gateway asks its peer for a copy.
- While active, the gateway reconciles its records with the units' own call lists (unit
  control op `calls`): events lost with a dead host or a dropped datagram are repaired.
- `close` (from the local OAM): the unit's control op `close` hangs the call up (BYE on
  both legs); the record ends at once.

Wire format: ARCHITECTURE.md, "Route request" and "Gateway to gateway, OAM and engine
to gateway"."""
from __future__ import annotations

import threading
import time

from . import state
from .call_records import CallRecords
from .config_store import ConfigStore
from .db import Db
from .routing import Routing
from .settings import GATEWAY_PORT, UNIT_CONTROL_PORT, Settings
from .udp import Client, Server

APP = "gateway"
LOAD_PERIOD = 0.5        # how often the latest loaded version is looked up
RECONCILE_PERIOD = 2.0   # active: compare records with the units' calls
RECONCILE_GRACE = 5.0    # a record this young is never ended by reconciliation
UNIT_TIMEOUT = 1.0
PAGE = 40                # records per datagram (dump, calls)


class Gateway:
    def __init__(self, s: Settings, store: ConfigStore, role_fn=None, clock=time.time,
                 send_fn=None, request_fn=None):
        self.s, self.store, self.clock = s, store, clock
        self.role_fn = role_fn or (lambda: state.read("role").get("role", "standby"))
        self.send_fn = send_fn or Client().send          # fire and forget to the peer
        self.request_fn = request_fn or (lambda addrs, msg, timeout:
                                         Client().request(addrs, msg, timeout=timeout))
        self.records = CallRecords(clock)
        self.routing = Routing(None)
        self.version = None          # loaded config version; 0: live tables (no version yet)
        self.loaded_at = None
        self.db_error = None
        self.routed = self.refused = 0
        self.load_lock = threading.Lock()
        self.reply_fn = None         # (addr, reply) for answers sent from worker threads
        self.peer_addrs = [(ip, GATEWAY_PORT) for ip in s.peer_ctrl_ips]

    # ---- configuration --------------------------------------------------------------
    def load(self) -> int | None:
        """Load the latest configuration version when it changed; keep the last good one
        on a database error."""
        with self.load_lock:
            try:
                latest = self.store.latest_version_id()
                if latest is None:
                    self.routing, self.version = Routing(self.store.snapshot(), self.s.services), 0
                elif latest != self.version:
                    v = self.store.version(latest)
                    self.routing, self.version = Routing(v["snapshot"], self.s.services), latest
                    state.log(APP, f"loaded configuration {v['config']} version {latest}")
                self.loaded_at, self.db_error = self.clock(), None
            except Exception as exc:
                self.db_error = str(exc)
            return self.version

    # ---- records --------------------------------------------------------------------
    def change(self, rec: dict) -> dict | None:
        """Apply a local change and push it to the peer when it changed something."""
        changed = self.records.merge(rec)
        if changed is not None:
            self.send_fn(self.peer_addrs, {"op": "repl", "from": self.s.host, "changes": [changed]})
        return changed

    # ---- requests -------------------------------------------------------------------
    def handle(self, msg: dict, addr) -> dict | None:
        op = msg["op"]
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            return {"ok": False, "error": f"unknown op {op!r}"}
        try:
            return handler(msg, addr)
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad {op} request: {exc!r}"}
        except Exception as exc:   # a bug must not take the gateway (and the host's role) down
            state.log(APP, f"{op} from {addr} failed: {exc!r}")
            return {"ok": False, "error": f"internal error: {exc!r}"}

    def op_ping(self, msg, addr):
        return {"ok": True, "role": self.role_fn(), "host": self.s.host, "version": self.version,
                "calls": len(self.records.live())}

    def op_route(self, msg, addr):
        role = self.role_fn()
        if role != "active":
            # "standby": not a final answer; the unit waits for its lease to move to the
            # new active host (a graceful quit steps down before the lease moves)
            return {"ok": False, "code": 503, "standby": True,
                    "error": f"{self.s.host} gateway is {role}"}
        if self.version is None:   # never loaded (database unreachable since start)
            return {"ok": False, "code": 503, "error": f"{self.s.host} gateway has no configuration yet"}
        call_id, cli, cld = str(msg["call_id"]), msg.get("cli"), str(msg.get("cld", ""))
        d = self.routing.decide(cli, cld, self.records.in_use(cli, exclude=call_id))
        if not d.ok:
            self.refused += 1
            return {"ok": False, "code": d.code, "error": d.error}
        if not self.records.is_known(call_id):   # route requests are retransmitted
            self.routed += 1
            self.change(dict(call_id=call_id, state="routing", unit=msg.get("unit"), cli=cli, cld=cld,
                                    gateway=self.s.host, routed_at=self.clock()))
        return {"ok": True, "gateway": self.s.host, "routes": d.routes}

    def op_call(self, msg, addr):
        """A unit's call event (fire and forget: no reply)."""
        event, call_id = msg.get("event"), str(msg["call_id"])
        if event == "answered":
            self.change(dict(call_id=call_id, state="answered", unit=msg.get("unit"),
                                    gateway=msg.get("gateway"), answered_at=self.clock()))
        elif event == "ended":
            self.change(dict(call_id=call_id, state="ended", unit=msg.get("unit"),
                                    ended_at=self.clock(), reason="ended"))
        return None

    def op_repl(self, msg, addr):
        """Changes from the peer gateway: applied, not forwarded back."""
        if addr[0] not in self.s.peer_ctrl_ips:
            return {"ok": False, "error": "repl is accepted from the peer host only"}
        for rec in msg.get("changes", []):
            self.records.merge(rec)
        return None

    def op_dump(self, msg, addr):
        """Every record, tombstones included (for a restarted peer), a page at a time."""
        page, more, total = self.records.page(_after(msg), PAGE, live_only=False)
        return {"ok": True, "records": page, "more": more, "total": total}

    def op_calls(self, msg, addr):
        page, more, total = self.records.page(_after(msg), PAGE, live_only=True)
        return {"ok": True, "host": self.s.host, "role": self.role_fn(), "total": total,
                "calls": page, "more": more}

    def op_load(self, msg, addr):
        """The engine finished a reload: load it now and say which version is loaded."""
        self._in_worker(addr, msg, lambda: {"ok": self.db_error is None, "version": self.load(),
                                            "error": self.db_error})

    def op_close(self, msg, addr):
        if addr[0] != "127.0.0.1":
            return {"ok": False, "code": 403, "error": "close is accepted from the local OAM only"}
        self._in_worker(addr, msg, lambda: self.close(str(msg["call_id"])))

    def _in_worker(self, addr, msg, fn):
        """Answer from a thread of its own: the server loop keeps answering routes."""
        def run():
            reply = fn()
            reply.setdefault("seq", msg.get("seq"))
            self.reply_fn(addr, reply)
        threading.Thread(target=run, daemon=True).start()

    def close(self, call_id: str) -> dict:
        rec = self.records.get(call_id)
        if rec is None:
            return {"ok": False, "code": 404, "error": f"no call {call_id!r}"}
        role = self.role_fn()
        if role != "active":
            return {"ok": False, "code": 409, "error": f"{self.s.host} is {role}: close calls "
                                                       f"on the active host"}
        board = self.board_of(rec["unit"])
        ips = self.s.units.get(board) if board else None
        if ips is None:
            return {"ok": False, "code": 502,
                    "error": f"call {call_id!r} is on unit {rec['unit']!r}, which no board serves"}
        reply = self.request_fn([(ip, UNIT_CONTROL_PORT) for ip in ips],
                                {"op": "close", "controller": self.s.host, "call_id": call_id},
                                UNIT_TIMEOUT)
        if reply is None:
            return {"ok": False, "code": 504, "error": f"unit {rec['unit']} did not answer"}
        if not reply.get("ok") and reply.get("code") != 404:
            return {"ok": False, "code": 502, "error": f"unit {rec['unit']}: {reply.get('error')}"}
        gone = not reply.get("ok")   # the unit no longer has it: the record was stale
        self.change(dict(call_id=call_id, state="ended", ended_at=self.clock(),
                                reason="not on the unit" if gone else "closed by the operator"))
        if gone:
            return {"ok": False, "code": 404, "error": f"call {call_id!r} is no longer on "
                                                       f"{rec['unit']} (record removed)"}
        return {"ok": True, "call_id": call_id, "unit": rec["unit"]}

    # ---- background work ------------------------------------------------------------
    def board_of(self, unit: str) -> str | None:
        """The board serving a unit's interfaces now (N+1, from the sys_manager); the
        board of the same name when nothing is known; None when no board serves it."""
        services = state.read("sysmgr").get("services")
        return services.get(unit) if services else unit

    def served_units(self) -> list[str]:
        return list(state.read("sysmgr").get("services") or self.s.units)

    def unit_calls(self, board: str) -> list[dict] | None:
        """Every call the board has (paged `calls`), or None when it does not answer."""
        ips = self.s.units[board]
        calls, after = [], None
        while True:
            reply = self.request_fn([(ip, UNIT_CONTROL_PORT) for ip in ips],
                                    {"op": "calls", "after": after, "limit": PAGE}, UNIT_TIMEOUT)
            if reply is None or not reply.get("ok"):
                return None
            calls += reply["calls"]
            if not reply.get("more") or not reply["calls"]:
                return calls
            after = reply["calls"][-1]["call_id"]

    def reconcile(self) -> int:
        """Learn calls the records miss and end records the units no longer have."""
        changes = 0
        for unit in self.served_units():
            board = self.board_of(unit)
            calls = self.unit_calls(board) if board in self.s.units else None
            if calls is None:
                continue   # an unreachable unit proves nothing about its calls
            for c in calls:
                # answered calls only: one still in setup may be refused a moment later
                if c.get("answered") and not self.records.is_known(c["call_id"]):
                    changes += self.change(dict(
                        call_id=c["call_id"], state="answered", unit=unit, cli=c.get("cli"),
                        cld=c.get("cld"), gateway=c.get("gateway"), routed_at=self.clock(),
                        reason="learned from the unit")) is not None
            for rec in self.records.stale(unit, {c["call_id"] for c in calls}, RECONCILE_GRACE):
                changes += self.change(rec) is not None
        return changes

    def copy_from_peer(self) -> int:
        """At start: the peer's records (a restarted gateway lost its own)."""
        after, n = None, 0
        while True:
            reply = self.request_fn(self.peer_addrs, {"op": "dump", "after": after}, 0.5)
            if reply is None or not reply.get("ok"):
                return n
            for rec in reply["records"]:
                n += self.records.merge(rec) is not None
            if not reply.get("more") or not reply["records"]:
                return n
            after = reply["records"][-1]["call_id"]

    def publish(self):
        state.write("gateway", {"role": self.role_fn(), "version": self.version,
                                "config": self.routing.config, "loaded_at": self.loaded_at,
                                "routes": len(self.routing.routes),
                                "db_server": getattr(self.store.db, "server", None),
                                "db_error": self.db_error, "routed": self.routed,
                                "refused": self.refused, "calls": len(self.records.live()),
                                "records": self.records.counts(), "updated": time.time()})


def _after(msg: dict) -> str | None:
    after = msg.get("after")
    if after is not None and not isinstance(after, str):
        raise ValueError("'after' is a call_id (string) or null")
    return after


def background(gw: Gateway):
    """Loads versions, reconciles while active, purges, publishes (periods, not waits)."""
    n = gw.copy_from_peer()
    state.log(APP, f"copied {n} call records from the peer")
    next_reconcile, was_active = 0.0, False
    while True:
        gw.load()
        now = time.monotonic()
        active = gw.role_fn() == "active"
        if active and (not was_active or now >= next_reconcile):
            try:
                changed = gw.reconcile()
                if changed:
                    state.log(APP, f"reconciled {changed} call records with the units")
            except Exception as exc:   # a bad reply must not stop the loop
                state.log(APP, f"reconcile failed: {exc!r}")
            next_reconcile = now + RECONCILE_PERIOD
        was_active = active
        gw.records.purge()
        gw.publish()
        time.sleep(LOAD_PERIOD)


def main():
    s = Settings.from_env()
    gw = Gateway(s, ConfigStore(Db.from_settings(s)))
    server = Server(GATEWAY_PORT)
    reply_lock = threading.Lock()

    def reply(addr, msg):
        with reply_lock:
            server.reply(addr, msg)

    gw.reply_fn = reply
    gw.load()
    threading.Thread(target=background, args=(gw,), daemon=True).start()
    state.log(APP, f"listening on UDP {GATEWAY_PORT}")
    while True:
        server.serve_once(gw.handle, 0.5)


if __name__ == "__main__":
    main()
