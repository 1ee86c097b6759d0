"""Every SQL statement of the OAM, the engine and the gateway, in one place.

All values go to the driver as parameters; no statement is built from strings. The
database client runs one autocommitted statement at a time, so each change here is one
statement (atomic on its own); where a change must say whether its row existed, the row
is read back (MariaDB has INSERT/DELETE ... RETURNING but no UPDATE ... RETURNING)."""
from __future__ import annotations

import json
import time

def _bool(row: dict, *keys: str) -> dict:
    for k in keys:
        if k in row and row[k] is not None:
            row[k] = bool(row[k])
    return row


class ConfigStore:
    def __init__(self, db):
        self.db = db

    # ---- configurations -------------------------------------------------------------
    def configurations(self) -> list[dict]:
        return [_bool(r, "active") for r in
                self.db.run("SELECT name, active FROM configurations ORDER BY name")]

    def config_exists(self, name: str) -> bool:
        return bool(self.db.run("SELECT 1 AS x FROM configurations WHERE name = %s", (name,)))

    def active_config(self) -> str | None:
        rows = self.db.run("SELECT name FROM configurations WHERE active ORDER BY name LIMIT 1")
        return rows[0]["name"] if rows else None

    def activate(self, name: str) -> bool:
        """Mark `name` the active configuration (one statement flips every row)."""
        if not self.config_exists(name):
            return False
        self.db.run("UPDATE configurations SET active = (name = %s)", (name,))
        return True

    # ---- routes ---------------------------------------------------------------------
    # a row's destination: a SIP address (host, port) or an ISUP trunk group (trunk_group)
    def routes(self, config: str | None = None) -> list[dict]:
        if config is None:
            return self.db.run("SELECT id, config, prefix, priority, NULLIF(dest_host, '') AS host, "
                               "NULLIF(dest_port, 0) AS port, NULLIF(dest_group, '') AS trunk_group "
                               "FROM routes ORDER BY config, prefix, priority, id")
        return self.db.run("SELECT id, config, prefix, priority, NULLIF(dest_host, '') AS host, "
                           "NULLIF(dest_port, 0) AS port, NULLIF(dest_group, '') AS trunk_group "
                           "FROM routes WHERE config = %s ORDER BY prefix, priority, id", (config,))

    def route(self, route_id: int) -> dict | None:
        rows = self.db.run("SELECT id, config, prefix, priority, NULLIF(dest_host, '') AS host, "
                           "NULLIF(dest_port, 0) AS port, NULLIF(dest_group, '') AS trunk_group "
                           "FROM routes WHERE id = %s", (route_id,))
        return rows[0] if rows else None

    def add_route(self, config: str, prefix: str, priority: int, host: str | None,
                  port: int | None, trunk_group: str | None = None) -> dict:
        rows = self.db.run("INSERT INTO routes (config, prefix, priority, dest_host, dest_port, "
                           "dest_group) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                           (config, prefix, priority, host or "", port or 0, trunk_group or ""))
        return self.route(rows[0]["id"])

    def update_route(self, route_id: int, r: dict) -> dict | None:
        self.db.run("UPDATE routes SET config = %s, prefix = %s, priority = %s, dest_host = %s, "
                    "dest_port = %s, dest_group = %s WHERE id = %s",
                    (r["config"], r["prefix"], r["priority"], r.get("host") or "",
                     r.get("port") or 0, r.get("trunk_group") or "", route_id))
        return self.route(route_id)

    def delete_route(self, route_id: int) -> bool:
        return bool(self.db.run("DELETE FROM routes WHERE id = %s RETURNING id", (route_id,)))

    # ---- SS7: linksets, links, ISUP trunk groups (per configuration) ----------------
    def ss7(self, config: str) -> dict:
        """{"linksets": [{name, opc, dpc, links: [{slc, unit}]}], "trunk_groups": [...]}"""
        linksets = self.db.run("SELECT name, opc, dpc FROM ss7_linksets WHERE config = %s "
                               "ORDER BY name", (config,))
        links = self.db.run("SELECT linkset, slc, unit FROM ss7_links WHERE config = %s "
                            "ORDER BY linkset, slc", (config,))
        for ls in linksets:
            ls["links"] = [{"slc": l["slc"], "unit": l["unit"]} for l in links
                           if l["linkset"] == ls["name"]]
        groups = self.db.run("SELECT name, linkset, unit, cic_first, cic_last FROM isup_groups "
                             "WHERE config = %s ORDER BY name", (config,))
        return {"linksets": linksets, "trunk_groups": groups}

    def put_linkset(self, config: str, name: str, opc: int, dpc: int) -> None:
        self.db.run("INSERT INTO ss7_linksets (config, name, opc, dpc) VALUES (%s, %s, %s, %s) "
                    "ON DUPLICATE KEY UPDATE opc = VALUES(opc), dpc = VALUES(dpc)",
                    (config, name, opc, dpc))

    def delete_linkset(self, config: str, name: str) -> bool:
        return bool(self.db.run("DELETE FROM ss7_linksets WHERE config = %s AND name = %s "
                                "RETURNING name", (config, name)))

    def put_link(self, config: str, linkset: str, slc: int, unit: str) -> None:
        """Raises IntegrityError (the OAM's 409) for an unknown linkset or a unit that
        already ends another link of it."""
        self.db.run("INSERT INTO ss7_links (config, linkset, slc, unit) VALUES (%s, %s, %s, %s) "
                    "ON DUPLICATE KEY UPDATE unit = VALUES(unit)", (config, linkset, slc, unit))

    def delete_link(self, config: str, linkset: str, slc: int) -> bool:
        return bool(self.db.run("DELETE FROM ss7_links WHERE config = %s AND linkset = %s "
                                "AND slc = %s RETURNING slc", (config, linkset, slc)))

    def put_trunk_group(self, config: str, name: str, g: dict) -> None:
        self.db.run("INSERT INTO isup_groups (config, name, linkset, unit, cic_first, cic_last) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
                    "linkset = VALUES(linkset), unit = VALUES(unit), "
                    "cic_first = VALUES(cic_first), cic_last = VALUES(cic_last)",
                    (config, name, g["linkset"], g["unit"], g["cic_first"], g["cic_last"]))

    def delete_trunk_group(self, config: str, name: str) -> bool:
        return bool(self.db.run("DELETE FROM isup_groups WHERE config = %s AND name = %s "
                                "RETURNING name", (config, name)))

    # ---- accounts -------------------------------------------------------------------
    def accounts(self) -> list[dict]:
        return [_bool(r, "enabled") for r in
                self.db.run("SELECT name, enabled, max_calls FROM accounts ORDER BY name")]

    def account(self, name: str) -> dict | None:
        rows = self.db.run("SELECT name, enabled, max_calls FROM accounts WHERE name = %s", (name,))
        return _bool(rows[0], "enabled") if rows else None

    def add_account(self, name: str, enabled: bool, max_calls: int) -> dict:
        """Raises pymysql's IntegrityError when the name exists (the OAM's 409)."""
        self.db.run("INSERT INTO accounts (name, enabled, max_calls) VALUES (%s, %s, %s)",
                    (name, enabled, max_calls))
        return self.account(name)

    def update_account(self, name: str, a: dict) -> dict | None:
        self.db.run("UPDATE accounts SET enabled = %s, max_calls = %s WHERE name = %s",
                    (a["enabled"], a["max_calls"], name))
        return self.account(name)

    def delete_account(self, name: str) -> bool:
        return bool(self.db.run("DELETE FROM accounts WHERE name = %s RETURNING name", (name,)))

    # ---- trunks and stacks (per configuration and unit) -----------------------------
    def trunks(self, config: str) -> list[dict]:
        return [_bool(r, "enabled") for r in self.db.run(
            "SELECT config, unit, name, enabled FROM trunks WHERE config = %s ORDER BY unit, name",
            (config,))]

    def set_trunk(self, config: str, unit: str, name: str, enabled: bool) -> dict | None:
        self.db.run("UPDATE trunks SET enabled = %s WHERE config = %s AND unit = %s AND name = %s",
                    (enabled, config, unit, name))
        rows = self.db.run("SELECT config, unit, name, enabled FROM trunks "
                           "WHERE config = %s AND unit = %s AND name = %s", (config, unit, name))
        return _bool(rows[0], "enabled") if rows else None

    def stacks(self, config: str) -> list[dict]:
        return [_bool(r, "enabled") for r in self.db.run(
            "SELECT config, unit, kind, name, enabled FROM stacks WHERE config = %s "
            "ORDER BY unit, kind, name", (config,))]

    def set_stack(self, config: str, unit: str, name: str, enabled: bool) -> dict | None:
        self.db.run("UPDATE stacks SET enabled = %s WHERE config = %s AND unit = %s AND name = %s",
                    (enabled, config, unit, name))
        rows = self.db.run("SELECT config, unit, kind, name, enabled FROM stacks "
                           "WHERE config = %s AND unit = %s AND name = %s", (config, unit, name))
        return _bool(rows[0], "enabled") if rows else None

    # ---- Run / Don't Run ------------------------------------------------------------
    def app_run(self, host: str) -> dict[str, bool]:
        """{app: run} for the apps of `host` that have a row (no row means Run)."""
        return {r["app"]: bool(r["run"]) for r in
                self.db.run("SELECT app, run FROM app_run WHERE host = %s", (host,))}

    def set_app_run(self, host: str, app: str, run: bool) -> None:
        self.db.run("INSERT INTO app_run (host, app, run, updated_at) VALUES (%s, %s, %s, %s) "
                    "ON DUPLICATE KEY UPDATE run = VALUES(run), updated_at = VALUES(updated_at)",
                    (host, app, run, time.time()))

    # ---- reloads --------------------------------------------------------------------
    def request_reload(self, by: str) -> int:
        rows = self.db.run("INSERT INTO reload_requests (requested_at, requested_by) "
                           "VALUES (%s, %s) RETURNING id", (time.time(), by))
        return int(rows[0]["id"])

    def reload_request(self, req_id: int) -> dict | None:
        rows = self.db.run("SELECT id, requested_at, requested_by, done_at, done_by, version, result "
                           "FROM reload_requests WHERE id = %s", (req_id,))
        if not rows:
            return None
        row = rows[0]
        row["result"] = json.loads(row["result"]) if row["result"] else None
        return row

    def pending_reload(self) -> int | None:
        """Highest reload request not applied yet (one load answers all of them)."""
        rows = self.db.run("SELECT MAX(id) AS id FROM reload_requests WHERE done_at IS NULL")
        return rows[0]["id"] if rows and rows[0]["id"] is not None else None

    def finish_reloads(self, upto: int, by: str, version: int, result: dict) -> None:
        self.db.run("UPDATE reload_requests SET done_at = %s, done_by = %s, version = %s, result = %s "
                    "WHERE id <= %s AND done_at IS NULL",
                    (time.time(), by, version, json.dumps(result), upto))

    # ---- loaded configuration versions ----------------------------------------------
    def snapshot(self) -> dict:
        """The active configuration as the units and the gateways use it."""
        config = self.active_config()
        if config is None:
            raise LookupError("no active configuration")
        routes = [{"id": r["id"], "prefix": r["prefix"], "priority": r["priority"],
                   "host": r["host"], "port": r["port"], "trunk_group": r["trunk_group"]}
                  for r in self.routes(config)]
        accounts = {a["name"]: {"enabled": a["enabled"], "max_calls": a["max_calls"]}
                    for a in self.accounts()}
        stacks: dict[str, list] = {}
        for s in self.stacks(config):
            stacks.setdefault(s["unit"], []).append(
                {"kind": s["kind"], "name": s["name"], "enabled": s["enabled"]})
        trunks: dict[str, list] = {}
        for t in self.trunks(config):
            trunks.setdefault(t["unit"], []).append({"name": t["name"], "enabled": t["enabled"]})
        return {"config": config, "routes": routes, "accounts": accounts,
                "stacks": stacks, "trunks": trunks, "ss7": self.ss7(config)}

    def save_version(self, snap: dict, by: str, keep: int = 20) -> int:
        rows = self.db.run("INSERT INTO config_versions (config, loaded_at, loaded_by, snapshot) "
                           "VALUES (%s, %s, %s, %s) RETURNING id",
                           (snap["config"], time.time(), by, json.dumps(snap)))
        version = int(rows[0]["id"])
        self.db.run("DELETE FROM config_versions WHERE id <= %s", (version - keep,))
        return version

    def latest_version_id(self) -> int | None:
        rows = self.db.run("SELECT MAX(id) AS id FROM config_versions")
        return rows[0]["id"] if rows and rows[0]["id"] is not None else None

    def version(self, version: int) -> dict | None:
        rows = self.db.run("SELECT id, config, loaded_at, loaded_by, snapshot FROM config_versions "
                           "WHERE id = %s", (version,))
        if not rows:
            return None
        row = rows[0]
        row["snapshot"] = json.loads(row["snapshot"])
        return row
