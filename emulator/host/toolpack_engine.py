"""toolpack_engine: on the active host, loads the active configuration and keeps the
TMedia units configured with it.

- Reload: the OAM inserts a row in `reload_requests` (from either host); the active engine
  sees it on its next tick, snapshots the active configuration (routes, accounts, stacks,
  trunks, SS7) into a new `config_versions` row, pushes the unit's part to every unit (unit
  control op `configure`), tells the gateways to load the version (they also poll for it),
  and marks the requests done with the per-unit result. One load answers every pending
  request. The first active engine makes version 1 when there is none.
- Units are kept in step: every second the engine asks each unit its status and pushes
  the loaded version to a unit that reports another one (a rebooted unit, a unit that
  missed a push, or a new active engine after a switchover that happened mid-reload).
- The standby engine only follows the loaded version and publishes what it sees; requests
  wait for the active one, so reloading and switching configurations work after a
  switchover too.
- SS7: every board is pushed the version's SS7 part (ss7_config.for_units: the linkset,
  its point codes, the units ending its links and their trunk groups' CICs), spares too,
  and runs the SS7 node of the unit it serves from it; a change restarts the nodes. A
  version whose SS7 part cannot run pushes none (the nodes stop): the reload's result
  says why, and is not ok.
"""
from __future__ import annotations

import time

from . import state
from .config_store import ConfigStore
from .db import Db
from .settings import GATEWAY_PORT, UNIT_CONTROL_PORT, Settings
from .ss7_config import for_units
from .udp import Client

APP = "toolpack_engine"
TICK = 0.2
SYNC_PERIOD = 1.0
UNIT_TIMEOUT = 1.0
GATEWAY_TIMEOUT = 3.0


class Engine:
    def __init__(self, s: Settings, store: ConfigStore, role_fn=None, request_fn=None,
                 send_fn=None, clock=time.time):
        self.s, self.store, self.clock = s, store, clock
        self.role_fn = role_fn or (lambda: state.read("role").get("role", "standby"))
        client = Client()
        self.request_fn = request_fn or (lambda addrs, msg, timeout:
                                         client.request(addrs, msg, timeout=timeout))
        self.send_fn = send_fn or client.send
        self.version = None          # the latest loaded version and its snapshot
        self.snapshot = None
        self.ss7, self.ss7_error = None, None   # the version's SS7 part for the units
        self.units = {u: {"version": None, "pushed_at": None, "error": None} for u in s.units}
        self.last_reload = None
        self.error = None
        self.next_sync = 0.0

    def unit_addrs(self, unit):
        return [(ip, UNIT_CONTROL_PORT) for ip in self.s.units[unit]]

    # ---- pushing to the units -------------------------------------------------------
    def serves(self, board: str):
        """The unit a board serves (N+1), as the sys_manager last heard it; a board of the
        same name when nothing is known yet. A spare (None) gets no SIP/SS7/ISDN stacks;
        its own trunks it keeps (no HA at trunk level)."""
        info = (state.read("sysmgr").get("units") or {}).get(board) or {}
        return info["serves"] if "serves" in info else board

    def configure_msg(self, unit: str, served=...) -> dict:
        """`served`: what the board itself says it serves (its status reply), which is
        newer than the sys_manager's published view: a spare told to `assume` a unit
        must get that unit's stacks at once, not the spare's empty configuration."""
        snap = self.snapshot
        if served is ...:
            served = self.serves(unit)
        return {"op": "configure", "controller": self.s.host, "version": self.version,
                "config": snap["config"], "routes": len(snap["routes"]), "unit": served,
                "stacks": snap["stacks"].get(served, []) if served else [],
                # trunks are the board's own lines: they never move to the spare
                "trunks": snap["trunks"].get(unit, []),
                "ss7": self.ss7}

    def push(self, unit: str, served=...) -> str:
        """Configure one unit with the loaded version: "ok" or why not."""
        reply = self.request_fn(self.unit_addrs(unit), self.configure_msg(unit, served), UNIT_TIMEOUT)
        info = self.units[unit]
        if reply is None:
            info["error"] = "no answer"
        elif not reply.get("ok"):
            info["error"] = f"{reply.get('error')} (controller {reply.get('controller')})"
        else:
            info.update(version=self.version, pushed_at=self.clock(), error=None)
            state.log(APP, f"{unit} configured: {self.snapshot['config']} version {self.version}")
            return "ok"
        state.log(APP, f"{unit} not configured: {info['error']}")
        return info["error"]

    def sync_units(self) -> None:
        for unit in self.s.units:
            reply = self.request_fn(self.unit_addrs(unit), {"op": "status"}, UNIT_TIMEOUT)
            if reply is None or not reply.get("ok"):
                self.units[unit]["error"] = "no answer to status"
                continue
            cfg = reply.get("config") or {}
            have = cfg.get("version")
            self.units[unit]["version"] = have
            # a rebooted board, or one that took over another unit (N+1): push again
            if have != self.version or cfg.get("unit", unit) != reply.get("serves", unit):
                self.push(unit, reply.get("serves", unit))

    # ---- reload ---------------------------------------------------------------------
    def use_version(self, version: int) -> None:
        v = self.store.version(version)
        self._load(version, v["snapshot"])

    def _load(self, version: int, snap: dict) -> None:
        self.version, self.snapshot = version, snap
        self.ss7, self.ss7_error = for_units(snap.get("ss7"), self.s.services)

    def reload(self, upto: int | None) -> dict:
        """Load the active configuration as a new version and apply it everywhere."""
        snap = self.store.snapshot()
        version = self.store.save_version(snap, self.s.host)
        self._load(version, snap)
        result = {"config": snap["config"], "version": version, "by": self.s.host,
                  "units": {u: self.push(u) for u in self.s.units},
                  "ss7": {"linkset": (self.ss7 or {}).get("linkset"), "error": self.ss7_error}}
        reply = self.request_fn([("127.0.0.1", GATEWAY_PORT)], {"op": "load"}, GATEWAY_TIMEOUT)
        result["gateway"] = {"host": self.s.host,
                             "version": reply.get("version") if reply else None,
                             "error": None if reply and reply.get("ok") else
                             (reply or {}).get("error", "no answer")}
        # the standby gateway polls for versions too; this only makes it quicker
        self.send_fn([(ip, GATEWAY_PORT) for ip in self.s.peer_ctrl_ips], {"op": "load", "seq": 0})
        result["ok"] = all(r == "ok" for r in result["units"].values()) and \
            result["gateway"]["version"] == version and self.ss7_error is None
        if upto is not None:
            self.store.finish_reloads(upto, self.s.host, version, result)
        self.last_reload = dict(result, at=self.clock(), request=upto)
        state.log(APP, f"reload {'request ' + str(upto) if upto else '(initial)'}: {result}")
        return result

    def step(self) -> None:
        """One tick: on the active host, apply pending reloads and keep units in step; on
        the standby, only follow the loaded version (for the status)."""
        if self.role_fn() != "active":
            if time.monotonic() >= self.next_sync:
                self.next_sync = time.monotonic() + SYNC_PERIOD
                latest = self.store.latest_version_id()
                if latest is not None and latest != self.version:
                    self.use_version(latest)
            return
        pending = self.store.pending_reload()
        latest = self.store.latest_version_id()
        if pending is not None or latest is None:
            self.reload(pending)
            self.next_sync = time.monotonic() + SYNC_PERIOD
            return
        if latest != self.version:
            self.use_version(latest)
        if time.monotonic() >= self.next_sync:
            self.next_sync = time.monotonic() + SYNC_PERIOD
            self.sync_units()

    def publish(self, active_config) -> None:
        state.write("engine", {
            "role": self.role_fn(), "config": active_config,
            "loaded": None if self.snapshot is None else
            {"version": self.version, "config": self.snapshot["config"]},
            "units": self.units, "last_reload": self.last_reload, "error": self.error,
            "ss7": {"linkset": (self.ss7 or {}).get("linkset"), "error": self.ss7_error},
            "db_server": getattr(self.store.db, "server", None), "updated": time.time()})


def main():
    s = Settings.from_env()
    engine = Engine(s, ConfigStore(Db.from_settings(s)))
    active_config, next_publish = None, 0.0
    while True:
        try:
            engine.step()
            if time.monotonic() >= next_publish:
                active_config = engine.store.active_config()
            engine.error = None
        except Exception as exc:   # database away: try again next tick (the Db fails over)
            engine.error = str(exc)
        if time.monotonic() >= next_publish:
            next_publish = time.monotonic() + 1.0
            engine.publish(active_config)
        time.sleep(TICK)   # a period, not a wait for a condition


if __name__ == "__main__":
    main()
