"""gateway: answers the units' route requests while this host is active, keeps call records.

Routes come from the active configuration in the database (refreshed in the background so
a slow or failing database never delays a route answer; the last good table is kept)."""
from __future__ import annotations

import threading
import time

from . import state
from .db import Db
from .settings import GATEWAY_PORT, Settings
from .udp import Server

APP = "gateway"
REFRESH = 2.0


class Gateway:
    def __init__(self, s: Settings, db: Db):
        self.s, self.db = s, db
        self.routes: list[dict] = []
        self.routes_loaded_at = None
        self.db_error = None
        self.calls: dict[str, dict] = {}
        self.routed = 0

    def refresh_routes(self):
        try:
            self.routes = self.db.run(
                "SELECT r.prefix, r.priority, r.dest_host, r.dest_port FROM routes r "
                "JOIN configurations c ON c.name = r.config WHERE c.active "
                "ORDER BY LENGTH(r.prefix) DESC, r.priority")
            self.routes_loaded_at, self.db_error = time.time(), None
        except Exception as exc:      # keep routing with the last good table
            self.db_error = str(exc)

    def route(self, cld: str) -> list[dict]:
        matches = [r for r in self.routes if cld.startswith(r["prefix"])]
        if not matches:
            return []
        best = max(len(r["prefix"]) for r in matches)
        return [{"host": r["dest_host"], "port": r["dest_port"]}
                for r in sorted((r for r in matches if len(r["prefix"]) == best),
                                key=lambda r: r["priority"])]

    def handle(self, msg: dict, addr) -> dict:
        op = msg["op"]
        role = state.read("role").get("role", "standby")
        if op == "ping":
            return {"ok": True, "role": role, "host": self.s.host}
        if op == "route":
            if role != "active":
                return {"ok": False, "code": 503, "error": f"{self.s.host} gateway is {role}"}
            cld = str(msg.get("cld", ""))
            routes = self.route(cld)
            if not routes:
                return {"ok": False, "code": 404, "error": f"no route for {cld!r}"}
            self.routed += 1
            self.calls[str(msg.get("call_id"))] = {"unit": msg.get("unit"), "cld": cld,
                                                   "state": "routing", "t": time.time()}
            return {"ok": True, "gateway": self.s.host, "routes": routes}
        if op == "call":
            cid = str(msg.get("call_id"))
            if msg.get("event") == "ended":
                self.calls.pop(cid, None)
            elif cid in self.calls:
                self.calls[cid]["state"] = str(msg.get("event"))
            return None
        return {"ok": False, "error": f"unknown op {op!r}"}

    def publish(self):
        state.write("gateway", {"routes": len(self.routes), "routes_loaded_at": self.routes_loaded_at,
                                "db_server": self.db.server, "db_error": self.db_error,
                                "routed": self.routed, "calls": len(self.calls),
                                "updated": time.time()})


def main():
    s = Settings.from_env()
    gw = Gateway(s, Db.from_settings(s))
    server = Server(GATEWAY_PORT)

    def refresher():
        while True:
            gw.refresh_routes()
            gw.publish()
            time.sleep(REFRESH)   # a period, not a wait for a condition

    threading.Thread(target=refresher, daemon=True).start()
    state.log(APP, f"listening on UDP {GATEWAY_PORT}")
    while True:
        server.serve_once(gw.handle, 0.5)


if __name__ == "__main__":
    main()
