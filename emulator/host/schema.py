"""The configuration database: its tables and the first configurations, created on the
main server at first start (replicated to the backup from there).

Routes keep one row per destination: several rows with the same prefix are the route's
alternates, tried in `priority` order. A destination is a SIP address (`dest_host`,
`dest_port`) or an ISUP trunk group (`dest_group`, the other two empty). Accounts are global (not per
configuration). `app_run` is the Run / Don't Run flag of each application per host (a
missing row means Run). `reload_requests` and `config_versions` carry configuration
reloads between the OAM, the active engine and the gateways (ARCHITECTURE.md).

The SS7 side, per configuration: `ss7_linksets` (the linkset to the far end, with the
system's and the far end's point codes), `ss7_links` (each link of a linkset by its SLC,
and the unit that ends it) and `isup_groups` (ISUP trunk groups: the unit whose circuits
they are, and their CIC range). Deleting a linkset deletes its links and groups.
Seeded only where TB_SEED_SS7 says so (the ss7 variant)."""
from __future__ import annotations

import os

STACK_KINDS = ("SIP", "SS7", "ISDN")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS configurations (
         name VARCHAR(64) PRIMARY KEY, active BOOLEAN NOT NULL DEFAULT FALSE)""",
    """CREATE TABLE IF NOT EXISTS routes (
         id INT AUTO_INCREMENT PRIMARY KEY, config VARCHAR(64) NOT NULL, prefix VARCHAR(32) NOT NULL,
         priority INT NOT NULL DEFAULT 0, dest_host VARCHAR(64) NOT NULL DEFAULT '',
         dest_port INT NOT NULL DEFAULT 0, dest_group VARCHAR(64) NOT NULL DEFAULT '',
         UNIQUE KEY route_dest (config, prefix, dest_host, dest_port, dest_group),
         FOREIGN KEY (config) REFERENCES configurations(name) ON DELETE CASCADE)""",
    """CREATE TABLE IF NOT EXISTS accounts (
         name VARCHAR(64) PRIMARY KEY, enabled BOOLEAN NOT NULL DEFAULT TRUE,
         max_calls INT NOT NULL DEFAULT 1000)""",
    """CREATE TABLE IF NOT EXISTS trunks (
         config VARCHAR(64) NOT NULL, unit VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL,
         enabled BOOLEAN NOT NULL DEFAULT TRUE, PRIMARY KEY (config, unit, name),
         FOREIGN KEY (config) REFERENCES configurations(name) ON DELETE CASCADE)""",
    """CREATE TABLE IF NOT EXISTS stacks (
         config VARCHAR(64) NOT NULL, unit VARCHAR(64) NOT NULL,
         kind ENUM('SIP', 'SS7', 'ISDN') NOT NULL, name VARCHAR(64) NOT NULL,
         enabled BOOLEAN NOT NULL DEFAULT TRUE, PRIMARY KEY (config, unit, name),
         FOREIGN KEY (config) REFERENCES configurations(name) ON DELETE CASCADE)""",
    """CREATE TABLE IF NOT EXISTS ss7_linksets (
         config VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL,
         opc INT NOT NULL, dpc INT NOT NULL, PRIMARY KEY (config, name),
         FOREIGN KEY (config) REFERENCES configurations(name) ON DELETE CASCADE)""",
    """CREATE TABLE IF NOT EXISTS ss7_links (
         config VARCHAR(64) NOT NULL, linkset VARCHAR(64) NOT NULL, slc INT NOT NULL,
         unit VARCHAR(64) NOT NULL, PRIMARY KEY (config, linkset, slc),
         UNIQUE KEY link_unit (config, linkset, unit),
         FOREIGN KEY (config, linkset) REFERENCES ss7_linksets(config, name) ON DELETE CASCADE)""",
    """CREATE TABLE IF NOT EXISTS isup_groups (
         config VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, linkset VARCHAR(64) NOT NULL,
         unit VARCHAR(64) NOT NULL, cic_first INT NOT NULL, cic_last INT NOT NULL,
         PRIMARY KEY (config, name),
         FOREIGN KEY (config, linkset) REFERENCES ss7_linksets(config, name) ON DELETE CASCADE)""",
    """CREATE TABLE IF NOT EXISTS app_run (
         host VARCHAR(32) NOT NULL, app VARCHAR(64) NOT NULL, run BOOLEAN NOT NULL DEFAULT TRUE,
         updated_at DOUBLE NOT NULL, PRIMARY KEY (host, app))""",
    """CREATE TABLE IF NOT EXISTS reload_requests (
         id INT AUTO_INCREMENT PRIMARY KEY, requested_at DOUBLE NOT NULL,
         requested_by VARCHAR(32) NOT NULL, done_at DOUBLE NULL, done_by VARCHAR(32) NULL,
         version INT NULL, result TEXT NULL)""",
    """CREATE TABLE IF NOT EXISTS config_versions (
         id INT AUTO_INCREMENT PRIMARY KEY, config VARCHAR(64) NOT NULL, loaded_at DOUBLE NOT NULL,
         loaded_by VARCHAR(32) NOT NULL, snapshot MEDIUMTEXT NOT NULL)""",
]


def seed_units() -> list[str]:
    """The units that carry stacks and trunks: TB_SERVICES ("tmedia-1=ip/prefix,...", the
    spare has none of its own), else TB_UNITS ("tmedia-1=ip/ip,..."), as the hosts read it."""
    raw = os.environ.get("TB_SERVICES", "").strip() or os.environ.get("TB_UNITS", "")
    return [item.split("=")[0].strip() for item in raw.split(",") if item.strip()]


def _seed_config(cur, config: str) -> None:
    for prio, dest in enumerate(os.environ.get("TB_SEED_ROUTES", "").split(",")):
        if not dest:
            continue
        host, port = dest.split(":")
        cur.execute("INSERT IGNORE INTO routes (config, prefix, priority, dest_host, dest_port) "
                    "VALUES (%s, '', %s, %s, %s)", (config, prio, host, int(port)))
    for unit in seed_units():
        for kind in STACK_KINDS:
            cur.execute("INSERT IGNORE INTO stacks (config, unit, kind, name, enabled) "
                        "VALUES (%s, %s, %s, %s, TRUE)", (config, unit, kind, f"{kind.lower()}-0"))
        for n in range(2):
            cur.execute("INSERT IGNORE INTO trunks (config, unit, name, enabled) "
                        "VALUES (%s, %s, %s, TRUE)", (config, unit, f"e1-{n}"))


def seed_ss7() -> dict | None:
    """TB_SEED_SS7="LINKSET=OPC:DPC;UNIT,UNIT;GROUP=UNIT:FIRST-LAST,...": the linkset with
    its point codes, the units ending its links in SLC order, and the ISUP trunk groups.
    Unset: no SS7. A malformed value stops the seeding with the variable named."""
    raw = os.environ.get("TB_SEED_SS7", "").strip()
    if not raw:
        return None
    try:
        linkset, units, groups = raw.split(";")
        name, _, pcs = linkset.partition("=")
        opc, dpc = (int(x) for x in pcs.split(":"))
        out = {"linkset": name.strip(), "opc": opc, "dpc": dpc,
               "links": [u.strip() for u in units.split(",")], "groups": []}
        for g in groups.split(","):
            gname, _, spec = g.partition("=")
            unit, _, cics = spec.partition(":")
            first, last = (int(x) for x in cics.split("-"))
            out["groups"].append((gname.strip(), unit.strip(), first, last))
    except ValueError:
        raise SystemExit(f"bad TB_SEED_SS7={raw!r}: expected "
                         "LINKSET=OPC:DPC;UNIT,UNIT;GROUP=UNIT:FIRST-LAST,...") from None
    return out


def _seed_ss7(cur, config: str) -> None:
    ss7 = seed_ss7()
    if ss7 is None:
        return
    cur.execute("INSERT IGNORE INTO ss7_linksets (config, name, opc, dpc) VALUES (%s, %s, %s, %s)",
                (config, ss7["linkset"], ss7["opc"], ss7["dpc"]))
    for slc, unit in enumerate(ss7["links"]):
        cur.execute("INSERT IGNORE INTO ss7_links (config, linkset, slc, unit) VALUES (%s, %s, %s, %s)",
                    (config, ss7["linkset"], slc, unit))
    for name, unit, first, last in ss7["groups"]:
        cur.execute("INSERT IGNORE INTO isup_groups (config, name, linkset, unit, cic_first, cic_last) "
                    "VALUES (%s, %s, %s, %s, %s, %s)", (config, name, ss7["linkset"], unit, first, last))


def create_and_seed(cur) -> None:
    """Idempotent: a restarted main keeps its data (a configuration is seeded only when
    it does not exist yet)."""
    cur.execute("CREATE DATABASE IF NOT EXISTS toolpack")
    cur.execute("USE toolpack")
    for stmt in SCHEMA:
        cur.execute(stmt)
    for name, active in (("default", True), ("alt", False)):
        cur.execute("SELECT COUNT(*) FROM configurations WHERE name = %s", (name,))
        if cur.fetchone()[0] == 0:
            cur.execute("INSERT INTO configurations (name, active) VALUES (%s, %s)", (name, active))
            _seed_config(cur, name)
            _seed_ss7(cur, name)
    # the SIPp caller's account (From user "sipp"); a caller with no account is not limited
    cur.execute("INSERT IGNORE INTO accounts (name, enabled, max_calls) VALUES ('sipp', TRUE, 10000)")
