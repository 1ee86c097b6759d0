"""mysql_shutdown: the seed's "Shutdown the MySQL service" on the master or the slave."""
from __future__ import annotations

from dataclasses import dataclass

from .mysql_kill import MysqlKill


@dataclass
class MysqlShutdown(MysqlKill):
    """A clean shutdown (SIGTERM, as SHUTDOWN), waiting for mariadbd to exit. Resolved
    and healed like mysql_kill."""
    kind = "mysql_shutdown"
    action = "shutdown"
