"""In-memory stand-ins for the OAM's database store and host links (no MariaDB, no sockets),
shared by the OAM and gateway unit tests."""
from __future__ import annotations

import copy
import itertools

import pymysql

from emulator.host.settings import Settings


def settings(**kw) -> Settings:
    base = dict(host="host-a", peer="host-b", ctrl_ips=("10.0.1.11", "10.0.2.11"),
                peer_ctrl_ips=("10.0.1.12", "10.0.2.12"),
                units={"tmedia-1": ("10.0.1.21", "10.0.2.21")}, db_main="10.0.1.11",
                db_backup="10.0.1.12", db_role="main", db_password="pw", repl_password="rpw",
                oam_token="secret-token-for-tests", priority=1)
    base.update(kw)
    return Settings(**base)


class FakeDb:
    server = "fake"


class FakeStore:
    """The ConfigStore interface over dicts, with the same conflicts (IntegrityError)."""

    def __init__(self):
        self.db = FakeDb()
        self.configs = {"default": True, "alt": False}
        self.ids = itertools.count(1)
        self.route_rows = {}
        for cfg in self.configs:
            rid = next(self.ids)
            self.route_rows[rid] = {"id": rid, "config": cfg, "prefix": "", "priority": 0,
                                    "host": "10.0.3.32", "port": 5060, "trunk_group": None}
        self.account_rows = {"sipp": {"name": "sipp", "enabled": True, "max_calls": 10000}}
        self.trunk_rows = {(c, "tmedia-1", n): True for c in self.configs for n in ("e1-0", "e1-1")}
        self.stack_rows = {(c, "tmedia-1", f"{k.lower()}-0"): (k, True)
                           for c in self.configs for k in ("SIP", "SS7", "ISDN")}
        self.ss7_rows = {c: {"linksets": {}, "links": {}, "groups": {}} for c in self.configs}
        self.runs = {}
        self.reloads = {}
        self.versions = {}
        self.engine = None        # callable(request id) -> result, run at once when set

    # configurations
    def configurations(self):
        return [{"name": n, "active": a} for n, a in sorted(self.configs.items())]

    def config_exists(self, name):
        return name in self.configs

    def active_config(self):
        return next((n for n, a in sorted(self.configs.items()) if a), None)

    def activate(self, name):
        if name not in self.configs:
            return False
        self.configs = {n: n == name for n in self.configs}
        return True

    # routes
    def routes(self, config=None):
        return [dict(r) for r in self.route_rows.values() if config in (None, r["config"])]

    def route(self, rid):
        r = self.route_rows.get(rid)
        return dict(r) if r else None

    def _unique(self, r, rid=None):
        for other in self.route_rows.values():
            if other["id"] != rid and all(other[k] == r[k] for k in ("config", "prefix", "host", "port", "trunk_group")):
                raise pymysql.err.IntegrityError(1062, "Duplicate entry for key 'route_dest'")

    def add_route(self, config, prefix, priority, host, port, trunk_group=None):
        r = {"id": None, "config": config, "prefix": prefix, "priority": priority, "host": host,
             "port": port, "trunk_group": trunk_group}
        self._unique(r)
        r["id"] = next(self.ids)
        self.route_rows[r["id"]] = r
        return dict(r)

    def update_route(self, rid, r):
        if rid not in self.route_rows:
            return None
        self._unique(r, rid)
        self.route_rows[rid] = dict(r, id=rid)
        return dict(self.route_rows[rid])

    def delete_route(self, rid):
        return self.route_rows.pop(rid, None) is not None

    # SS7 (the same conflicts as the tables' keys)
    def ss7(self, config):
        t = self.ss7_rows[config]
        return {"linksets": [dict(ls, name=n, links=[{"slc": slc, "unit": u} for (l, slc), u
                                                     in sorted(t["links"].items()) if l == n])
                             for n, ls in sorted(t["linksets"].items())],
                "trunk_groups": [dict(g, name=n) for n, g in sorted(t["groups"].items())]}

    def put_linkset(self, config, name, opc, dpc):
        self.ss7_rows[config]["linksets"][name] = {"opc": opc, "dpc": dpc}

    def delete_linkset(self, config, name):
        t = self.ss7_rows[config]
        if t["linksets"].pop(name, None) is None:
            return False
        t["links"] = {k: u for k, u in t["links"].items() if k[0] != name}
        t["groups"] = {n: g for n, g in t["groups"].items() if g["linkset"] != name}
        return True

    def put_link(self, config, linkset, slc, unit):
        t = self.ss7_rows[config]
        if linkset not in t["linksets"]:
            raise pymysql.err.IntegrityError(1452, "a foreign key constraint fails")
        if any(l == linkset and s != slc and u == unit for (l, s), u in t["links"].items()):
            raise pymysql.err.IntegrityError(1062, "Duplicate entry for key 'link_unit'")
        t["links"][(linkset, slc)] = unit

    def delete_link(self, config, linkset, slc):
        return self.ss7_rows[config]["links"].pop((linkset, slc), None) is not None

    def put_trunk_group(self, config, name, g):
        t = self.ss7_rows[config]
        if g["linkset"] not in t["linksets"]:
            raise pymysql.err.IntegrityError(1452, "a foreign key constraint fails")
        t["groups"][name] = {k: g[k] for k in ("linkset", "unit", "cic_first", "cic_last")}

    def delete_trunk_group(self, config, name):
        return self.ss7_rows[config]["groups"].pop(name, None) is not None

    # accounts
    def accounts(self):
        return [dict(a) for _, a in sorted(self.account_rows.items())]

    def account(self, name):
        a = self.account_rows.get(name)
        return dict(a) if a else None

    def add_account(self, name, enabled, max_calls):
        if name in self.account_rows:
            raise pymysql.err.IntegrityError(1062, f"Duplicate entry '{name}' for key 'PRIMARY'")
        self.account_rows[name] = {"name": name, "enabled": enabled, "max_calls": max_calls}
        return self.account(name)

    def update_account(self, name, a):
        if name not in self.account_rows:
            return None
        self.account_rows[name] = {"name": name, "enabled": a["enabled"], "max_calls": a["max_calls"]}
        return self.account(name)

    def delete_account(self, name):
        return self.account_rows.pop(name, None) is not None

    # trunks, stacks
    def trunks(self, config):
        return [{"config": c, "unit": u, "name": n, "enabled": e}
                for (c, u, n), e in sorted(self.trunk_rows.items()) if c == config]

    def set_trunk(self, config, unit, name, enabled):
        if (config, unit, name) not in self.trunk_rows:
            return None
        self.trunk_rows[(config, unit, name)] = enabled
        return {"config": config, "unit": unit, "name": name, "enabled": enabled}

    def stacks(self, config):
        return [{"config": c, "unit": u, "kind": k, "name": n, "enabled": e}
                for (c, u, n), (k, e) in sorted(self.stack_rows.items()) if c == config]

    def set_stack(self, config, unit, name, enabled):
        key = (config, unit, name)
        if key not in self.stack_rows:
            return None
        self.stack_rows[key] = (self.stack_rows[key][0], enabled)
        return {"config": config, "unit": unit, "kind": self.stack_rows[key][0], "name": name,
                "enabled": enabled}

    # Run / Don't Run
    def app_run(self, host):
        return {a: r for (h, a), r in self.runs.items() if h == host}

    def set_app_run(self, host, app, run):
        self.runs[(host, app)] = run

    # reloads and versions
    def request_reload(self, by):
        rid = len(self.reloads) + 1
        self.reloads[rid] = {"id": rid, "requested_by": by, "done_at": None, "done_by": None,
                             "version": None, "result": None}
        if self.engine is not None:
            result = self.engine(rid)
            self.reloads[rid].update(done_at=1.0, done_by="host-a", version=result.get("version"),
                                     result=result)
        return rid

    def reload_request(self, rid):
        return copy.deepcopy(self.reloads.get(rid))

    def pending_reload(self):
        pending = [i for i, r in self.reloads.items() if r["done_at"] is None]
        return max(pending) if pending else None

    def finish_reloads(self, upto, by, version, result):
        for i, r in self.reloads.items():
            if i <= upto and r["done_at"] is None:
                r.update(done_at=1.0, done_by=by, version=version, result=copy.deepcopy(result))

    def snapshot(self):
        config = self.active_config()
        stacks, trunks = {}, {}
        for s in self.stacks(config):
            stacks.setdefault(s["unit"], []).append({"kind": s["kind"], "name": s["name"],
                                                     "enabled": s["enabled"]})
        for t in self.trunks(config):
            trunks.setdefault(t["unit"], []).append({"name": t["name"], "enabled": t["enabled"]})
        return {"config": config,
                "routes": [{k: r[k] for k in ("id", "prefix", "priority", "host", "port", "trunk_group")}
                           for r in self.routes(config)],
                "accounts": {a["name"]: {"enabled": a["enabled"], "max_calls": a["max_calls"]}
                             for a in self.accounts()},
                "stacks": stacks, "trunks": trunks, "ss7": self.ss7(config)}

    def save_version(self, snap, by, keep=20):
        vid = len(self.versions) + 1
        self.versions[vid] = {"id": vid, "config": snap["config"], "loaded_by": by,
                              "snapshot": copy.deepcopy(snap)}
        return vid

    def latest_version_id(self):
        return max(self.versions) if self.versions else None

    def version(self, vid):
        return copy.deepcopy(self.versions.get(vid))


class FakeLinks:
    """State files, the local gateway and the peer's OAM, as dicts and callables."""

    def __init__(self):
        self.states = {"role": {"role": "active", "epoch": 2}, "monitor": {"apps": {
            a: {"state": "running", "pid": 100 + i, "restarts": 0}
            for i, a in enumerate(("toolpack_sys_manager", "toolpack_engine", "gateway", "tboamapp"))}}}
        self.peer = {"apps": {"toolpack_engine": {"state": "running", "pid": 7, "restarts": 0}}}
        self.gateway_fn = lambda msg: None
        self.sent = []

    def state(self, name):
        return copy.deepcopy(self.states.get(name, {}))

    def gateway(self, msg, timeout=3.0):
        self.sent.append(msg)
        return self.gateway_fn(msg)

    def peer_status(self):
        return self.peer

    def databases(self):
        return {"main": {"reachable": True}, "backup": {"reachable": True}}
