"""Helpers of the database HA integration tests (no tests here; named test_db_* to stay
with them): live database roles from the OAM status, table checksums read straight from
each server, and the client failover probe run inside a host
(`python -m emulator.host.db probe`, the applications' own client)."""
from __future__ import annotations

import json
import threading

import httpx
import pymysql

from harness.faults import wait_for


def host_of_ip(tb, ip: str) -> str:
    """The host of a database server (a Toolpack host, or a database host of its own)."""
    return next(h for h in tb.db_hosts if tb.ip(h) == ip)


def db_roles(tb) -> tuple[str, str]:
    """(main host, backup host) by live role, from a database view asked for now (an
    OAM's cached view may be minutes old)."""
    db = tb.db_view()
    return host_of_ip(tb, db["main"]["ip"]), host_of_ip(tb, db["backup"]["ip"])


def writable_main(tb) -> str | None:
    """The host whose server is writable now, None when neither is. With no writable
    server the view still names a "main" (the one the newest epoch names, else the
    preferred one): a wait for a promotion must not take that name for the promotion."""
    db = tb.db_view()
    main = db["main"]
    return host_of_ip(tb, main["ip"]) if main.get("role") == "main" else None


def connect(tb, host: str):
    return pymysql.connect(host=tb.ip(host), user="toolpack", password=tb.env["TB_DB_PASSWORD"],
                           database="toolpack", autocommit=True, connect_timeout=3)


def checksums(tb, host: str) -> dict[str, int]:
    """CHECKSUM TABLE of every toolpack table on one server."""
    conn = connect(tb, host)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = sorted(r[0] for r in cur.fetchall())
            out = {}
            for t in tables:
                cur.execute(f"CHECKSUM TABLE `{t}`")      # names from SHOW TABLES, not input
                out[t] = cur.fetchone()[1]
            return out
    finally:
        conn.close()


def wait_same_rows(tb, deadline_s: float = 30.0) -> dict[str, int]:
    """Both servers hold the same rows (replication converged): equal checksums."""
    def same():
        try:
            a, b = (checksums(tb, h) for h in tb.db_hosts)
        except pymysql.err.MySQLError:
            return False
        return a if a == b and a else False
    return wait_for(same, deadline_s, "equal checksums of every toolpack table on both servers",
                    interval=0.5)


def gateway_db_server(tb, host: str) -> str | None:
    st = tb.host_status(host, timeout=2)
    return st.data["gateway"].get("db_server") if st.ok else None


def semi_sync_counters(tb, host: str) -> dict[str, int]:
    conn = connect(tb, host)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_%%'")
            return {k: int(v) for k, v in cur.fetchall() if v.isdigit()}
    finally:
        conn.close()


class Probe:
    """Runs the client failover probe in a host container for `seconds`; its records
    (one JSON line per query) are read as they come (docker exec stream)."""

    def __init__(self, tb, host: str, seconds: float = 12.0, interval: float = 0.05):
        self.tb, self.host = tb, host
        self.cmd = ["python", "-m", "emulator.host.db", "probe", "--seconds", str(seconds),
                    "--interval", str(interval)]
        self.records: list[dict] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        _, stream = self.tb.container(self.host).exec_run(self.cmd, stream=True)
        buf = b""
        for chunk in stream:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"{"):
                    self.records.append(json.loads(line))

    def start(self, min_records: int = 10, deadline_s: float = 20.0) -> "Probe":
        """Start it and wait until it has answered a few queries (interpreter started)."""
        self.thread.start()
        wait_for(lambda: len(self.records) >= min_records, deadline_s,
                 f"the db probe answering on {self.host}")
        return self

    def join(self, timeout: float = 60.0) -> list[dict]:
        self.thread.join(timeout)
        return self.records


def failover_times(records: list[dict], t_fault: float, new_server_ip: str) -> dict:
    """From the probe: how long a query needing the main took across the failover."""
    after = [r for r in records if r["t"] + r["dt"] >= t_fault]
    first_ok = next((r for r in after if r["ok"] and r.get("server") == new_server_ip), None)
    return {
        "queries": len(records),
        "failed": sum(1 for r in after if not r["ok"]),
        "max_query_s": max((r["dt"] for r in after), default=None),
        "until_first_answer_from_new_main_s":
            None if first_ok is None else round(first_ok["t"] + first_ok["dt"] - t_fault, 3),
        "new_main_seen": first_ok is not None,
    }


def oam_client(tb, host: str, timeout: float = 15.0) -> httpx.Client:
    """An HTTP client on a host's OAM (ctrl-a) with the bring-up's token."""
    return httpx.Client(base_url=f"http://{tb.ip(host)}:8080", timeout=timeout,
                        headers={"Authorization": f"Bearer {tb.env['TB_OAM_TOKEN']}"})


def add_account(tb, host: str, name: str) -> httpx.Response:
    with oam_client(tb, host) as c:
        return c.post("/api/v1/accounts", json={"name": name, "enabled": True, "max_calls": 1})


def delete_accounts(tb, host: str, names) -> None:
    with oam_client(tb, host) as c:
        for n in names:
            c.delete(f"/api/v1/accounts/{n}")


def account_names(tb, host: str, prefix: str) -> set[str]:
    conn = connect(tb, host)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM accounts WHERE name LIKE %s", (prefix + "%",))
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def record_result(run_dir, key: str, data: dict) -> None:
    """Measurements of the database HA tests, one JSON file per run (runs/latest)."""
    path = run_dir / "db_ha.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[key] = data
    path.write_text(json.dumps(results, indent=2))
    print(f"\n{key}: {json.dumps(data)}")
