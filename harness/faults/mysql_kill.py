"""mysql_kill: the seed's "Kill MySQL service" on the master or the slave."""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..testbed import log
from ..util import wait_for
from ._base import HostFault, host_of
from ._host_ctl import ctl, db_main_host, mysql_rejoined, restore_db_main, start_container, sweep_host_ctl


@dataclass
class MysqlKill(HostFault):
    """SIGKILL to mariadbd on `host`. `target: master` is the Toolpack master's own
    database server, `slave` the slave's; prepare() first makes the master's server the
    main (an earlier operation may have moved it), so master = main, slave = backup.
    With two external database hosts (the external-db variant) the Toolpack hosts have
    no server: `master` is the main's host (db-a, made the main again by prepare()) and
    `slave` the backup's (db-b).
    `server` records the role of the server hit at resolution (main or backup). heal()
    starts it again and waits until it has rejoined (as a replica of the current main,
    re-cloned from it) and the testbed is healthy. The fault time is the one init
    reports it sent the signal at (stamped before the ctl call, refined from its reply)."""
    server: str | None = None
    heal_deadline_s: float = 120.0

    kind = "mysql_kill"
    sweep_order = 80       # after the containers run again, before the service
    action = "kill"

    @property
    def name(self):
        return f"{self.action} MySQL on {self.host}" + (f" ({self.server})" if self.server else "")

    @classmethod
    def prepare(cls, tb, params, master, slave):
        restore_db_main(tb, cls.db_hosts(tb, master, slave)[0], master)

    @staticmethod
    def db_hosts(tb, master, slave) -> tuple[str, str]:
        """(the main's host, the backup's host): the master's and the slave's own servers,
        or the database hosts of their own, the preferred main first."""
        return (master, slave) if set(tb.db_hosts) == {master, slave} else tb.db_hosts

    @classmethod
    def from_params(cls, tb, params, master, slave):
        host = host_of(params["target"], *cls.db_hosts(tb, master, slave))
        return cls(tb, host=host, server="main" if db_main_host(tb) == host else "backup")

    # max_switchover_s: the default; no HA timer here: the gateways route from memory

    def inject(self) -> float:
        reply = self._act(f"ctl mysql {self.action}", lambda: ctl(self.tb, self.host, "mysql", self.action))
        self.injected_at = (reply["data"].get("last_exit") or {}).get("signalled_at", self.injected_at)
        log(f"fault: {reply['message']} on {self.host}")
        return self.injected_at

    def heal(self) -> None:
        if not start_container(self.tb, self.host):
            log(f"heal: {ctl(self.tb, self.host, 'mysql', 'start')['message']} on {self.host}")
        wait_for(lambda: mysql_rejoined(self.tb, self.host), self.heal_deadline_s,
                 f"MySQL on {self.host} rejoined and the testbed healthy", interval=0.5)
        self.healed_at = time.time()

    @classmethod
    def sweep(cls, tb) -> None:
        """MySQL running on every running host."""
        sweep_host_ctl(tb, "mysql")
