"""The one database client of the host applications: uses the main server and switches
to the backup when the main is unreachable (the seed's "refer to the secondary database").
Parameters are always passed to the driver; no SQL is built from values."""
from __future__ import annotations

import threading

import pymysql

from .settings import Settings

DATABASE = "toolpack"
RETRYABLE = (pymysql.err.OperationalError, pymysql.err.InterfaceError)


class Db:
    def __init__(self, servers: list[str], password: str, user: str = "toolpack",
                 connect_timeout: float = 1.0):
        self.servers = servers
        self.user, self.password = user, password
        self.connect_timeout = connect_timeout
        self.conn = None
        self.server = None
        self.lock = threading.Lock()

    @classmethod
    def from_settings(cls, s: Settings) -> "Db":
        return cls([s.db_main, s.db_backup], s.db_password)

    def _connect(self):
        errors = []
        for server in self.servers:
            try:
                self.conn = pymysql.connect(host=server, user=self.user, password=self.password,
                                            database=DATABASE, autocommit=True,
                                            connect_timeout=self.connect_timeout,
                                            read_timeout=5, write_timeout=5,
                                            cursorclass=pymysql.cursors.DictCursor)
                self.server = server
                return
            except RETRYABLE as exc:
                errors.append(f"{server}: {exc}")
        self.conn, self.server = None, None
        raise pymysql.err.OperationalError(2003, "no database server reachable: " + "; ".join(errors))

    def run(self, sql: str, args=None) -> list[dict]:
        """Run one statement; on a lost connection reconnect (main first) and retry once."""
        with self.lock:
            for attempt in (1, 2):
                try:
                    if self.conn is None:
                        self._connect()
                    with self.conn.cursor() as cur:
                        cur.execute(sql, args)
                        return list(cur.fetchall())
                except RETRYABLE:
                    self.close()
                    if attempt == 2:
                        raise
            return []

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn, self.server = None, None
