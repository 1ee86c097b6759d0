"""The configuration database: its tables and the first configuration, created on the
main server at first start (replicated to the backup from there)."""
from __future__ import annotations

import os

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS configurations (
         name VARCHAR(64) PRIMARY KEY, active BOOLEAN NOT NULL DEFAULT FALSE)""",
    """CREATE TABLE IF NOT EXISTS routes (
         id INT AUTO_INCREMENT PRIMARY KEY, config VARCHAR(64) NOT NULL, prefix VARCHAR(32) NOT NULL,
         priority INT NOT NULL DEFAULT 0, dest_host VARCHAR(64) NOT NULL, dest_port INT NOT NULL,
         FOREIGN KEY (config) REFERENCES configurations(name) ON DELETE CASCADE)""",
]


def create_and_seed(cur) -> None:
    """Idempotent: a restarted main keeps its data."""
    cur.execute("CREATE DATABASE IF NOT EXISTS toolpack")
    cur.execute("USE toolpack")
    for stmt in SCHEMA:
        cur.execute(stmt)
    cur.execute("INSERT IGNORE INTO configurations (name, active) VALUES ('default', TRUE)")
    cur.execute("SELECT COUNT(*) FROM routes")
    if cur.fetchone()[0] == 0:
        for prio, dest in enumerate(os.environ.get("TB_SEED_ROUTES", "").split(",")):
            if not dest:
                continue
            host, port = dest.split(":")
            cur.execute("INSERT INTO routes (config, prefix, priority, dest_host, dest_port) "
                        "VALUES ('default', '', %s, %s, %s)", (prio, host, int(port)))
