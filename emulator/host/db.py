"""The one database client of the host applications (the seed: "if the main DB is lost,
Toolpack will automatically switch to using the backup DB").

Which server is the main, decided the same way by every client: the writable one
(`@@read_only = 0`); should two be writable (only after a network partition healed), the
higher `key()` (epoch of `toolpack_ha.epoch`, then the epoch's named main, then the
preferred server). Servers' roles are set by the database agents of the hosts
(db_agent.py), never by a client. A replica is read-only, so a write can never land on
it (the server refuses it with error 1290 and the client re-selects).

Failover: the client keeps one connection to the main and pings it (1 s timeout) before
each statement. A dead connection (main killed or shut down: refused, reset or silent)
means: probe every server (connect timeout 1 s each), take the main, and, while there is
none yet (the backup's agent promotes it within a few hundred milliseconds after a
refused main, within about the host switchover time after a host loss), poll until
`failover_timeout`. Reads may use a read-only replica meanwhile; writes wait for the main.

Measured on the testbed (2 cores; `python -m emulator.host.db probe` in both hosts, a
query needing the main every 50 ms; tests/integration/test_db_failover.py writes them to
runs/latest/db_ha.json): the query that meets the failover takes 0.15-0.6 s when the
main's MySQL is killed and 0.15-1.1 s when it is shut down (no query fails); about
1.3 s when the main's host is powered off, and about 4.3 s when the main host's networks
are cut (peer-host loss 0.6 s + unit lease 1.5 s + the replica's IO thread giving up
its connect, 2 s).

Retries never duplicate a write: a statement is repeated only when it was certainly not
executed (the ping failed before it was sent, or the server refused it as read-only) or
when it is a read. A write whose connection dies while it runs has an unknown outcome:
the error goes to the caller. Parameters are always passed to the driver; no SQL is built
from values."""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import pymysql

from .settings import Settings

DATABASE = "toolpack"
HA_DB = "toolpack_ha"
RETRYABLE = (pymysql.err.OperationalError, pymysql.err.InterfaceError)
ER_READ_ONLY = 1290          # "running with the --read-only option"
CONNECTION_LOST = {2003, 2006, 2013, 2055, 1053, 1927, 4031}
POLL = 0.05                  # while no server is the main yet
READS = ("SELECT", "SHOW")
PROBE_SQL = (f"SELECT @@read_only AS ro, e.epoch, e.main FROM (SELECT 1) one "
             f"LEFT JOIN {HA_DB}.epoch e ON e.id = 1")


def key(epoch: int, epoch_main: str | None, ip: str, preferred: bool) -> tuple:
    """Orders two servers' claims to be the main; the database agents use the same order."""
    return (epoch, epoch_main == ip, preferred)


def is_read(sql: str) -> bool:
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    return bool(words) and words[0].upper() in READS


def _code(exc: Exception):
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


class Db:
    def __init__(self, servers: list[str], password: str, user: str = "toolpack",
                 connect_timeout: float = 1.0, read_timeout: float = 6.0,
                 failover_timeout: float = 10.0, connect=pymysql.connect,
                 clock=time.monotonic, sleep=time.sleep):
        # read_timeout above the semi-sync timeout (3 s): a write the main holds while it
        # waits for the backup's acknowledgement still gets its answer
        self.servers = list(servers)
        self.user, self.password = user, password
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.failover_timeout = failover_timeout
        self._connect, self.clock, self.sleep = connect, clock, sleep
        self.conn = None
        self.server: str | None = None      # IP of the main in use (published in status)
        self.last_errors: list[str] = []
        self.lock = threading.Lock()

    @classmethod
    def from_settings(cls, s: Settings, **kw) -> "Db":
        return cls([s.db_main, s.db_backup], s.db_password, **kw)

    # ---- public ---------------------------------------------------------------------
    def run(self, sql: str, args=None, on_main: bool = False) -> list[dict]:
        """Run one statement (autocommit) and return its rows. Writes (and reads with
        on_main=True, e.g. read-your-writes) go to the main only; other reads may use a
        replica while no main is reachable."""
        read = is_read(sql)
        with self.lock:
            deadline = self.clock() + self.failover_timeout
            while True:
                conn, is_main = self._conn_for(read and not on_main, deadline)
                try:
                    with conn.cursor() as cur:
                        cur.execute(sql, args)
                        rows = list(cur.fetchall())
                    if not is_main:
                        self._close(conn)
                    return rows
                except RETRYABLE as exc:
                    code = _code(exc)
                    lost = isinstance(exc, pymysql.err.InterfaceError) or code in CONNECTION_LOST
                    if not (lost or code == ER_READ_ONLY):
                        if not is_main:
                            self._close(conn)
                        raise                      # an ordinary SQL error: the caller's
                    self._drop(conn)
                    if not (code == ER_READ_ONLY or read):
                        raise                      # a write of unknown outcome
                    if self.clock() >= deadline:   # not executed, or harmless to repeat,
                        raise                      # but not forever
                    if code == ER_READ_ONLY:
                        self.sleep(POLL)           # roles are changing: let the agents act

    def close(self):
        with self.lock:
            if self.conn is not None:
                self._drop(self.conn)

    # ---- choosing the server ----------------------------------------------------------
    def _conn_for(self, replica_ok: bool, deadline: float):
        while True:
            if self.conn is not None:
                if self._alive(self.conn):
                    return self.conn, True
                self._drop(self.conn)
            main, replicas = self._select()
            if main is not None:
                for _, c in replicas:
                    self._close(c)
                self.conn, self.server = main[1], main[0]
                return self.conn, True
            if replica_ok and replicas:
                for _, c in replicas[1:]:
                    self._close(c)
                return replicas[0][1], False
            for _, c in replicas:
                self._close(c)
            if self.clock() >= deadline:
                raise pymysql.err.OperationalError(
                    2003, f"no main database server within {self.failover_timeout:.0f} s: "
                          + "; ".join(self.last_errors))
            self.sleep(POLL)

    def _select(self):
        """Probe every server: (ip, conn) of the main or None, and the read-only ones."""
        writable, replicas, errors = [], [], []
        for i, ip in enumerate(self.servers):
            try:
                conn = self._connect(host=ip, port=3306, user=self.user, password=self.password,
                                     database=DATABASE, autocommit=True,
                                     connect_timeout=self.connect_timeout,
                                     read_timeout=self.read_timeout, write_timeout=self.read_timeout,
                                     cursorclass=pymysql.cursors.DictCursor, ssl_disabled=True)
            except RETRYABLE as exc:
                errors.append(f"{ip}: {exc}")
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute(PROBE_SQL)
                    row = cur.fetchone()
            except RETRYABLE as exc:
                errors.append(f"{ip}: {exc}")
                self._close(conn)
                continue
            if row["ro"]:
                replicas.append((ip, conn))
                errors.append(f"{ip}: read-only")
            else:
                writable.append((key(int(row["epoch"] or 0), row["main"], ip, i == 0), ip, conn))
        self.last_errors = errors
        if not writable:
            return None, replicas
        writable.sort(key=lambda w: w[0], reverse=True)
        for _, _, c in writable[1:]:
            self._close(c)          # the lower claim: its agent is demoting it
        return (writable[0][1], writable[0][2]), replicas

    def _alive(self, conn) -> bool:
        # the ping gets the connect timeout, not the read timeout: a main whose host
        # vanished must not hold every statement for 6 s (pymysql reads _read_timeout on
        # each read, so it is swapped for the ping and put back)
        saved = getattr(conn, "_read_timeout", None)
        try:
            if saved is not None:
                conn._read_timeout = self.connect_timeout
            conn.ping(reconnect=False)
            return True
        except (pymysql.err.Error, OSError):
            return False
        finally:
            if saved is not None:
                conn._read_timeout = saved

    def _drop(self, conn):
        if conn is self.conn:
            self.conn, self.server = None, None
        self._close(conn)

    @staticmethod
    def _close(conn):
        try:
            conn.close()
        except Exception:
            pass


# ---- status of the servers (for tboamapp) -------------------------------------------------
def server_status(ip: str, password: str, connect=pymysql.connect) -> dict:
    """What one database server says about itself and its replication (short timeouts:
    a dead server must not stall the status)."""
    out: dict = {"ip": ip, "reachable": False}
    try:
        conn = connect(host=ip, user="toolpack", password=password, database=DATABASE,
                       connect_timeout=0.7, read_timeout=2, cursorclass=pymysql.cursors.DictCursor,
                       ssl_disabled=True)
    except pymysql.err.MySQLError as exc:
        out["error"] = str(exc)
        return out
    try:
        with conn.cursor() as cur:
            out["reachable"] = True
            cur.execute("SELECT @@gtid_current_pos AS gtid, @@read_only AS read_only")
            out.update(cur.fetchone())
            cur.execute(PROBE_SQL)
            row = cur.fetchone()
            out["epoch"], out["epoch_main"] = int(row["epoch"] or 0), row["main"]
            cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%%_status'")
            out["semi_sync"] = {r["Variable_name"]: r["Value"] for r in cur.fetchall()}
            cur.execute("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'")
            row = cur.fetchone()
            out["semi_sync_clients"] = int(row["Value"]) if row else 0
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone()
            out["replica"] = None if row is None else {
                "master_host": row["Master_Host"], "io_running": row["Slave_IO_Running"],
                "sql_running": row["Slave_SQL_Running"], "last_error": row["Last_Error"] or
                row["Last_IO_Error"], "seconds_behind": row["Seconds_Behind_Master"],
                "gtid_io_pos": row.get("Gtid_IO_Pos")}
    except pymysql.err.MySQLError as exc:
        out["error"] = str(exc)
    finally:
        conn.close()
    return out


def database_status(s: Settings, connect=pymysql.connect, max_age: float = 1.0) -> dict:
    """Both servers by live role: "main" is the server the clients use (same rule as
    Db), "backup" the other one; each entry carries its IP and `checked_at`.

    Served from a cache refreshed in the background once older than `max_age`: asking a
    vanished server costs its connect timeout, and the OAM status (sampled by the harness
    with a 0.5 s timeout during switchovers) must not wait for that. Only the very first
    call waits for the servers."""
    key_ = (s.db_main, s.db_backup, s.db_password)
    with _cache_lock:
        cache = _caches.get(key_)
        if cache is None:
            cache = _caches[key_] = _StatusCache(lambda: _database_status_now(s, connect))
    return cache.get(max_age)


class _StatusCache:
    def __init__(self, fetch):
        self.fetch = fetch
        self.value, self.t = None, 0.0
        self.lock = threading.Lock()
        self.refreshing = False

    def _refresh(self):
        try:
            value = self.fetch()
            with self.lock:
                self.value, self.t = value, time.monotonic()
        finally:
            with self.lock:
                self.refreshing = False

    def get(self, max_age: float) -> dict:
        with self.lock:
            value, age = self.value, time.monotonic() - self.t
            stale = value is None or age > max_age
            start = stale and not self.refreshing
            if start:
                self.refreshing = True
        if value is None:
            if start:
                self._refresh()
            else:       # another caller is fetching the first value: wait for it
                while self.value is None and self.refreshing:
                    time.sleep(0.02)
            return self.value if self.value is not None else self.fetch()
        if start:
            threading.Thread(target=self._refresh, daemon=True).start()
        return value


_caches: dict = {}
_cache_lock = threading.Lock()


def _database_status_now(s: Settings, connect=pymysql.connect) -> dict:
    ips = (s.db_main, s.db_backup)
    st: list = [None, None]

    def one(i):
        st[i] = server_status(ips[i], s.db_password, connect)
        st[i]["checked_at"] = time.time()
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for entry in st:
        entry["role"] = ("down" if not entry["reachable"] else
                         "replica" if entry.get("read_only") else "main")
    writable = [(key(e.get("epoch", 0), e.get("epoch_main"), e["ip"], i == 0), i)
                for i, e in enumerate(st) if e["role"] == "main"]
    if writable:
        main = max(writable)[1]
    else:   # no main right now: the one the newest epoch names (maybe down), else the preferred
        known = [(e.get("epoch", 0), e.get("epoch_main")) for e in st if e["reachable"]]
        named = max(known)[1] if known else None
        main = next((i for i, e in enumerate(st) if e["ip"] == named), 0)
    return {"main": st[main], "backup": st[1 - main]}


# ---- a probe for measuring failover (run inside a host: python -m emulator.host.db probe)
def probe(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulator.host.db probe")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--interval", type=float, default=0.05)
    args = p.parse_args(argv)
    db = Db.from_settings(Settings.from_env())
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        t0 = time.time()
        rec = {"t": t0}
        try:
            rows = db.run("SELECT @@server_id AS id", on_main=True)
            rec.update(ok=True, server=db.server, server_id=rows[0]["id"])
        except RETRYABLE as exc:
            rec.update(ok=False, error=str(exc))
        rec["dt"] = round(time.time() - t0, 4)
        print(json.dumps(rec), flush=True)
        time.sleep(args.interval)    # the probe's pace, not a wait for a condition
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["probe"]:
        sys.exit("usage: python -m emulator.host.db probe [--seconds N] [--interval S]")
    sys.exit(probe(sys.argv[2:]))
