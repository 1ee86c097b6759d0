"""The init of a database host of its own (the seed's "two external hosts",
compose/external-db.yml): the MariaDB server and its database agent, with the same host
control as a Toolpack host (`python -m emulator.host.ctl mysql start|shutdown|kill|status`)
and no Toolpack service.

Its agent decides the server's role by the rule of db_agent.py. With no sys_manager to
say whether the peer *host* is lost, it asks the network itself (db_host_peer_lost): the
peer database host answers on none of its control addresses while a Toolpack host
answers this one."""
from __future__ import annotations

import os
import signal
import threading

from .. import sshd
from . import ctl, state
from .db_agent import DbAgent, db_host_peer_lost
from .init import mysql_handlers, start_mysql, stop_mysql
from .mysql_server import MysqlServer
from .schema import seed_ss7, seed_units
from .settings import Settings

APP = "init"


def main():
    s = Settings.from_env()
    if s.db_role == "none":
        raise SystemExit("a database host needs TB_DB_ROLE main or backup")
    if not s.witness_ips:
        raise SystemExit("a database host needs TB_DB_WITNESS_IPS (the Toolpack hosts' "
                         "control addresses): without a witness it could not tell its "
                         "peer's loss from its own isolation")
    if not seed_units() or not os.environ.get("TB_SEED_ROUTES"):
        # it may be the one that bootstraps the cluster: never with an empty configuration
        raise SystemExit("a database host seeds the configuration database: it needs "
                         "TB_SERVICES (the units) and TB_SEED_ROUTES (the first route)")
    seed_ss7()       # a malformed TB_SEED_SS7 stops the boot here, named
    server = MysqlServer(s)
    agent = DbAgent(s, server, host_lost=lambda: db_host_peer_lost(s.peer_ctrl_ips, s.witness_ips))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if sshd.start() is not None:
        state.log(APP, "sshd started (keys from the bring-up)")
    start_mysql(server, agent)
    control = ctl.serve(mysql_handlers(server, agent, s))
    state.log(APP, f"database host {s.host} ({s.db_role} by preference); host control on "
                   f"{ctl.SOCKET_PATH}")
    while not stop.wait(0.5):
        pass
    control.shutdown()
    stop_mysql(server, agent)


if __name__ == "__main__":
    main()
