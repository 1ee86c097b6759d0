"""The host's init (under tini): starts the OS services of a Toolpack host like systemd
would, the MariaDB server (its role is decided by the database agent, db_agent.py) and
the Toolpack service, and serves the host control requests of `ctl.py` on a unix socket.

init outlives its services: when mariadbd or the service exits (killed, shut down,
quit) it stays up and they stay down until `ctl ... start`, as on a real host. SIGTERM
(host shutdown) quits the Toolpack service gracefully (it hands over), then the database."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from .. import sshd
from . import ctl, state
from .db_agent import DbAgent
from .mysql_server import CtlError, MysqlServer
from .role_log import RoleLog
from .schema import seed_ss7
from .settings import Settings

APP = "init"
SERVICE_QUIT_DEADLINE = 30.0     # the service hands over and stops 4 apps: seconds


class ToolpackService:
    """`python -m emulator.host.service_monitor`, a child of init."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.last_quit: dict | None = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> str:
        with self.lock:
            if self.running():
                return f"the Toolpack service is already running (pid {self.proc.pid})"
            self.proc = subprocess.Popen([sys.executable, "-m", "emulator.host.service_monitor"])
            state.log(APP, f"Toolpack service started (pid {self.proc.pid})")
            return f"the Toolpack service started (pid {self.proc.pid})"

    def quit(self, deadline: float = SERVICE_QUIT_DEADLINE) -> str:
        """SIGTERM: the service hands over and stops its applications itself; wait for it."""
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                raise CtlError("the Toolpack service is not running")
            t0, signalled_at = time.monotonic(), time.time()
            proc.terminate()
            try:
                code = proc.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                raise CtlError(f"the Toolpack service (pid {proc.pid}) still running "
                               f"{deadline:.0f} s after SIGTERM") from None
            self.last_quit = {"code": code, "signalled_at": signalled_at, "exited_at": time.time()}
            return (f"the Toolpack service quit (pid {proc.pid}, exit code {code}, "
                    f"{time.monotonic() - t0:.2f} s)")

    def status(self) -> dict:
        return {"running": self.running(), "pid": self.proc.pid if self.running() else None,
                "exit_code": None if self.proc is None or self.running() else self.proc.returncode,
                "last_quit": self.last_quit}


def mysql_status(server: MysqlServer, agent: DbAgent) -> tuple[str, dict]:
    # no lock with the agent: a status during a clone answers at once (role "cloning")
    data = {**server.status(), "agent": agent.status()}
    if not data["running"]:
        return "mysql stopped", data
    return f"mysql running (pid {data['pid']}), {agent.role}: {agent.why}", data


def mysql_handlers(server: MysqlServer | None, agent: DbAgent | None, s: Settings) -> dict:
    """`ctl mysql ...`; on a host with no database server (two external database hosts)
    every request says where the servers are instead."""
    if server is None:
        def none():
            raise CtlError(f"{s.host} runs no MySQL server: the configuration database is on "
                           f"{s.db_main} (main) and {s.db_backup} (backup)")
        return {("mysql", a): none for a in ("start", "shutdown", "kill", "status")}
    return {
        ("mysql", "start"): lambda: (server.start(), server.status()),
        ("mysql", "shutdown"): lambda: (server.shutdown(), server.status()),
        ("mysql", "kill"): lambda: (server.kill(), server.status()),
        ("mysql", "status"): lambda: mysql_status(server, agent),
    }


def handlers(server: MysqlServer | None, agent: DbAgent | None, service: ToolpackService,
             s: Settings) -> dict:
    def service_status():
        st = service.status()
        return ((f"the Toolpack service is running (pid {st['pid']})" if st["running"]
                 else "the Toolpack service is stopped"), st)

    return {
        **mysql_handlers(server, agent, s),
        ("service", "start"): lambda: (service.start(), service.status()),
        ("service", "quit"): lambda: (service.quit(), service.status()),
        ("service", "status"): service_status,
    }


def start_mysql(server: MysqlServer, agent: DbAgent) -> None:
    try:
        state.log(APP, server.start())
    except Exception as exc:      # the host stays up with MySQL down, as a real one would
        state.log(APP, f"mysql did not start: {exc}")
    agent.start()


def stop_mysql(server: MysqlServer | None, agent: DbAgent | None) -> None:
    if agent is not None:
        agent.stop.set()
    if server is not None and server.running():
        try:
            server.shutdown()
        except CtlError:
            server.kill()


def main():
    s = Settings.from_env()
    seed_ss7()           # a malformed TB_SEED_SS7 stops the boot here, named, not mid-seeding
    # TB_DB_ROLE=none: the database is on two hosts of its own (compose/external-db.yml)
    server = MysqlServer(s) if s.db_role != "none" else None
    agent = DbAgent(s, server) if server is not None else None
    service = ToolpackService()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # a host that was powered off while active left its role log open: close it at its
    # last liveness stamp before the service (and a new sys_manager) starts
    if RoleLog(s.host).close_dead("host booted: the previous boot ended while active"):
        state.log(APP, "role log: closed the previous boot's active interval")

    if sshd.start() is not None:
        state.log(APP, "sshd started (keys from the bring-up)")
    if server is not None:
        start_mysql(server, agent)
    else:
        state.log(APP, f"no MySQL server on this host: the database is on {s.db_main} and "
                       f"{s.db_backup}")
    service.start()      # the applications wait (bounded) for the agent to settle a main
    control = ctl.serve(handlers(server, agent, service, s))
    state.log(APP, f"host control on {ctl.SOCKET_PATH}")

    while not stop.wait(0.5):
        pass             # init idles like systemd; its children are reaped by their owners
    # host shutdown: the Toolpack service quits gracefully (hands over), then the database
    control.shutdown()
    if service.running():
        try:
            service.quit(deadline=10)     # within compose's stop_grace_period (20 s)
        except CtlError:
            service.proc.kill()
    stop_mysql(server, agent)


if __name__ == "__main__":
    main()
